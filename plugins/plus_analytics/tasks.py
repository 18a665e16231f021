"""What the Airflow tasks do, one function each, callable with or without Airflow.

Inside a task, zones are opened through the Airflow DuckDB provider's hook (connections
``plus_duckdb_raw`` / ``plus_duckdb_staging`` / ``plus_duckdb_build``: the path is the connection's
host, limits its extra), and the key comes from the ``plus_pseudonym_key`` connection. Outside Airflow
(CLI, tests) pass ``use_hooks=False`` and the paths come from ``Paths``.

Return values go to XCom: counts, dates and file names only, never an identifier.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from pathlib import Path

from plus_analytics.config import BUILD_CONN_ID, RAW_CONN_ID, STAGING_CONN_ID, TOMBSTONE_CONN_ID, Paths, k_anonymity

log = logging.getLogger(__name__)


def zone_path(conn_id: str, default: Path) -> Path:
    """The database file an Airflow DuckDB connection points at (its host), else the default path."""
    try:
        from airflow.sdk import BaseHook

        host = BaseHook.get_connection(conn_id).host
        return Path(host) if host else default
    except Exception:
        return default


@contextmanager
def open_zone(conn_id: str, default: Path, use_hooks: bool, database: Path | None = None, read_only: bool = False):
    from plus_analytics import db

    if use_hooks:
        con = db.hook_connect(conn_id, database, read_only)
    else:
        con = db.connect(database or default, read_only)
    try:
        yield con
    finally:
        con.close()


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


def backfill_bounds(source: str, first=None, last=None, paths: Paths | None = None) -> tuple[dt.date, dt.date] | None:
    """The days a backfill covers for ``source``: from ``first`` to ``last`` (either empty: the first or
    last day with landing files); None when nothing has landed."""
    from plus_analytics.ingest.loader import landed_days
    from plus_analytics.policy import source as get_source

    paths = paths or Paths.from_env()
    landed = landed_days(paths.landing, get_source(source))
    if not landed and not (first and last):
        return None
    return (as_day(first) if first else landed[0]), (as_day(last) if last else landed[-1])


def ingest_source(source: str, day, paths: Paths | None = None, key=None, use_hooks: bool = True, tomb_key=None,
                  until=None) -> dict:
    """Ingest one landing day of ``source`` (a daily run), or every day from ``day`` to ``until`` in one
    batch (a backfill). Returns the day's counts, or for a range their sums."""
    from plus_analytics.erasure.intake import register_tombstone_key
    from plus_analytics.erasure.suppression import has_tombstones
    from plus_analytics.ingest.loader import ingest_days
    from plus_analytics.policy import source as get_source
    from plus_analytics.privacy.keys import load_master_key

    paths = (paths or Paths.from_env()).ensure()
    key = key or load_master_key()
    src = get_source(source)
    days = day_range(day, until) if until is not None else [as_day(day)]
    with open_zone(RAW_CONN_ID, paths.raw_db, use_hooks) as con:
        suppress = has_tombstones(con)  # False on a new zone; ingest_days creates the schema
        if suppress:  # erased subjects exist: the tombstone key is required (no key, no run)
            register_tombstone_key(con, tomb_key or load_master_key(TOMBSTONE_CONN_ID))
        results = [r.as_dict() for r in ingest_days(con, src, days, paths.landing, key, suppress=suppress)]
    if until is None:
        return results[0]
    counts = ("files", "rows_read", "rows_loaded", "rows_quarantined", "rows_suppressed")
    return {"source": source, "day": days[0].isoformat(), "until": days[-1].isoformat(), "days": len(days),
            **{c: sum(r[c] for r in results) for c in counts}}


def stage_source(source: str, day, paths: Paths | None = None, key=None, use_hooks: bool = True, until=None) -> dict:
    from plus_analytics import db
    from plus_analytics.policy import source as get_source
    from plus_analytics.privacy.keys import load_master_key
    from plus_analytics.privacy.staging import stage_source as stage

    paths = (paths or Paths.from_env()).ensure()
    key = key or load_master_key()
    src = get_source(source)
    raw_path = zone_path(RAW_CONN_ID, paths.raw_db) if use_hooks else paths.raw_db
    with open_zone(STAGING_CONN_ID, paths.staging_db, use_hooks) as con:
        db.attach(con, raw_path, "raw", read_only=True)
        n = stage(con, src, key, as_day(day) if day is not None else None,
                  until=as_day(until) if until is not None else None)
    out = {"source": source, "day": str(day), "rows_staged": n}
    if until is not None:
        out["until"] = str(until)
    return out


