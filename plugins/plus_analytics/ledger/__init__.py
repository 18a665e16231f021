"""The privacy ledger (``restricted/privacy.duckdb``): the DPO's record of deletion requests and their
steps, the hash-chained evidence of what erasure and retention did, and the tombstone blind index."""

from __future__ import annotations

from plus_analytics.storage import sql as sqlf


def ensure_schema(con) -> None:
    sqlf.run_file(con, "privacy/schema.sql")
