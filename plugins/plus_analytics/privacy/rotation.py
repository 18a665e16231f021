"""Key rotation: re-key the restricted dictionary, staging and marts to the active key version.

Operator steps (README, "Rotating the pseudonymization key"): put the new secret with key_version N+1
into the ``plus_pseudonym_key`` connection, then run ``plus-analytics rotate-keys`` (or trigger the
``plus_rotate_keys`` DAG). Only the new key is needed: the restricted zone keeps normalized identifiers,
so every pseudonym is recomputed from them; the old key can be destroyed once this has run.

Until rotation has run, ingest refuses to mix versions (KeyVersionMismatch), so no table ever holds
pseudonyms of two versions.
"""

from __future__ import annotations

import logging

from plus_analytics import db
from plus_analytics.config import Paths
from plus_analytics.policy import load_policy
from plus_analytics.privacy import identifiers
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.privacy.staging import restage_all

log = logging.getLogger(__name__)


def rekey_restricted(paths: Paths, key: MasterKey, con=None) -> dict:
    own = con is None
    con = con or db.connect(paths.raw_db)
    try:
        identifiers.ensure_schema(con)
        before = dict(con.execute("select key_version, count(*) from pseudonyms group by 1").fetchall())
        identifiers.rekey(con, key)
        after = dict(con.execute("select key_version, count(*) from pseudonyms group by 1").fetchall())
    finally:
        if own:
            con.close()
    return {"before": {str(k): v for k, v in before.items()}, "after": {str(k): v for k, v in after.items()}}


def restage(paths: Paths, key: MasterKey, con=None, raw_path=None) -> dict[str, int]:
    own = con is None
    con = con or db.connect(paths.staging_db)
    try:
        db.attach(con, raw_path or paths.raw_db, "raw", read_only=True)
        counts = restage_all(con, [s for s in load_policy().values()], key)
        con.execute("detach raw")
    finally:
        if own:
            con.close()
    return counts