def build_marts(paths: Paths | None = None, use_hooks: bool = True) -> dict:
    from plus_analytics.marts.build import build_marts as build
    from plus_analytics.marts.build import new_build_path

    paths = (paths or Paths.from_env()).ensure()
    build_id, path = new_build_path(paths)
    with open_zone(BUILD_CONN_ID, path, use_hooks, database=path) as con:
        b = build(paths, k_anonymity(), build_id, path, con=con)
    return {"build_id": b.build_id, "build_file": str(b.path), "tables": b.tables}


def gate_build(build: dict, paths: Paths | None = None) -> dict:
    """Audit a build (GX suites + PII detectors + canary); raises GateFailed with a report path."""
    from plus_analytics.gate.run import run_gate

    paths = (paths or Paths.from_env()).ensure()
    return run_gate(Path(build["build_file"]), paths, build["build_id"])


def publish_build(build: dict, gate: dict, paths: Paths | None = None) -> dict:
    from plus_analytics.marts.build import publish

    paths = (paths or Paths.from_env()).ensure()
    if not gate.get("passed"):
        raise RuntimeError("refusing to publish a build that did not pass the gate")
    publish(Path(build["build_file"]), paths.analytics_db)
    return {"published": str(paths.analytics_db), "build_id": build["build_id"], "tables": build["tables"]}


def rekey_restricted(paths: Paths | None = None, key=None, use_hooks: bool = True) -> dict:
    from plus_analytics.privacy.keys import load_master_key
    from plus_analytics.privacy.rotation import rekey_restricted as rekey

    paths = (paths or Paths.from_env()).ensure()
    key = key or load_master_key()
    with open_zone(RAW_CONN_ID, paths.raw_db, use_hooks) as con:
        out = rekey(paths, key, con=con)
    return {"key_version": key.version, **out}


def restage_all(paths: Paths | None = None, key=None, use_hooks: bool = True) -> dict:
    from plus_analytics.privacy.keys import load_master_key
    from plus_analytics.privacy.rotation import restage

    paths = (paths or Paths.from_env()).ensure()
    key = key or load_master_key()
    raw_path = zone_path(RAW_CONN_ID, paths.raw_db) if use_hooks else paths.raw_db
    with open_zone(STAGING_CONN_ID, paths.staging_db, use_hooks) as con:
        counts = restage(paths, key, con=con, raw_path=raw_path)
    return {"key_version": key.version, "rows_staged": counts}


def erase_pending(paths: Paths | None = None, key=None, tomb_key=None) -> dict:
    """Propagate, physically erase and verify every pending deletion request (one task: the subject's
    raw forms must live only in this process's memory)."""
    from plus_analytics.erasure.propagate import erase_pending as erase
    from plus_analytics.privacy.keys import load_master_key

    paths = (paths or Paths.from_env()).ensure()
    key = key or load_master_key()
    tomb_key = tomb_key or load_master_key(TOMBSTONE_CONN_ID)
    return erase(paths, key, tomb_key, k_anonymity())


def tombstone_report(paths: Paths | None = None, fail_on_overdue: bool = True) -> dict:
    from plus_analytics.erasure.report import write_report

    paths = (paths or Paths.from_env()).ensure()
    out = write_report(paths)
    if fail_on_overdue and out["overdue"]:
        raise RuntimeError(f"{out['overdue']} deletion request(s) are OVERDUE: see {out['html']}")
    return out


def enforce_retention(as_of=None, paths: Paths | None = None) -> dict:
    from plus_analytics.retention import enforce

    paths = (paths or Paths.from_env()).ensure()
    return enforce(paths, as_day(as_of) if as_of else None)


def pii_audit(paths: Paths | None = None) -> dict:
    from plus_analytics.gate.audit import run_audit

    paths = (paths or Paths.from_env()).ensure()
    out = run_audit(paths)
    if not out["clean"]:
        raise RuntimeError(f"PII audit found {out['findings']} finding(s); locations only in {out['report']}")
    return out


def register_request(params: dict, paths: Paths | None = None) -> dict:
    """Intake from the Airflow params form: pseudonymize and register; only the request id leaves."""
    from plus_analytics.erasure.intake import register
    from plus_analytics.privacy.keys import load_master_key
    from plus_analytics.privacy.normalize import InvalidIdentifier

    paths = (paths or Paths.from_env()).ensure()
    key, tomb = load_master_key(), load_master_key(TOMBSTONE_CONN_ID)
    option = params.get("id_kind")
    try:
        with open_zone(RAW_CONN_ID, paths.raw_db, True) as con:
            rid = register(con, key, tomb, option, str(params.get("identifier") or ""), str(params.get("requester") or "DPO"),
                           deadline_days=int(params.get("deadline_days") or 30))
    except InvalidIdentifier as exc:
        raise ValueError(f"the {option} given is invalid: {exc}") from None  # the message never holds the value
    except KeyError:
        raise ValueError(f"unknown identifier kind {option!r}") from None
    return {"request_id": rid}
