"""Key rotation steps: re-key the restricted zone (and the pending deletion requests) to the active key
version, then restage everything under it."""

from __future__ import annotations

from plus_analytics.context import Context, context
from plus_analytics.policy import present_sources
from plus_analytics.storage import locks


def rekey(ctx: Context | None = None) -> dict:
    from plus_analytics.erasure.requests import rekey_requests
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.privacy.rotation import rekey_restricted

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(write=paths.zones("raw")) as con:
        out = rekey_restricted(con, ctx.key)
    if paths.privacy_db.exists():
        with locks.zone(write=paths.zones("ledger")) as con:
            ensure_schema(con)
            out["requests_rekeyed"] = rekey_requests(con, ctx.key, ctx.tomb)
    return {"key_version": ctx.key.version, **out}


def restage(ctx: Context | None = None) -> dict:
    from plus_analytics.privacy.staging import restage_all

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(write=paths.zones("stg"), read=paths.zones("raw")) as con:
        counts = restage_all(con, present_sources(con), ctx.key, what=f"key rotation to version {ctx.key.version}")
    return {"key_version": ctx.key.version, "rows_staged": counts}
