"""Ingest and staging steps: a landing day (or a backfill's range) of one source into the restricted
zone, then through the privacy rules into staging."""

from __future__ import annotations

import datetime as dt

from plus_analytics.context import Context, as_day, context, day_range
from plus_analytics.policy import source as policy_source
from plus_analytics.storage import duck, locks, rewrites


def backfill_bounds(source: str, first=None, last=None, ctx: Context | None = None) -> tuple[dt.date, dt.date] | None:
    """The days a backfill covers for ``source``: from ``first`` to ``last`` (either empty: the first or
    last day with landing files); None when nothing has landed."""
    from plus_analytics.ingest.reading import landed_days

    ctx = ctx or context()
    landed = landed_days(ctx.paths.landing, policy_source(source))
    if not landed and not (first and last):
        return None
    return (as_day(first) if first else landed[0]), (as_day(last) if last else landed[-1])


def ingest(source: str, day, ctx: Context | None = None, until=None) -> dict:
    """Ingest one landing day of ``source`` (a daily run), or every day from ``day`` to ``until`` in
    batches (a backfill). Returns the day's counts, or for a range their sums."""
    from plus_analytics.ingest import quality
    from plus_analytics.ingest.loader import ingest_days
    from plus_analytics.ledger.outbox import copy_outboxes

    ctx = ctx or context()
    src, paths = policy_source(source), ctx.paths
    days = day_range(day, until) if until is not None else [as_day(day)]
    requests_exist = paths.privacy_db.exists()
    tomb = ctx.tomb if requests_exist else None  # erased subjects exist: no tombstone key, no run
    con = duck.connect(duck.spill_directory(paths.raw_db))  # a batch is read and checked without the zone's lock

    def zone(write: bool = True):  # the restricted zone to write or to read, and the ledger's requests
        if write:
            return locks.zone(write=paths.zones("raw"), read=paths.zones("ledger"), con=con)
        return locks.zone(read=paths.zones("raw", "ledger"), con=con)

    try:
        results = [r.as_dict() for r in ingest_days(con, src, days, paths.landing, ctx.key, tomb, zone=zone)]
        suppressed = any(r["rows_suppressed"] or r["references_redacted"] for r in results)
        with zone(write=False):  # the report only reads the zone
            per_column = quality.by_column(con, src.name, days)
            quality.write_report(con, src.name, paths.reports / "quality")
    finally:
        con.close()
    if suppressed:
        rewrites.finish_rewrites(paths)
        with locks.zone(write=paths.zones("ledger"), read=paths.zones("raw")) as con:
            copy_outboxes(con, ["raw"])
    if until is None:
        return {**results[0], "quarantined_by_column": per_column}
    counts = ("files", "rows_read", "rows_loaded", "rows_quarantined", "rows_suppressed", "references_redacted")
    return {"source": source, "day": days[0].isoformat(), "until": days[-1].isoformat(), "days": len(days),
            **{c: sum(r[c] for r in results) for c in counts}, "quarantined_by_column": per_column}


def stage(source: str, day, ctx: Context | None = None, until=None) -> dict:
    """The day's (or range's) rows of ``source`` through the privacy rules into staging."""
    from plus_analytics.privacy.staging import current_version, stage_source

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(write=paths.zones("stg"), read=paths.zones("raw")) as con:
        n = stage_source(con, policy_source(source), ctx.key, as_day(day) if day is not None else None,
                         as_day(until) if until is not None else None)
        version = current_version(con)
    out = {"source": source, "day": str(day), "rows_staged": n, "staging_version": version}
    if until is not None:
        out["until"] = str(until)
    return out
