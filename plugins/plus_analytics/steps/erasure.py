"""Erasure steps: registering deletion requests, then each step of ``plus_erasure`` for every request
waiting for it (see the DAG's doc), and the DPO report with its certificates.

The steps are listed, in the DAG's order, in :data:`STEPS`: the orchestration and the tests call them
from there by name."""

from __future__ import annotations

import logging

from plus_analytics.config import Paths, settings
from plus_analytics.context import Context, context
from plus_analytics.policy import present_sources
from plus_analytics.storage import files, locks, rewrites
from plus_analytics.storage import sql as sqlf

log = logging.getLogger(__name__)


def check_keys(ctx: Context) -> None:
    """Fail fast, before any DAG runs: the keys must load and be the ones the data was written with."""
    from plus_analytics.privacy.identifiers import check_key
    from plus_analytics.storage.duck import tables

    for alias, key, purpose in (("raw", lambda: ctx.key, "pseudonym"), ("ledger", lambda: ctx.tomb, "tombstone")):
        k = key()
        if ctx.paths.zones(alias)[alias].exists():
            with locks.zone(read=ctx.paths.zones(alias)) as con:
                if "key_registry" in tables(con, alias):
                    check_key(con, alias, k, purpose, rotating=purpose == "pseudonym", register=False)


def register(requests: list, ctx: Context | None = None) -> list[str]:
    """Register deletion requests (:class:`plus_analytics.erasure.intake.Request`) in one transaction."""
    from plus_analytics.erasure.intake import register_many
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.privacy.identifiers import check_key

    ctx = ctx or context()
    key, tomb = ctx.key, ctx.tomb  # no key, no request: fail before anything is written
    _check_pseudonym_key(ctx)
    with locks.zone(write=ctx.paths.zones("ledger"), timeout=min(settings().lock_timeout, 60)) as con:
        ensure_schema(con)
        check_key(con, "ledger", tomb, "tombstone")
        return register_many(con, key, tomb, requests)


def _check_pseudonym_key(ctx: Context) -> None:
    """The pseudonym key must be the one the restricted zone was written with (a lost key would make an
    erasure find nothing and report it done). A read-only check: a zone without a key registry holds no
    pseudonym yet, and ingest registers the key on first use."""
    from plus_analytics.privacy.identifiers import check_key
    from plus_analytics.storage.duck import tables

    if ctx.paths.raw_db.exists():
        with locks.zone(read=ctx.paths.zones("raw")) as con:
            if "key_registry" in tables(con, "raw"):
                check_key(con, "raw", ctx.key, register=False)


def _ledger_step(ctx: Context, step: str, read: tuple[str, ...], work) -> dict:
    """Run ``work(con, ids)`` for the requests waiting for ``step``, in one session: the ledger read-write
    with the zones ``read`` attached read-only. Nothing waiting: skipped."""
    from plus_analytics.erasure import requests
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.privacy.identifiers import check_key

    if not ctx.paths.privacy_db.exists():
        return {"skipped": "no deletion requests"}
    with locks.zone(write=ctx.paths.zones("ledger"), read=ctx.paths.zones(*read)) as con:
        ensure_schema(con)
        ids = requests.take(con, step)
        if not ids:
            return {"skipped": f"no request waiting for {step}"}
        check_key(con, "ledger", ctx.tomb, "tombstone")
        out = work(con, ids)
    log.info("erasure %s: %s", step, out)
    return out


def resolve(ctx: Context | None = None) -> dict:
    """Every identifier linked to each pending request's subject, sealed in the ledger."""
    from plus_analytics.erasure.resolve import resolve as resolve_subjects

    ctx = ctx or context()
    _check_pseudonym_key(ctx)
    return _ledger_step(ctx, "resolve", ("raw",),
                        lambda con, ids: resolve_subjects(con, ctx, present_sources(con), ids))


def select(ctx: Context | None = None) -> dict:
    """What removal will remove, recorded before anything is removed."""
    from plus_analytics.erasure.remove import select as record_selection

    ctx = ctx or context()
    return _ledger_step(ctx, "select", ("raw",),
                        lambda con, ids: record_selection(con, ctx, present_sources(con), ids))


