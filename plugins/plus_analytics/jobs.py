"""What each Airflow task does, one function each, callable with or without Airflow.

A job resolves its settings (:mod:`plus_analytics.config`), opens the zone files it needs in ONE locked
session (:func:`plus_analytics.storage.locks.zone`: readers and writers alike, so no task ever meets a
DuckDB lock conflict, only a bounded wait), calls the domain functions and returns counts, dates and
file names for XCom: never an identifier. Keys come from Airflow connections unless given (tests,
benchmarks). A job that has nothing to do returns ``{"skipped": why}``; the DAG's task marks itself
skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from plus_analytics.config import TOMBSTONE_CONN_ID, Paths, settings
from plus_analytics.policy import Source, load_policy
from plus_analytics.policy import source as policy_source
from plus_analytics.privacy.keys import MasterKey, load_master_key
from plus_analytics.storage import faults, files, locks
from plus_analytics.storage import sql as sqlf

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Where a job works and with which keys (loaded from Airflow connections on first use)."""

    paths: Paths = field(default_factory=lambda: Paths.from_env().ensure())
    _key: MasterKey | None = None
    _tomb: MasterKey | None = None
    run_id: str | None = None

    @property
    def key(self) -> MasterKey:
        if self._key is None:
            self._key = load_master_key()
        return self._key

    @property
    def tomb(self) -> MasterKey:
        if self._tomb is None:
            self._tomb = load_master_key(TOMBSTONE_CONN_ID)
        return self._tomb


def context(paths: Paths | None = None, key: MasterKey | None = None, tomb: MasterKey | None = None,
            run_id: str | None = None) -> Context:
    return Context(paths.ensure() if paths else Paths.from_env().ensure(), key, tomb, run_id)


