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
from plus_analytics.storage.duck import table_columns, tables

log = logging.getLogger(__name__)

META_TABLE = "meta_build_info"
META = "build/meta.sql"
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
    """The staging version the build file (a copy of the published marts, attached as ``build`` beside
    staging as ``stg``) can be brought forward from, or None when only a full build is right: the file is
    not a build, was made with another k, retention period or mart SQL, or staging changed in a way the
    change log cannot follow since."""
    if not {"mart_days", "marts_sql"} <= set(table_columns(con, "build", META_TABLE)):
        return None
    row = sqlf.run(con, META, "build_settings").fetchone()
    if row is None or row[1] != k or row[2] != load_retention().marts.days or row[3] != marts_sql_hash():
        return None
    if "staging_changes" not in tables(con, "stg") or sqlf.run(con, INCREMENTAL, "everything_changed", {"published": row[0]}).fetchone()[0]:
        return None
    return int(row[0])


def build_marts(con, k: int, build_id: str, path: Path, staging_version: int, base_version: int | None = None) -> Build:
    """Run every ``sql/marts/*.sql`` on ``con``: a session with the build file ``path`` attached read-write
    as ``build`` and staging read-only as ``stg`` (its lock held by the caller for the whole build). The
    mart files write into ``fresh``, an in-memory database of the session, from which the marts go into
    the build.

    Full (``base_version`` None): the build file is empty and every mart is computed from all of staging.
    Incremental: the build file is a copy of the published marts, built from staging version
    ``base_version``; only the mart days the staging changes since then touched (``_dirty``) are
    recomputed and replace those days; days past retention are dropped. Equal to a full build (tested)."""
    con.execute("set variable k = ?", [k])
    con.execute("set variable mart_days = ?", [load_retention().marts.days])
    rebuilt: dict[str, int] = {}
    if base_version is None:
        sqlf.run(con, INCREMENTAL, "in_build_all")
    else:
        sqlf.run(con, INCREMENTAL, "dirty_days", {"published": base_version})
        rebuilt = dict(sqlf.run(con, INCREMENTAL, "dirty_counts").fetchall())
        sqlf.run(con, INCREMENTAL, "in_build_dirty")
        sqlf.run(con, META, "drop")
    sqlf.run(con, INCREMENTAL, "attach_fresh")
    for f in mart_files():
        sqlf.run_file(con, f)
    for t in sorted(tables(con, "fresh")):
        if base_version is None:
            sqlf.run(con, INCREMENTAL, "copy", table=sqlf.q(t))
        else:
            sqlf.run(con, INCREMENTAL, "merge_delete", {"mart": t}, table=sqlf.q(t))
            sqlf.run(con, INCREMENTAL, "merge_insert", table=sqlf.q(t))
    con.execute("detach fresh")
    con.execute("detach stg")
    names = sorted(tables(con, "build"))
    counts = {t: sqlf.run(con, META, "rows_of", db="build", table=sqlf.q(t)).fetchone()[0] for t in names}
    sqlf.run(con, META, "record", {
        "build_id": build_id, "built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "k": k,
        "version": staging_version, "tables": {t: int(n) for t, n in counts.items()},
        "mode": "full" if base_version is None else "incremental",
        "rebuilt": {t: int(rebuilt.get(t, 0) if base_version is not None else
                           sqlf.run(con, META, "days_of", table=sqlf.q(t)).fetchone()[0]) for t in names},
        "mart_days": load_retention().marts.days, "marts_sql": marts_sql_hash()})
    describe_build(con)
    con.execute("checkpoint build")
    log.info("built %s (%s) from staging version %d: %s", build_id, "full" if base_version is None else
             f"incremental from version {base_version}, days rebuilt {rebuilt}", staging_version, counts)
    return Build(build_id, path, counts, staging_version)
