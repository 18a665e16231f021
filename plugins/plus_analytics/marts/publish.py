"""Publish a build: an atomic rename onto ``analytics/analytics.duckdb``, never backwards.

An analyst who has the old file open keeps reading that snapshot (the old inode lives until they close
it); the next connection sees the new one. Neither side waits or fails. The rename is guarded by the
publish lock, and compares staging versions: a build made from older staging than the published one is
superseded (it would bring back rows an erasure or retention run removed), so it is not published.
After a publish, every build file older than or as old as it is removed: abandoned builds (a run that
died between build and publish), failed ones kept for inspection, superseded ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from plus_analytics.marts.build import META, META_TABLE, build_version
from plus_analytics.storage import faults, locks
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import attach, table_columns, tables
from plus_analytics.storage.files import fsync_dir

log = logging.getLogger(__name__)


def analyst_connection(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only session on the published database that can reach nothing else: no other file can be
    attached or read (the restricted zone is a file too), nothing written, the settings locked."""
    return duckdb.connect(str(path), read_only=True, config={"enable_external_access": False, "lock_configuration": True})


@contextmanager
def reading(target: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only session with the published database ``target`` attached as ``analytics`` (the
    pipeline's own reads; analysts use :func:`analyst_connection`). No lock: published files are only
    ever replaced whole."""
    con = duckdb.connect()
    try:
        attach(con, target, "analytics")
        yield con
    finally:
        con.close()


def published_version(target: Path) -> int:
    """The staging version of the published build (-1 when nothing is published yet)."""
    if not target.exists():
        return -1
    with reading(target) as con:
        if "staging_version" not in table_columns(con, "analytics", META_TABLE):
            return 0
        return int(sqlf.run(con, META, "staging_version", db="analytics").fetchone()[0] or 0)


def publish(build_path: Path, target: Path) -> bool:
    """Make ``build_path`` the analysts' database, unless a build from newer staging is already published
    (then the build is superseded: returns False and removes it). Same filesystem: a rename."""
    version = build_version(build_path)
    if Path(str(build_path) + ".wal").exists():
        raise RuntimeError("build file still has a WAL: it was not checkpointed and closed before publishing")
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.hold({target: True, build_path: True}):
        if not build_path.exists():
            log.warning("build %s is gone (removed as superseded): nothing to publish", build_path.name)
            return False
        current = published_version(target)
        if version is None or version < current:
            log.warning("build %s was made from staging version %s, older than the published %d: superseded",
                        build_path.name, version, current)
            _remove_build(build_path)
            return False
        with open(build_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(build_path, target)
        fsync_dir(target.parent)
        faults.reached("file")
    _remove_build(build_path)  # its lock files
    log.info("published %s (staging version %d)", target, version)
    remove_stale_builds(build_path.parent, version)
    return True


def _remove_build(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal"), locks.lock_file(path), Path(str(locks.lock_file(path)) + ".turn")):
        p.unlink(missing_ok=True)


def remove_stale_builds(builds: Path, upto_version: int) -> list[str]:
    """Remove every build file made from staging version ``upto_version`` or older that no one is using
    (its lock free): it can never be published. Returns the names removed."""
    removed = []
    for f in sorted(builds.glob("build-*.duckdb")):
        v = build_version(f)
        if v is None or v > upto_version:
            continue
        try:
            with locks.hold({f: True}, timeout=0):
                _remove_build(f)
        except locks.ZoneBusy:
            continue  # being gated or published right now: its own run decides
        removed.append(f.name)
    if removed:
        log.info("removed %d stale build file(s)", len(removed))
    return removed


def remove_unfinished_builds(builds: Path) -> list[str]:
    """Build files still under their temporary name whose build is not running (its lock is free): a
    build that died before it finished; and the lock files a finished build left under that name when it
    was renamed. Removed before a new build starts."""
    removed = []
    names = {f.name for f in builds.glob("building-*.duckdb")} | \
        {f.name.removesuffix(".lock") for f in builds.glob("building-*.duckdb.lock")}
    for f in sorted(builds / n for n in names):
        try:
            with locks.hold({f: True}, timeout=0):
                _remove_build(f)
        except locks.ZoneBusy:
            continue
        removed.append(f.name)
    return removed


def published_tables(target: Path) -> dict[str, int]:
    with reading(target) as con:
        return {t: sqlf.run(con, META, "rows_of", db="analytics", table=sqlf.q(t)).fetchone()[0]
                for t in sorted(tables(con, "analytics"))}
