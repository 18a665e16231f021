"""Write-audit-publish steps: build the marts into a build file, gate it, publish it."""

from __future__ import annotations

import logging
from pathlib import Path

from plus_analytics.config import Paths, settings
from plus_analytics.context import Context, context
from plus_analytics.storage import faults, locks
from plus_analytics.storage import sql as sqlf

log = logging.getLogger(__name__)


def staging_version(paths: Paths) -> int:
    from plus_analytics.privacy.staging import current_version

    if not paths.staging_db.exists():
        return 0
    with locks.zone(read=paths.zones("stg")) as con:
        return current_version(con)


def fresh(paths: Paths) -> str | None:
    """Why no build is needed (the published marts were made from the current staging, with the current
    k), or None when staging is newer than the published build, or nothing is published."""
    from plus_analytics.marts.publish import published_version, reading

    current, published = staging_version(paths), published_version(paths.analytics_db)
    if published < current or published < 0:
        return None
    with reading(paths.analytics_db) as con:
        k = sqlf.run(con, "build/meta.sql", "k_anonymity", db="analytics").fetchone()[0]
    if k != settings().k:
        return None
    return f"the published marts were built from the current staging (version {current}) with k={k}"


def build(ctx: Context | None = None, force: bool = False, full: bool = False) -> dict:
    """Build the marts into a build file, unless the published ones are already up to date (``force``:
    build anyway). The build starts from a copy of the published marts and recomputes only the days
    staging changed since (:func:`plus_analytics.marts.build.build_marts`), or from nothing when that is
    not possible or ``full``. The file is written under a temporary name, holding its lock and staging's,
    and renamed to ``build-<staging version>-<id>.duckdb`` before the locks are released."""
    import shutil

    from plus_analytics.marts.build import base_for_increment, build_marts, build_path, new_build_id
    from plus_analytics.marts.publish import remove_unfinished_builds
    from plus_analytics.privacy.staging import current_version
    from plus_analytics.storage import duck

    ctx = ctx or context()
    paths = ctx.paths
    why_not = None if force or full else fresh(paths)
    if why_not:
        log.info("no build needed: %s", why_not)
        return {"skipped": why_not}
    remove_unfinished_builds(paths.builds)
    build_id = new_build_id()
    building = paths.builds / f"building-{build_id}.duckdb"
    with locks.hold({building: True, paths.staging_db: False}):
        copied = not full and paths.analytics_db.exists()
        if copied:
            shutil.copyfile(paths.analytics_db, building)  # published files are replaced whole, never written in place
        con = duck.connect(duck.spill_directory(building))
        try:
            duck.attach(con, paths.staging_db, "stg")
            duck.attach(con, building, "build", read_only=False)
            version = current_version(con)
            base = None if full else base_for_increment(con, settings().k)
            if base is None and copied:  # start from nothing
                con.execute("detach build")
                building.unlink()
                duck.attach(con, building, "build", read_only=False)
            path = build_path(paths, version, build_id)
            b = build_marts(con, settings().k, build_id, path, version, base)
        finally:
            con.close()
        building.rename(path)
        faults.reached("build")
    return {"build_id": b.build_id, "build_file": str(path), "tables": b.tables, "staging_version": version,
            "mode": "full" if base is None else "incremental"}


def gate(build: dict, ctx: Context | None = None) -> dict:
    """Run the PII gate on a build (GX suites + PII detectors + canary); raises GateFailed with a report path."""
    from plus_analytics.gate.run import run_gate

    ctx = ctx or context()
    paths, path = ctx.paths, Path(build["build_file"])
    if not path.exists():
        return {"skipped": f"build {build['build_id']} was removed as superseded by a newer publish"}
    with locks.zone(read={"build": path, **paths.zones("raw", "stg")}) as con:
        if "build" not in {r[0] for r in sqlf.run(con, "storage/catalog.sql", "databases").fetchall()}:
            return {"skipped": f"build {build['build_id']} was removed as superseded by a newer publish"}
        return run_gate(con, paths.reports / "gate" / build["build_id"], build["build_id"])


def publish(build: dict, gate: dict, ctx: Context | None = None) -> dict:
    """Swap a build that passed the gate in as the analysts' database (never backwards)."""
    from plus_analytics.marts.publish import publish as swap_in

    ctx = ctx or context()
    if not gate.get("passed"):
        raise RuntimeError("refusing to publish a build that did not pass the gate")
    published = swap_in(Path(build["build_file"]), ctx.paths.analytics_db)
    if not published:
        return {"skipped": f"build {build['build_id']} is older than the published marts (superseded)"}
    return {"published": str(ctx.paths.analytics_db), "build_id": build["build_id"], "tables": build["tables"],
            "staging_version": build["staging_version"]}
