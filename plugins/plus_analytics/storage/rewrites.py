"""A zone's physical erasure after a delete: its DuckDB file rewritten and, for the restricted zone, its
Delta tables purged to their latest snapshot; and the rewrites a dead run left pending, finished."""

from __future__ import annotations

from pathlib import Path

from plus_analytics.storage import files, lake, locks


def rewrite_zone(db: Path, restricted: bool = False) -> dict:
    """Rewrite the zone file ``db`` (:func:`~plus_analytics.storage.files.rewrite_database`; the
    ``restricted`` zone's stored uncompressed) and purge the Delta tables beside it
    (:func:`~plus_analytics.storage.lake.purge`; only the restricted zone has them), purge first: the
    file's pending-rewrite mark, cleared last, covers both. The caller holds the file's lock exclusively.
    Returns the file's new size in bytes and what the purge did per table."""
    purged = lake.purge(db)
    return {"bytes": files.rewrite_database(db, uncompressed=restricted), "tables_purged": purged}


def finish_rewrites(paths) -> list[str]:
    """Rewrite every zone (of :class:`~plus_analytics.config.Paths` ``paths``) a dead run left marked as
    holding deleted values, each under its writer's lock; returns the files' names."""
    done = []
    for db in (paths.raw_db, paths.staging_db, paths.privacy_db):
        if files.is_dirty(db):
            with locks.hold({db: True}):
                rewrite_zone(db, restricted=db == paths.raw_db)
            done.append(db.name)
    return done
