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
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from plus_analytics.config import SQL_DIR, Paths
from plus_analytics.marts.dictionary import describe_build
from plus_analytics.policy.retention import load_retention
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import CATALOG, default_schema, table_columns, tables

log = logging.getLogger(__name__)

META_TABLE = "meta_build_info"
INCREMENTAL = "build/incremental.sql"
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


def marts_sql_hash() -> str:
    """A fingerprint of the mart definitions: an incremental build only merges into marts built by the same SQL."""
    h = hashlib.sha256()
    for f in mart_files() + [INCREMENTAL]:
        h.update(f.encode() + b"\0" + sqlf.render(f).encode() + b"\0")
    return h.hexdigest()[:16].translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))  # letters: no digit runs


def base_for_increment(con, k: int) -> int | None:
    """The staging version the build file ``con`` (a copy of the published marts, attached beside staging
    as ``stg``) can be brought forward from, or None when only a full build is right: the file is not a
    build, was made with another k, retention period or mart SQL, or staging changed in a way the change
    log cannot follow since."""
    if META_TABLE not in tables(con):
        return None
    row = con.execute(f"select staging_version, k_anonymity, mart_days, marts_sql from {META_TABLE}").fetchone() \
        if set(table_columns(con, META_TABLE)) >= {"mart_days", "marts_sql"} else None
    if row is None or row[1] != k or row[2] != load_retention().marts.days or row[3] != marts_sql_hash():
        return None
    if "staging_changes" not in tables(con, "stg") or sqlf.run(con, INCREMENTAL, "everything_changed", {"published": row[0]}).fetchone()[0]:
        return None
    return int(row[0])


def build_marts(con, k: int, build_id: str, path: Path, staging_version: int, base_version: int | None = None) -> Build:
    """Run every ``sql/marts/*.sql`` on ``con``: the build database ``path`` with staging attached as
    ``stg`` (read-only, its lock held by the caller for the whole build).

    Full (``base_version`` None): the build file is empty and every mart is computed from all of staging.
    Incremental: the build file is a copy of the published marts, built from staging version
    ``base_version``; only the mart days the staging changes since then touched (``_dirty``) are
    recomputed, into a scratch schema, and replace those days; days past retention are dropped. Equal to
    a full build (tested)."""
    con.execute("set variable k = ?", [k])
    con.execute("set variable mart_days = ?", [load_retention().marts.days])
    db = sqlf.run(con, CATALOG, "current_database").fetchone()[0]
    rebuilt: dict[str, int] = {}
    if base_version is None:
        sqlf.run(con, INCREMENTAL, "in_build_all")
        for f in mart_files():
            sqlf.run_file(con, f)
    else:
        sqlf.run(con, INCREMENTAL, "dirty_days", {"published": base_version})
        rebuilt = dict(sqlf.run(con, INCREMENTAL, "dirty_counts").fetchall())
        sqlf.run(con, INCREMENTAL, "in_build_dirty")
        con.execute("create schema fresh")
        with default_schema(con, db, "fresh"):  # the mart files create their tables unqualified
            for f in mart_files():
                sqlf.run_file(con, f)
        for t in tables(con, db, "fresh"):
            sqlf.run(con, INCREMENTAL, "merge_delete", {"mart": t}, table=t)
            sqlf.run(con, INCREMENTAL, "merge_insert", table=t)
        con.execute("drop schema fresh cascade")
        con.execute(f"drop table {META_TABLE}")
    con.execute("detach stg")
    names = [t for t in tables(con, db) if t != META_TABLE]
    counts = {t: con.execute(f"select count(*) from {sqlf.q(t)}").fetchone()[0] for t in names}
    con.execute(f"""create table {META_TABLE} as select $build_id as build_id, cast($built_at as timestamp) as built_at,
                    cast($k as integer) as k_anonymity, cast($version as bigint) as staging_version,
                    $tables as mart_row_counts, $mode as build_mode, $rebuilt as days_rebuilt,
                    cast($mart_days as integer) as mart_days, $marts_sql as marts_sql""",
                {"build_id": build_id, "built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "k": k,
                 "version": staging_version, "tables": {t: int(n) for t, n in counts.items()},
                 "mode": "full" if base_version is None else "incremental",
                 "rebuilt": {t: int(rebuilt.get(t, 0) if base_version is not None else
                                    con.execute(f"select count(distinct day) from {sqlf.q(t)}").fetchone()[0]) for t in names},
                 "mart_days": load_retention().marts.days, "marts_sql": marts_sql_hash()})
    describe_build(con)
    con.execute("checkpoint")
    log.info("built %s (%s) from staging version %d: %s", build_id, "full" if base_version is None else
             f"incremental from version {base_version}, days rebuilt {rebuilt}", staging_version, counts)
    return Build(build_id, path, counts, staging_version)
