"""Copying evidence written beside the data into the ledger, exactly once.

Ingest drops a late arrival and retention destroys rows inside the transaction of the database they
change (raw or staging), and write their evidence there too (``suppression_log``, ``retention_log``), so
the evidence can never be lost or claim something that did not happen. A DuckDB transaction cannot span
two files, so the records are copied into the privacy ledger afterwards by whoever next holds the
ledger: each once (``outbox_copied``), however often a copy is interrupted and retried.
"""

from __future__ import annotations

import datetime as dt

from plus_analytics.ledger import evidence
from plus_analytics.policy import REFERENCES_REDACTED
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import insert_rows, tables, transaction

SQL = "privacy/outbox.sql"


def copy_outboxes(con, aliases: list[str]) -> dict[str, int]:
    """``con`` is the ledger (read-write) with the databases ``aliases`` (the restricted zone, staging)
    attached read-only; attached ones that are absent are skipped. Returns records copied per kind."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    copied = {"suppression": 0, "retention": 0}
    with transaction(con):
        for alias in aliases:
            have = tables(con, alias)
            if "suppression_log" in have:
                rows = sqlf.run(con, SQL, "new_suppressions", alias=alias).fetchall()
                evidence.append_many(con, [
                    dict(request_id=rid, event="suppressed", layer="ingest", location=f"{source} {day}", rows_removed=n,
                         detail="late arrival referencing an erased subject: references redacted at ingest and in landing"
                         if source.endswith(REFERENCES_REDACTED) else
                         "late arrival for an erased subject (or mentioning one): dropped at ingest and blanked in landing")
                    for _, rid, source, day, n in rows])
                _mark(con, [r[0] for r in rows], now)
                copied["suppression"] += len(rows)
            if "retention_log" in have:
                rows = sqlf.run(con, SQL, "new_retention", alias=alias).fetchall()
                insert_rows(con, "ledger.retention_evidence", [r[1:] for r in rows])
                _mark(con, [r[0] for r in rows], now)
                copied["retention"] += len(rows)
    return copied


def _mark(con, ids: list[str], now) -> None:
    if ids:
        insert_rows(con, "ledger.outbox_copied", [(i, now) for i in ids])
