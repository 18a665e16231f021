"""The engineers' data-quality report: per source, day and column, how many rows each problem sent to
quarantine (``ingest_column_log``), written after every ingest as ``reports/quality/<source>.csv``.

A problem names the column and the rule it broke ("value not in vocabulary features", "invalid ip in
ip: ..."), never the value, so the report may leave the restricted zone. The quarantined lines
themselves, with file and line number, stay in the restricted zone's quarantine tables (``lake.quarantine``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from plus_analytics.storage import sql as sqlf

SQL = "ingest/quality.sql"

COLUMNS = ("day", "column", "problem", "rows_quarantined")


def by_column(con, source: str, days: list) -> dict[str, int]:
    """Rows quarantined per column on ``days`` (for the task's result: column names and counts only)."""
    rows = sqlf.run(con, SQL, "by_column", {"source": source, "days": days}).fetchall()
    return {c: int(n) for c, n in rows}


def write_report(con, source: str, out_dir: Path) -> Path:
    """Rewrite ``<out_dir>/<source>.csv`` from every day of ``source`` in ``ingest_column_log`` (newest
    day first), atomically: a reader never sees half a file."""
    rows = sqlf.run(con, SQL, "report", {"source": source}).fetchall()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{source}.csv"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two ingests of a source may write it at once
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows((d.isoformat(), c, p, n) for d, c, p, n in rows)
    os.replace(tmp, path)
    return path
