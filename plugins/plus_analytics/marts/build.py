"""Build the marts into a build file, then publish it atomically (write-audit-publish).

Why a separate file and a rename: DuckDB lets one process hold a file read-write, and that lock shuts out
every other process, readers included. Analysts therefore never open a file the pipeline writes. The
pipeline writes ``analytics/builds/build-<id>.duckdb``, checkpoints and closes it, the gate audits it,
and ``os.replace`` swaps it in as ``analytics/analytics.duckdb``. An analyst who has the old file open
keeps reading that snapshot (the old inode lives until they close it); the next connection sees the new
one. Neither side waits or fails.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from plus_analytics import db, sqlfiles
from plus_analytics.config import SQL_DIR, Paths

log = logging.getLogger(__name__)

META_TABLE = "meta_build_info"


@dataclass
class Build:
    build_id: str
    path: Path
    tables: dict[str, int]


def mart_files() -> list[str]:
    return sorted(f"marts/{p.name}" for p in (SQL_DIR / "marts").glob("*.sql"))


def new_build_path(paths: Paths) -> tuple[str, Path]:
    # Letters after the timestamp: a long digit run in a published value would (rightly) trip the PII gate.
    suffix = uuid.uuid4().hex[:8].translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))
    build_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + suffix
    return build_id, paths.builds / f"build-{build_id}.duckdb"


def build_marts(paths: Paths, k: int, build_id: str | None = None, path: Path | None = None, con=None) -> Build:
    """Run every ``sql/marts/*.sql`` against staging into a fresh build file."""
    if build_id is None or path is None:
        build_id, path = new_build_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    own = con is None
    if own:  # a caller-supplied connection has already opened (created) the file
        for stale in (path, Path(str(path) + ".wal")):
            stale.unlink(missing_ok=True)
        con = db.connect(path)
    try:
        db.attach(con, paths.staging_db, "stg", read_only=True)
        con.execute("set variable k = ?", [k])
        from plus_analytics.retention import load_retention

        con.execute("set variable mart_days = ?", [int(load_retention()["marts"]["days"])])
        for f in mart_files():
            sqlfiles.run_file(con, f)
        con.execute("detach stg")
        tables = dict(con.execute(
            "select table_name, estimated_size from duckdb_tables() where database_name = current_database() order by 1"
        ).fetchall())
        tables = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}
        con.execute(
            f"""create table {META_TABLE} as select
                    $build_id as build_id, cast($built_at as timestamp) as built_at, cast($k as integer) as k_anonymity,
                    $tables as mart_row_counts""",
            {"build_id": build_id, "built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "k": k,
             "tables": {t: int(n) for t, n in tables.items()}},
        )
        con.execute("checkpoint")
    finally:
        if own:
            con.close()
    log.info("built %s: %s", path.name, tables)
    return Build(build_id, path, tables)


def publish(build_path: Path, target: Path) -> None:
    """Atomically make ``build_path`` the analysts' database (same filesystem: a rename)."""
    if Path(str(build_path) + ".wal").exists():
        raise RuntimeError("build file still has a WAL: it was not checkpointed and closed before publishing")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(build_path, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(build_path, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    log.info("published %s", target)


def published_tables(target: Path) -> dict[str, int]:
    with db.opened(target, read_only=True) as con:
        names = [r[0] for r in con.execute("select table_name from duckdb_tables() order by 1").fetchall()]
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in names}
