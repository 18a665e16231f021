"""Append-only, tamper-evident evidence: every record carries the SHA-256 of the previous one.

Records hold request ids, layers, table/file locations, counts and timestamps: pseudonyms and counts
only, never an identifier. ``verify_chain`` recomputes the chain; any edited, removed or reordered
record breaks it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import with_frame

SQL = "privacy/evidence.sql"

GENESIS = "0" * 64
FIELDS = ("seq", "request_id", "event", "layer", "location", "rows_removed", "check_result", "detail", "recorded_at")


def _digest(prev_hash: str, record: dict) -> str:
    body = json.dumps({k: (str(record[k]) if record[k] is not None else None) for k in FIELDS}, sort_keys=True)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(con, request_id: str, event: str, layer: str | None = None, location: str | None = None,
           rows_removed: int | None = None, check_result: int | None = None, detail: str | None = None) -> None:
    append_many(con, [dict(request_id=request_id, event=event, layer=layer, location=location,
                           rows_removed=rows_removed, check_result=check_result, detail=detail)])


def append_many(con, records: list[dict]) -> None:
    """Append records (request_id, event and optionally layer, location, rows_removed, check_result,
    detail) in order, chained, in one insert."""
    if not records:
        return
    import pandas as pd

    seq, prev = head(con)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    rows = []
    for r in records:
        seq += 1
        record = {k: r.get(k) for k in FIELDS} | {"seq": seq, "recorded_at": now}
        digest = _digest(prev, record)
        rows.append([record[k] for k in FIELDS] + [prev, digest])
        prev = digest
    frame = pd.DataFrame(rows, columns=[*FIELDS, "prev_hash", "hash"], dtype=object)
    with_frame(con, "_evidence_batch", frame, sqlf.named(SQL, "append"))


def verify_chain(con) -> tuple[bool, int]:
    """(intact, records checked): every record's hash recomputed from its content and its predecessor."""
    rows = sqlf.run(con, SQL, "chain").fetchall()
    prev = GENESIS
    for i, row in enumerate(rows, start=1):
        record = dict(zip(FIELDS, row[:len(FIELDS)]))
        if record["seq"] != i or row[-2] != prev or row[-1] != _digest(prev, record):
            return False, i
        prev = row[-1]
    return True, len(rows)


def head(con) -> tuple[int, str]:
    """(seq, hash) of the last record: what a certificate is chained to."""
    last = sqlf.run(con, SQL, "last").fetchall()
    return last[0] if last else (0, GENESIS)


def record_hash(con, seq: int) -> str:
    return sqlf.run(con, SQL, "record_hash", [seq]).fetchall()[0][0]