def remove(ctx: Context | None = None) -> dict:
    """Carry out the selection in landing and the restricted zone (raw read-write, ledger read-write)."""
    from plus_analytics.erasure import requests
    from plus_analytics.erasure.remove import apply
    from plus_analytics.privacy.identifiers import ensure_schema

    ctx = ctx or context()
    paths = ctx.paths
    if not paths.privacy_db.exists():
        return {"skipped": "no deletion requests"}
    with locks.zone(write=paths.zones("raw", "ledger")) as con:
        ids = requests.take(con, "remove")
        if not ids:
            return {"skipped": "no request waiting for remove"}
        files.mark_dirty(paths.raw_db)
        ensure_schema(con)  # a zone written by an older release lacks the newer tables
        return apply(con, ctx, present_sources(con), ids)


def restage(ctx: Context | None = None) -> dict:
    """Staging follows the restricted zone for the removed requests (staging read-write, ledger read-write)."""
    from plus_analytics.erasure import requests
    from plus_analytics.ledger import evidence
    from plus_analytics.privacy.staging import restage_erased
    from plus_analytics.storage.duck import transaction

    ctx = ctx or context()
    paths = ctx.paths
    if not paths.privacy_db.exists():
        return {"skipped": "no deletion requests"}
    with locks.zone(write=paths.zones("stg", "ledger"), read=paths.zones("raw")) as con:
        ids = requests.take(con, "restage")
        if not ids:
            return {"skipped": "no request waiting for restage"}
        files.mark_dirty(paths.staging_db)
        version = restage_erased(con, present_sources(con), ctx.key, ids)
        with transaction(con):
            evidence.append_many(con, [dict(request_id=rid, event="restaged", layer="staging", location="stg tables",
                                               detail=f"staging rows of the removed rows deleted, references restaged "
                                                      f"(staging version {version})") for rid in ids])
            requests.advance(con, ids, "restaged", ctx.run_id, restaged_version=version)
    return {"requests": len(ids), "staging_version": version}


def confirm_published(ctx: Context | None = None) -> dict:
    """The restaged requests whose subject is out of the published marts (the published build was made from
    staging at or after their restage) move on; the others wait for the next publish."""
    from plus_analytics.erasure import requests
    from plus_analytics.ledger import evidence
    from plus_analytics.marts.publish import published_version
    from plus_analytics.storage.duck import transaction

    ctx = ctx or context()
    published = published_version(ctx.paths.analytics_db)

    def work(con, ids):
        restaged = dict(sqlf.run(con, "erasure/erasure.sql", "restaged_versions_of", {"ids": ids}).fetchall())
        ready = [rid for rid in ids if restaged.get(rid) is not None and restaged[rid] <= published]
        with transaction(con):
            evidence.append_many(con, [dict(request_id=rid, event="published", layer="marts", location="analytics.duckdb",
                                            detail=f"published build made from staging version {published}") for rid in ready])
            requests.advance(con, ready, "published", ctx.run_id)
        if len(ready) < len(ids):
            raise RuntimeError(f"{len(ids) - len(ready)} erased request(s) are not yet out of the published marts "
                               f"(published staging version {published}): the build, gate or publish before this step "
                               f"did not publish; its log says why, and the next run publishes and continues")
        return {"requests": len(ready), "published_version": published}

    return _ledger_step(ctx, "confirm_published", (), work)


