"""The retention step: destroy what expired in every layer, with evidence."""

from __future__ import annotations

import datetime as dt
import logging

from plus_analytics.context import Context, as_day, context
from plus_analytics.storage import locks, rewrites

log = logging.getLogger(__name__)


def enforce(as_of=None, ctx: Context | None = None, spec=None) -> dict:
    """Destroy what expired as of ``as_of`` (default: today, UTC) in every layer, with evidence; each step
    repeatable, so a run that died is finished by the next. ``spec``: the periods (default retention.yaml)."""
    from plus_analytics import retention
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.ledger.outbox import copy_outboxes
    from plus_analytics.policy.retention import load_retention
    from plus_analytics.privacy.identifiers import ensure_schema as ensure_raw_schema

    ctx = ctx or context()
    paths, spec = ctx.paths, spec or load_retention()
    as_of = as_day(as_of) if as_of else dt.datetime.now(dt.UTC).date()
    rewrites.finish_rewrites(paths)
    ev = retention.new_run(as_of)
    out = {"run_id": ev.run_id, "as_of": as_of.isoformat(), "rows_destroyed": 0}
    with locks.zone(write=paths.zones("raw")) as con:
        ensure_raw_schema(con)
        expired = retention.expire_landing(paths.landing, spec, as_of)
        out["landing_partitions_removed"] = len(expired)
        out["rows_destroyed"] += retention.destroy_restricted(con, paths.raw_db, expired, ev, spec, as_of)
    if paths.staging_db.exists():
        with locks.zone(write=paths.zones("stg")) as con:
            out["rows_destroyed"] += retention.destroy_staging(con, paths.staging_db, ev, spec, as_of)
    out["files_rewritten"] = rewrites.finish_rewrites(paths)
    with locks.zone(write=paths.zones("ledger"), read=paths.zones("raw", "stg")) as con:
        ensure_schema(con)
        out["evidence_copied"] = copy_outboxes(con, ["raw", "stg"])["retention"]
    out["old_files_removed"] = retention.remove_old_files(paths, spec)
    log.info("retention: %s", out)
    return out
