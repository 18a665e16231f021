"""Build the marts into a build file (write-audit-publish: this is the write).

Why a separate file: DuckDB lets one process hold a file read-write, and that lock shuts out every other
process, readers included. Analysts therefore never open a file the pipeline writes. Each build is a
fresh ``analytics/builds/build-<staging version>-<id>.duckdb``, checkpointed and closed; the gate
audits it and :mod:`plus_analytics.marts.publish` swaps it in.

A build records the staging watermark it read (``meta_build_info.staging_version``, also in its file
name), so a publish never replaces a newer build with an older one, and any run can tell whether the
published marts are behind staging.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from plus_analytics.config import SQL_DIR, Paths
from plus_analytics.policy.retention import load_retention
from plus_analytics.storage import sql as sqlf

log = logging.getLogger(__name__)

META_TABLE = "meta_build_info"
_BUILD_NAME = re.compile(r"^build-(\d{12})-(\d{8}T\d{6}-[a-p]{8})\.duckdb$")


@dataclass
class Build:
    build_id: str
    path: Path
    tables: dict[str, int]
    staging_version: int = 0


def mart_files() -> list[str]:
    return sorted(f"marts/{p.name}" for p in (SQL_DIR / "marts").glob("*.sql"))


def new_build_id() -> str:
    # Letters after the timestamp: a long digit run in a published value would (rightly) trip the PII gate.
    suffix = uuid.uuid4().hex[:8].translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + suffix


def build_path(paths: Paths, staging_version: int, build_id: str) -> Path:
    return paths.builds / f"build-{staging_version:012d}-{build_id}.duckdb"


def build_version(path: Path) -> int | None:
    """The staging version a build file was made from (from its name), None for other files."""
    m = _BUILD_NAME.match(path.name)
    return int(m.group(1)) if m else None


def build_marts(con, k: int, build_id: str, path: Path, staging_version: int) -> Build:
    """Run every ``sql/marts/*.sql`` on ``con``: the fresh build database ``path`` with staging attached
    as ``stg`` (read-only, its lock held by the caller for the whole build)."""
    con.execute("set variable k = ?", [k])
    con.execute("set variable mart_days = ?", [load_retention().marts.days])
    for f in mart_files():
        sqlf.run_file(con, f)
    con.execute("detach stg")
    names = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = current_database() order by 1").fetchall()]
    tables = {t: con.execute(f"select count(*) from {sqlf.q(t)}").fetchone()[0] for t in names}
    con.execute(f"""create table {META_TABLE} as select $build_id as build_id, cast($built_at as timestamp) as built_at,
                    cast($k as integer) as k_anonymity, cast($version as bigint) as staging_version,
                    $tables as mart_row_counts""",
                {"build_id": build_id, "built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "k": k,
                 "version": staging_version, "tables": {t: int(n) for t, n in tables.items()}})
    con.execute("checkpoint")
    log.info("built %s from staging version %d: %s", build_id, staging_version, tables)
    return Build(build_id, path, tables, staging_version)
