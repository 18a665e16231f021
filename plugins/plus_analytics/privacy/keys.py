"""Pseudonymization keys: the master secret, its version, and per-kind subkeys.

Design (see README, "Pseudonyms"):

* The master secret (at least 32 random bytes) lives in the Airflow connection ``plus_pseudonym_key``:
  ``password`` holds it base64url-encoded, ``extra.key_version`` its version. Any Airflow secrets
  backend can serve it. There is no default and no unkeyed fallback: a missing or short secret raises
  :class:`MissingKeyError` and the pipeline stops.
* Each identifier kind gets its own 256-bit subkey, HKDF-SHA-256(master, info="plus-analytics/
  pseudonym/<kind>"), so an email and a phone of one person give unrelated pseudonyms.
* A pseudonym is HMAC-SHA-256(subkey, normalized value), truncated to 128 bits and written as 32
  letters a-p (hex digits shifted into letters). 128 bits keep the collision probability below
  n^2 / 2^129 (about 1.5e-21 for a billion distinct values per kind); letters only mean no pseudonym can
  ever look like a phone number, a national id or a card number to the PII gate.
* The secret never appears in ``repr``, logs, exceptions, SQL text or XCom: SQL receives the HMAC
  pads as bound parameters into a TEMP table that is never persisted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_BYTES = 32
PSEUDONYM_HEX_CHARS = 32
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


class MissingKeyError(RuntimeError):
    """No usable pseudonymization key: the pipeline must stop (never fall back to a plain hash)."""


class KeyMismatch(MissingKeyError):
    """The key given is not the key the data was written with (a lost or replaced key): stop."""


@dataclass(frozen=True)
class MasterKey:
    version: int
    secret: bytes = field(repr=False)

    def __post_init__(self):
        if not isinstance(self.secret, (bytes, bytearray)) or len(self.secret) < MIN_SECRET_BYTES:
            raise MissingKeyError(
                f"pseudonymization key version {self.version} is shorter than {MIN_SECRET_BYTES} bytes; "
                "refusing to pseudonymize with a weak key"
            )
        if self.version < 1:
            raise MissingKeyError("key_version must be a positive integer")

    def __repr__(self) -> str:  # never show the secret, even in tracebacks with locals
        return f"MasterKey(version={self.version}, secret=<redacted>)"

    def subkey(self, kind: str) -> bytes:
        return _hkdf(bytes(self.secret), f"plus-analytics/pseudonym/{kind}")

    def pads(self, kind: str) -> tuple[bytes, bytes]:
        """HMAC inner and outer pads of the kind's subkey, for the in-DuckDB HMAC (RFC 2104)."""
        return hmac_pads(self.subkey(kind))

    def check_value(self) -> str:
        """A key check value: identifies the key (to compare it with the one the data was written with)
        without revealing anything about it. 64 bits of HMAC over a fixed label."""
        return hmac.new(bytes(self.secret), b"plus-analytics/key-check-value", hashlib.sha256).hexdigest()[:16]

    def derived(self, purpose: str) -> bytes:
        """A 256-bit key for ``purpose`` (e.g. sealing erasure forms), independent of every pseudonym subkey."""
        return _hkdf(bytes(self.secret), f"plus-analytics/{purpose}")

    def pseudonym(self, kind: str, normalized: str) -> str:
        """Reference implementation; the pipeline computes the same value inside DuckDB."""
        return to_pseudonym(hmac.new(self.subkey(kind), normalized.encode("utf-8"), hashlib.sha256).hexdigest())


@lru_cache(maxsize=64)
def _hkdf(secret: bytes, info: str) -> bytes:
    """HKDF-SHA-256 subkey (memoized: intake of a thousand requests derives each subkey once)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(secret)


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def to_pseudonym(hexdigest: str) -> str:
    return hexdigest[:PSEUDONYM_HEX_CHARS].translate(_HEX_TO_LETTERS)


def decode_secret(text: str | None) -> bytes:
    if not text:
        raise MissingKeyError("the pseudonymization secret is empty")
    text = text.strip()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MissingKeyError("the pseudonymization secret is not base64url") from None


def key_from_connection(conn) -> MasterKey:
    """Build the key from an Airflow connection object (password = secret, extra.key_version)."""
    if conn is None:
        raise MissingKeyError("the Airflow connection 'plus_pseudonym_key' is not defined")
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
    try:
        version = int(extra.get("key_version", 0))
    except (TypeError, ValueError):
        raise MissingKeyError("extra.key_version of 'plus_pseudonym_key' is not an integer") from None
    return MasterKey(version=version, secret=decode_secret(conn.password))


def load_master_key(conn_id: str | None = None) -> MasterKey:
    """Fetch the active key through Airflow (task context or any configured secrets backend)."""
    from plus_analytics.config import KEY_CONN_ID

    conn_id = conn_id or KEY_CONN_ID
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException, or no Airflow context: both mean "no key"
        raise MissingKeyError(
            f"no key: Airflow connection {conn_id!r} could not be read ({type(exc).__name__}). "
            "Create it (password = base64url secret of at least 32 bytes, extra = {\"key_version\": N}); "
            "the pipeline never falls back to an unkeyed hash."
        ) from None
    return key_from_connection(conn)


def new_secret() -> str:
    """A fresh 32-byte secret, base64url, for `plus-analytics keys new` and the demo."""
    return base64.urlsafe_b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).decode().rstrip("=")


def connection_uri_json(secret_b64: str, version: int) -> str:
    """The JSON form of the key connection, as an AIRFLOW_CONN_PLUS_PSEUDONYM_KEY value."""
    return json.dumps({"conn_type": "generic", "password": secret_b64, "extra": {"key_version": version}})