def as_day(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def day_range(first, last) -> list[dt.date]:
    first, last = as_day(first), as_day(last)
    if last < first:
        raise ValueError(f"the last day {last} is before the first day {first}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def present_sources(con, database: str | None = None) -> list[Source]:
    from plus_analytics.storage.duck import tables

    have = tables(con, database)
    return [s for s in load_policy().values() if s.raw_table in have]


# ------------------------------------------------------------------------------------------ ingest, stage

def backfill_bounds(source: str, first=None, last=None, ctx: Context | None = None) -> tuple[dt.date, dt.date] | None:
    """The days a backfill covers for ``source``: from ``first`` to ``last`` (either empty: the first or
    last day with landing files); None when nothing has landed."""
    from plus_analytics.ingest.reading import landed_days

    ctx = ctx or context()
    landed = landed_days(ctx.paths.landing, policy_source(source))
    if not landed and not (first and last):
        return None
    return (as_day(first) if first else landed[0]), (as_day(last) if last else landed[-1])


def ingest_source(source: str, day, ctx: Context | None = None, until=None) -> dict:
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
    with locks.zone(paths.raw_db, write=True, read={"ledger": paths.privacy_db}) as con:
        # A late arrival's identifiers are learned, then deleted: until a rewrite, they stay in freed blocks.
        marked = requests_exist and files.mark_dirty(paths.raw_db)
        results = [r.as_dict() for r in ingest_days(con, src, days, paths.landing, ctx.key, tomb)]
        suppressed = any(r["rows_suppressed"] for r in results)
        per_column = quality.by_column(con, src.name, days)
        quality.write_report(con, src.name, paths.reports / "quality")
        if marked and not suppressed:
            files.unmark_dirty(paths.raw_db)  # under the lock: no other writer can have used the mark
    if suppressed:
        finish_rewrites(paths)
        with locks.zone(paths.privacy_db, write=True, read={"raw": paths.raw_db}) as con:
            copy_outboxes(con, ["raw"])
    if until is None:
        return {**results[0], "quarantined_by_column": per_column}
    counts = ("files", "rows_read", "rows_loaded", "rows_quarantined", "rows_suppressed")
    return {"source": source, "day": days[0].isoformat(), "until": days[-1].isoformat(), "days": len(days),
            **{c: sum(r[c] for r in results) for c in counts}, "quarantined_by_column": per_column}


def stage_source(source: str, day, ctx: Context | None = None, until=None) -> dict:
    from plus_analytics.privacy.staging import current_version
    from plus_analytics.privacy.staging import stage_source as stage

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(paths.staging_db, write=True, read={"raw": paths.raw_db}) as con:
        n = stage(con, policy_source(source), ctx.key, as_day(day) if day is not None else None,
                  as_day(until) if until is not None else None)
        version = current_version(con)
    out = {"source": source, "day": str(day), "rows_staged": n, "staging_version": version}
    if until is not None:
        out["until"] = str(until)
    return out


# ------------------------------------------------------------------------------- build, gate, publish

def staging_version(paths: Paths) -> int:
    from plus_analytics.privacy.staging import current_version

    if not paths.staging_db.exists():
        return 0
    with locks.zone(paths.staging_db) as con:
        return current_version(con)


def marts_fresh(paths: Paths) -> str | None:
    """Why no build is needed (the published marts were made from the current staging, with the current
    k), or None when staging is newer than the published build, or nothing is published."""
    import duckdb

    from plus_analytics.marts.publish import published_version

    current, published = staging_version(paths), published_version(paths.analytics_db)
    if published < current or published < 0:
        return None
    con = duckdb.connect(str(paths.analytics_db), read_only=True)
    try:
        k = sqlf.run(con, "build/meta.sql", "k_anonymity", db="analytics").fetchone()[0]
    finally:
        con.close()
    if k != settings().k:
        return None
    return f"the published marts were built from the current staging (version {current}) with k={k}"


def build_marts(ctx: Context | None = None, force: bool = False, full: bool = False) -> dict:
    """Build the marts into a build file, unless the published ones are already up to date (``force``:
    build anyway). The build starts from a copy of the published marts and recomputes only the days
    staging changed since (:func:`plus_analytics.marts.build.build_marts`), or from nothing when that is
    not possible or ``full``. The file is written under a temporary name, holding its lock and staging's,
    and renamed to ``build-<staging version>-<id>.duckdb`` before the locks are released."""
    import shutil

    from plus_analytics.marts.build import base_for_increment, build_path, new_build_id
    from plus_analytics.marts.build import build_marts as build
    from plus_analytics.marts.publish import remove_unfinished_builds
    from plus_analytics.privacy.staging import current_version
    from plus_analytics.storage import duck

    ctx = ctx or context()
    paths = ctx.paths
    fresh = None if force or full else marts_fresh(paths)
    if fresh:
        log.info("no build needed: %s", fresh)
        return {"skipped": fresh}
    remove_unfinished_builds(paths.builds)
    build_id = new_build_id()
    building = paths.builds / f"building-{build_id}.duckdb"
    with locks.hold({building: True, paths.staging_db: False}):
        copied = not full and paths.analytics_db.exists()
        if copied:
            shutil.copyfile(paths.analytics_db, building)  # published files are replaced whole, never written in place
        con = duck.connect(building)
        try:
            duck.attach(con, paths.staging_db, "stg")
            version = current_version(con, "stg")
            base = None if full else base_for_increment(con, settings().k)
            if base is None and copied:  # start from nothing
                con.close()
                building.unlink()
                con = duck.connect(building)
                duck.attach(con, paths.staging_db, "stg")
            path = build_path(paths, version, build_id)
            b = build(con, settings().k, build_id, path, version, base)
        finally:
            con.close()
        building.rename(path)
        faults.reached("build")
    return {"build_id": b.build_id, "build_file": str(path), "tables": b.tables, "staging_version": version,
            "mode": "full" if base is None else "incremental"}


def gate_build(build: dict, ctx: Context | None = None) -> dict:
    """Audit a build (GX suites + PII detectors + canary); raises GateFailed with a report path."""
    from plus_analytics.gate.run import audit_build

    ctx = ctx or context()
    paths, path = ctx.paths, Path(build["build_file"])
    if not path.exists():
        return {"skipped": f"build {build['build_id']} was removed as superseded by a newer publish"}
    with locks.zone(None, read={"build": path, "raw": paths.raw_db, "stg": paths.staging_db}) as con:
        if "build" not in {r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()}:
            return {"skipped": f"build {build['build_id']} was removed as superseded by a newer publish"}
        return audit_build(con, paths.reports / "gate" / build["build_id"], build["build_id"])


def publish_build(build: dict, gate: dict, ctx: Context | None = None) -> dict:
    from plus_analytics.marts.publish import publish

    ctx = ctx or context()
    if not gate.get("passed"):
        raise RuntimeError("refusing to publish a build that did not pass the gate")
    published = publish(Path(build["build_file"]), ctx.paths.analytics_db)
    if not published:
        return {"skipped": f"build {build['build_id']} is older than the published marts (superseded)"}
    return {"published": str(ctx.paths.analytics_db), "build_id": build["build_id"], "tables": build["tables"],
            "staging_version": build["staging_version"]}


# ------------------------------------------------------------------------------------------ key rotation

def rekey_restricted(ctx: Context | None = None) -> dict:
    from plus_analytics.erasure.requests import rekey_requests
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.privacy.rotation import rekey_restricted as rekey

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(paths.raw_db, write=True) as con:
        out = rekey(con, ctx.key)
    if paths.privacy_db.exists():
        with locks.zone(paths.privacy_db, write=True) as con:
            ensure_schema(con)
            out["requests_rekeyed"] = rekey_requests(con, ctx.key, ctx.tomb)
    return {"key_version": ctx.key.version, **out}


def restage_all(ctx: Context | None = None) -> dict:
    from plus_analytics.privacy.staging import restage_all as restage

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(paths.staging_db, write=True, read={"raw": paths.raw_db}) as con:
        counts = restage(con, present_sources(con, "raw"), ctx.key, what=f"key rotation to version {ctx.key.version}")
    return {"key_version": ctx.key.version, "rows_staged": counts}


# ------------------------------------------------------------------------------------------ rewrites

def finish_rewrites(paths: Paths) -> list[str]:
    """Rewrite every zone file a dead run left marked as holding deleted values in freed blocks."""
    done = []
    for db in (paths.raw_db, paths.staging_db, paths.privacy_db):
        if files.is_dirty(db):
            with locks.hold({db: True}):
                files.rewrite_database(db)
            done.append(db.name)
    return done


# ------------------------------------------------------------------------------------------ erasure

def register_requests(requests: list, ctx: Context | None = None) -> list[str]:
    """Register deletion requests (:class:`plus_analytics.erasure.intake.Request`) in one transaction."""
    from plus_analytics.erasure.intake import register_many
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.privacy.identifiers import check_key

    ctx = ctx or context()
    key, tomb = ctx.key, ctx.tomb  # no key, no request: fail before anything is written
    _check_pseudonym_key(ctx)
    with locks.zone(ctx.paths.privacy_db, write=True, timeout=min(settings().lock_timeout, 60)) as con:
        ensure_schema(con)
        check_key(con, tomb, "tombstone")
        return register_many(con, key, tomb, requests)


def _check_pseudonym_key(ctx: Context) -> None:
    """The pseudonym key must be the one the restricted zone was written with (a lost key would make an
    erasure find nothing and report it done). A read-only check: a zone without a key registry holds no
    pseudonym yet, and ingest registers the key on first use."""
    from plus_analytics.privacy.identifiers import check_key
    from plus_analytics.storage.duck import tables

    if ctx.paths.raw_db.exists():
        with locks.zone(ctx.paths.raw_db) as con:
            if "key_registry" in tables(con):
                check_key(con, ctx.key, register=False)


def check_keys(ctx: Context) -> None:
    """Fail fast, before any DAG runs: the keys must load and be the ones the data was written with."""
    from plus_analytics.privacy.identifiers import check_key
    from plus_analytics.storage.duck import tables

    for db, key, purpose in ((ctx.paths.raw_db, lambda: ctx.key, "pseudonym"), (ctx.paths.privacy_db, lambda: ctx.tomb, "tombstone")):
        k = key()
        if db.exists():
            with locks.zone(db) as con:
                if "key_registry" in tables(con):
                    check_key(con, k, purpose, rotating=purpose == "pseudonym", register=False)


def _ledger_step(ctx: Context, step: str, read: dict[str, Path], work, write_ledger: bool = True) -> dict:
    """Run ``work(con, ids)`` for the requests waiting for ``step``, in one session: the ledger read-write
    with ``read`` attached read-only. Nothing waiting: skipped."""
    from plus_analytics.erasure import requests
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.privacy.identifiers import check_key

    if not ctx.paths.privacy_db.exists():
        return {"skipped": "no deletion requests"}
    with locks.zone(ctx.paths.privacy_db, write=True, read=read) as con:
        ensure_schema(con)
        ids = requests.take(con, step)
        if not ids:
            return {"skipped": f"no request waiting for {step}"}
        check_key(con, ctx.tomb, "tombstone")
        out = work(con, ids)
    log.info("erasure %s: %s", step, out)
    return out


def erasure_resolve(ctx: Context | None = None) -> dict:
    from plus_analytics.erasure.resolve import resolve

    ctx = ctx or context()
    _check_pseudonym_key(ctx)
    return _ledger_step(ctx, "resolve", {"raw": ctx.paths.raw_db},
                        lambda con, ids: resolve(con, present_sources(con, "raw"), ctx.key, ctx.tomb, ids, ctx.run_id))


def erasure_select(ctx: Context | None = None) -> dict:
    from plus_analytics.erasure.remove import select

    ctx = ctx or context()
    return _ledger_step(ctx, "select", {"raw": ctx.paths.raw_db},
                        lambda con, ids: select(con, present_sources(con, "raw"), ctx.paths.landing, ctx.key, ctx.tomb, ids,
                                               ctx.run_id))


def erasure_remove(ctx: Context | None = None) -> dict:
    """Carry out the selection in landing and the restricted zone (raw read-write, ledger read-write)."""
    from plus_analytics.erasure import requests
    from plus_analytics.erasure.remove import apply

    ctx = ctx or context()
    paths = ctx.paths
    if not paths.privacy_db.exists():
        return {"skipped": "no deletion requests"}
    with locks.zone(paths.raw_db, write=True, attach_write={"ledger": paths.privacy_db}) as con:
        con.execute("use ledger")
        ids = requests.take(con, "remove")
        con.execute("use raw")
        if not ids:
            return {"skipped": "no request waiting for remove"}
        files.mark_dirty(paths.raw_db)
        return apply(con, present_sources(con), paths.landing, ctx.key, ctx.tomb, ids, ctx.run_id)


def erasure_restage(ctx: Context | None = None) -> dict:
    """Staging follows the restricted zone for the removed requests (staging read-write, ledger read-write)."""
    from plus_analytics.erasure import requests
    from plus_analytics.ledger import evidence
    from plus_analytics.privacy.staging import restage_erased
    from plus_analytics.storage.duck import transaction

    ctx = ctx or context()
    paths = ctx.paths
    if not paths.privacy_db.exists():
        return {"skipped": "no deletion requests"}
    with locks.zone(paths.staging_db, write=True, read={"raw": paths.raw_db},
                    attach_write={"ledger": paths.privacy_db}) as con:
        con.execute("use ledger")
        ids = requests.take(con, "restage")
        con.execute("use staging")
        if not ids:
            return {"skipped": "no request waiting for restage"}
        files.mark_dirty(paths.staging_db)
        version = restage_erased(con, present_sources(con, "raw"), ctx.key, ids)
        con.execute("use ledger")
        with transaction(con):
            evidence.append_many(con, [dict(request_id=rid, event="restaged", layer="staging", location="stg tables",
                                            detail=f"staging rows of the removed rows deleted, references restaged "
                                                   f"(staging version {version})") for rid in ids])
            requests.advance(con, ids, "restaged", ctx.run_id, restaged_version=version)
        con.execute("use staging")
    return {"requests": len(ids), "staging_version": version}


def erasure_confirm_published(ctx: Context | None = None) -> dict:
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

    return _ledger_step(ctx, "confirm_published", {}, work)


def erasure_rewrite(ctx: Context | None = None) -> dict:
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
    with locks.zone(paths.privacy_db) as con:
        waiting = requests.take(con, "rewrite") if "tombstones" in tables(con) else []
    if not waiting:
        return {"skipped": "no request waiting for rewrite"}
    sizes = {}
    for db in (paths.raw_db, paths.staging_db):
        with locks.hold({db: True}):
            sizes[db.name] = files.rewrite_database(db)
    removed = remove_stale_builds(paths.builds, published_version(paths.analytics_db))
    detail = (f"database files rewritten ({', '.join(f'{k} {v:,} bytes' for k, v in sizes.items())}); "
              f"{len(removed)} older build file(s) removed")
    with locks.zone(paths.privacy_db, write=True) as con:
        ensure_schema(con)
        ids = [rid for rid in requests.take(con, "rewrite") if rid in waiting]  # rewritten before, not after, this step
        with transaction(con):
            evidence.append_many(con, [dict(request_id=rid, event="rewritten", layer="all", location=", ".join(sizes),
                                            detail=detail) for rid in ids])
            requests.advance(con, ids, "rewritten", ctx.run_id)
    return {"requests": len(ids), "database_bytes": sizes, "builds_removed": len(removed)}


def erasure_verify(ctx: Context | None = None) -> dict:
    """Check every layer for the rewritten (and previously failed) requests; record the outcome."""
    from plus_analytics.erasure.verify import verify
    from plus_analytics.marts.publish import published_version

    ctx = ctx or context()
    paths = ctx.paths
    published = published_version(paths.analytics_db)
    return _ledger_step(ctx, "verify", {"raw": paths.raw_db, "stg": paths.staging_db},
                        lambda con, ids: verify(con, present_sources(con, "raw"), ctx.key, ctx.tomb, ids, paths.home,
                                                published, ctx.run_id, skip=(paths.secrets,)))


def dpo_report(ctx: Context | None = None, fail_on_overdue: bool = True) -> dict:
    """The DPO report, and a signed certificate for every request newly verified (or found to have no
    data); overdue or failed requests fail the task."""
    from plus_analytics.erasure.report import collect, write_report
    from plus_analytics.ledger import ensure_schema
    from plus_analytics.ledger.outbox import copy_outboxes

    ctx = ctx or context()
    paths = ctx.paths
    with locks.zone(paths.privacy_db, write=True, read={"raw": paths.raw_db, "stg": paths.staging_db}) as con:
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
    import datetime as _dt

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
    issued_at = _dt.datetime.now(_dt.UTC).replace(tzinfo=None, microsecond=0)
    head = (data["evidence"][-1]["seq"], data["evidence_head_hash"]) if data["evidence"] else (0, "")
    for r in todo:
        payload = certificate.payload_for(r, data["evidence"], (data["chain_intact"], data["chain_records"]), head,
                                          key.public_key(), issued_at)
        certificate.write(certificate.sign(payload, key), out_dir)
    return len(todo)


# ------------------------------------------------------------------------------------------ retention

def enforce_retention(as_of=None, ctx: Context | None = None, spec=None) -> dict:
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
    finish_rewrites(paths)
    ev = retention.new_run(as_of)
    out = {"run_id": ev.run_id, "as_of": as_of.isoformat(), "rows_destroyed": 0}
    with locks.zone(paths.raw_db, write=True) as con:
        ensure_raw_schema(con)
        expired = retention.expire_landing(paths.landing, spec, as_of)
        out["landing_partitions_removed"] = len(expired)
        out["rows_destroyed"] += retention.destroy_restricted(con, paths.raw_db, expired, ev, spec, as_of)
    if paths.staging_db.exists():
        with locks.zone(paths.staging_db, write=True) as con:
            out["rows_destroyed"] += retention.destroy_staging(con, paths.staging_db, ev, spec, as_of)
    out["files_rewritten"] = finish_rewrites(paths)
    with locks.zone(paths.privacy_db, write=True, read={"raw": paths.raw_db, "stg": paths.staging_db}) as con:
        ensure_schema(con)
        out["evidence_copied"] = copy_outboxes(con, ["raw", "stg"])["retention"]
    out["old_files_removed"] = retention.remove_old_files(paths, spec)
    log.info("retention: %s", out)
    return out


# ------------------------------------------------------------------------------------------ audit

def pii_audit(records: str = "api", since: dt.datetime | None = None, ctx: Context | None = None) -> dict:
    """Scan the analytics zone, task logs and Airflow's records (``records``: ``api`` through the REST API,
    as tasks must; ``database`` through Airflow's session, for the CLI). Findings fail the task."""
    from plus_analytics import audit
    from plus_analytics.config import AIRFLOW_API_CONN_ID

    ctx = ctx or context()
    paths = ctx.paths
    source = audit.RestApiRecords.from_connection(AIRFLOW_API_CONN_ID, since) if records == "api" else audit.DatabaseRecords()
    try:
        texts = list(audit.log_texts(paths.airflow_home / "logs")) + list(source.texts())
    except audit.AuditIncomplete:
        raise
    except Exception as exc:  # noqa: BLE001 - a source that cannot be read must fail the audit, loudly
        raise audit.AuditIncomplete(f"Airflow's records could not be read ({type(exc).__name__}: {exc})") from None
    if not paths.raw_db.exists():
        raise audit.AuditIncomplete("the restricted zone is missing: the canary has nothing to compare against")
    with locks.zone(None, read={"raw": paths.raw_db, "analytics": paths.analytics_db}) as con:
        findings = audit.audit(con, texts, analytics=paths.analytics_db.exists())
    out = audit.write_report(paths.reports / "audit", findings, len(texts))
    if not out["clean"]:
        raise RuntimeError(f"PII audit found {out['findings']} finding(s); locations only in {out['report']}")
    return out