def rewrite(ctx: Context | None = None) -> dict:
    """Physical erasure: the restricted and staging files rewritten (deleted values leave freed blocks),
    every build file older than the published one removed; then the requests move on."""
    from plus_analytics.erasure import requests
    from plus_analytics.ledger import ensure_schema, evidence
    from plus_analytics.marts.publish import published_version, remove_stale_builds
    from plus_analytics.storage.duck import tables, transaction

    ctx = ctx or context()
    paths = ctx.paths
    if not paths.privacy_db.exists():
        return {"skipped": "no deletion requests"}
    with locks.zone(read=paths.zones("ledger")) as con:
        waiting = requests.take(con, "rewrite") if "tombstones" in tables(con, "ledger") else []
    if not waiting:
        return {"skipped": "no request waiting for rewrite"}
    sizes, purged = {}, {}
    for db in (paths.raw_db, paths.staging_db):
        with locks.hold({db: True}):
            done = rewrites.rewrite_zone(db, restricted=db == paths.raw_db)
        sizes[db.name] = done["bytes"]
        purged.update(done["tables_purged"])
    removed = remove_stale_builds(paths.builds, published_version(paths.analytics_db))
    detail = (f"database files rewritten ({', '.join(f'{k} {v:,} bytes' for k, v in sizes.items())}); "
              f"Delta tables purged to their latest snapshot, every earlier one expired "
              f"({'; '.join(_purge_detail(t, p) for t, p in sorted(purged.items())) or 'none yet'}); "
              f"{len(removed)} older build file(s) removed")
    where = ", ".join([*sizes, *(["restricted/lake"] if purged else [])])
    with locks.zone(write=paths.zones("ledger")) as con:
        ensure_schema(con)
        ids = [rid for rid in requests.take(con, "rewrite") if rid in waiting]  # rewritten before, not after, this step
        with transaction(con):
            evidence.append_many(con, [dict(request_id=rid, event="rewritten", layer="all", location=where,
                                            detail=detail) for rid in ids])
            requests.advance(con, ids, "rewritten", ctx.run_id)
    return {"requests": len(ids), "database_bytes": sizes, "tables_purged": purged, "builds_removed": len(removed)}


def _purge_detail(table: str, purged: dict[str, int]) -> str:
    return (f"{table} at version {purged['version']}: {purged['data_files_deleted']} data file(s) and "
            f"{purged['log_files_deleted']} log file(s) deleted")


def verify(ctx: Context | None = None) -> dict:
    """Check every layer for the rewritten (and previously failed) requests; record the outcome."""
    from plus_analytics.erasure.verify import verify as check_every_layer
    from plus_analytics.marts.publish import published_version

    ctx = ctx or context()
    paths = ctx.paths
    published = published_version(paths.analytics_db)
    return _ledger_step(ctx, "verify", ("raw", "stg"),
                        lambda con, ids: check_every_layer(con, ctx, present_sources(con), ids, published))


#: The steps of ``plus_erasure`` between intake and the report, in the DAG's order (its write-audit-publish
#: group runs between restage and confirm_published).
STEPS = {"resolve": resolve, "select": select, "remove": remove, "restage": restage,
         "confirm_published": confirm_published, "rewrite": rewrite, "verify": verify}


def report(ctx: Context | None = None, fail_on_overdue: bool = True) -> dict:
    """The DPO report, and a signed certificate for every request newly verified (or found to have no
    data); overdue or failed requests fail the task."""
    from plus_analytics.erasure.report import collect, write_report
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.ledger.outbox import copy_outboxes

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(write=paths.zones("ledger"), read=paths.zones("raw", "stg")) as con:
        ensure_schema(con)
        copy_outboxes(con, ["raw", "stg"])
        data = collect(con, paths.analytics_db)
    out = write_report(data, paths.reports / "dpo")
    out["certificates_issued"] = issue_certificates(data, paths)
    if fail_on_overdue and (out["overdue"] or out["failed"]):
        raise RuntimeError(f"{out['overdue']} deletion request(s) OVERDUE and {out['failed']} FAILED verification: "
                           f"see {out['html']}")
    return out


def issue_certificates(data: dict, paths: Paths) -> int:
    """Sign a certificate for each finished request that has none yet; publish the public key beside them."""
    import datetime as dt

    from plus_analytics.config import CERTIFICATE_CONN_ID
    from plus_analytics.erasure import certificate
    from plus_analytics.erasure.requests import DONE
    from plus_analytics.storage.files import atomic_write_bytes

    out_dir = paths.reports / "dpo" / "certificates"
    todo = [r for r in data["requests"] if r["status"] in DONE and not (out_dir / f"{r['request_id']}.json").exists()]
    if not todo:
        return 0
    key = certificate.load_signing_key(CERTIFICATE_CONN_ID)
    atomic_write_bytes(paths.reports / "dpo" / "certificate_public_key.pem", certificate.public_pem(key))
    issued_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    head = (data["evidence"][-1]["seq"], data["evidence_head_hash"]) if data["evidence"] else (0, "")
    for r in todo:
        payload = certificate.payload_for(r, data["evidence"], (data["chain_intact"], data["chain_records"]), head,
                                          key.public_key(), issued_at)
        certificate.write(certificate.sign(payload, key), out_dir)
    return len(todo)
