"""Append-only, tamper-evident evidence: every record carries the SHA-256 of the previous one.

Records hold request ids, layers, table/file locations, counts and timestamps: pseudonyms and counts
only, never an identifier. ``verify_chain`` recomputes the chain; any edited, removed or reordered
record breaks it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

GENESIS = "0" * 64
FIELDS = ("seq", "request_id", "event", "layer", "location", "rows_removed", "check_result", "detail", "recorded_at")


def _digest(prev_hash: str, record: dict) -> str:
    body = json.dumps({k: (str(record[k]) if record[k] is not None else None) for k in FIELDS}, sort_keys=True)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(con, request_id: str, event: str, layer: str | None = None, location: str | None = None,
           rows_removed: int | None = None, check_result: int | None = None, detail: str | None = None) -> None:
    last = con.execute("select seq, hash from erasure_evidence order by seq desc limit 1").fetchone()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    record = dict(seq=seq, request_id=request_id, event=event, layer=layer, location=location,
                  rows_removed=rows_removed, check_result=check_result, detail=detail, recorded_at=now)
    con.execute("insert into erasure_evidence values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [seq, request_id, event, layer, location, rows_removed, check_result, detail, now, prev, _digest(prev, record)])


def verify_chain(con) -> tuple[bool, int]:
    """(intact, records checked)."""
    rows = con.execute(f"select {', '.join(FIELDS)}, prev_hash, hash from erasure_evidence order by seq").fetchall()
    prev = GENESIS
    for i, row in enumerate(rows, start=1):
        record = dict(zip(FIELDS, row[:len(FIELDS)]))
        if record["seq"] != i or row[-2] != prev or row[-1] != _digest(prev, record):
            return False, i
        prev = row[-1]
    return True, len(rows)
