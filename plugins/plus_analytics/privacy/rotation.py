"""Key rotation: re-key the restricted dictionary, staging and marts to the active key version.

Operator steps (README, "Rotating the pseudonymization key"): put the new secret with key_version N+1
into the ``plus_pseudonym_key`` connection, then run ``plus-analytics rotate-keys`` (or trigger the
``plus_rotate_keys`` DAG). Only the new key is needed: the restricted zone keeps normalized identifiers,
so every pseudonym is recomputed from them; the old key can be destroyed once this has run.

Until rotation has run, ingest refuses to mix versions (KeyVersionMismatch), so no table ever holds
pseudonyms of two versions. Deletion requests in progress follow
(:func:`plus_analytics.erasure.requests.rekey_requests`).
"""

from __future__ import annotations

from plus_analytics.privacy import identifiers
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import sql as sqlf


def rekey_restricted(con, key: MasterKey) -> dict:
    """Re-pseudonymize the restricted zone (``con``, read-write) under ``key``, in one transaction."""
    identifiers.ensure_schema(con)
    before = dict(sqlf.run(con, identifiers.SQL, "pseudonyms_by_version").fetchall())
    identifiers.rekey(con, key)
    after = dict(sqlf.run(con, identifiers.SQL, "pseudonyms_by_version").fetchall())
    return {"before": {str(k): v for k, v in before.items()}, "after": {str(k): v for k, v in after.items()}}
