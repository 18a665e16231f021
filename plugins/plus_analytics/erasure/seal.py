"""Sealing a subject's identifier forms for the time an erasure is in progress.

Verification must look for the subject's identifiers byte by byte in every file, after the identifier
maps that held them are gone, possibly in another process (each step of the ``plus_erasure`` DAG is its
own task). So resolution seals them: AES-256-GCM under a key derived from the tombstone key, bound to
the request and the kind (associated data), in the privacy ledger. The ciphertext shares no bytes with
the forms, so it cannot trip the byte scan; the sealed rows are deleted once the request is verified.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plus_analytics.privacy.keys import KeyMismatch, MasterKey

PURPOSE = "erasure-seal"


def _aad(request_id: str, kind: str) -> bytes:
    return f"{request_id}\x1f{kind}".encode()


def seal(tomb_key: MasterKey, request_id: str, kind: str, normalized: str, forms: list[str]) -> bytes:
    nonce = os.urandom(12)
    body = json.dumps({"normalized": normalized, "forms": sorted(set(forms))}, ensure_ascii=False).encode()
    return nonce + AESGCM(tomb_key.derived(PURPOSE)).encrypt(nonce, body, _aad(request_id, kind))


def unseal(tomb_key: MasterKey, request_id: str, kind: str, sealed: bytes) -> tuple[str, list[str]]:
    """(normalized, forms); a wrong tombstone key is a :class:`KeyMismatch`, never an empty result."""
    try:
        body = AESGCM(tomb_key.derived(PURPOSE)).decrypt(bytes(sealed[:12]), bytes(sealed[12:]), _aad(request_id, kind))
    except InvalidTag:
        raise KeyMismatch("the tombstone key cannot open the sealed identifiers of a deletion request: it is not the "
                          "key they were sealed with (restore the original plus_tombstone_key)") from None
    data = json.loads(body)
    return data["normalized"], data["forms"]
