"""Every DAG at once under the real scheduler (scheduler, DAG processor, API server, triggerer; tasks in
parallel worker processes with no metadata-database access), on the LocalExecutor with SQLite and with
PostgreSQL, and on the CeleryExecutor with two workers (PostgreSQL and Redis started under the data
directory, as ``PLUS_AIRFLOW_EXECUTOR=celery make airflow`` does), while an analyst queries the
published database every half second; the deletion request is registered by the DPO on the Privacy
page, which starts its erasure run.

Asserted: every run succeeds; no task log holds a lock error; no analyst query fails; the erasure request
is verified; the published marts equal those of the ``dag.test()`` path on the same data with the same
erasure; on PostgreSQL, no byte of the erased identifier is anywhere in the metadata database's files
(with Celery: nor in Redis's); with Celery, both workers ran tasks.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager, nullcontext

import duckdb
import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.erasure.intake import Request
from plus_analytics.generate import generate
from plus_analytics.policy import load_policy
from plus_analytics.scheduler import ALL_DAGS, LocalAirflow
from plus_analytics.storage import locks
from plus_analytics.storage.files import files_under, scan_bytes
from tests.conftest import DAYS, SCALE, START
from tests.helpers import build, busiest_cookie, ctx, gate, opened, publish, run_erasure, table_rows
from tests.services import free_port, postgres, shared_tempdir

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]
MARTS = ["mart_daily_active_usage", "mart_feature_usage", "mart_chat_volume", "mart_crm_activity",
         "mart_crm_pipeline", "mart_ad_performance", "meta_consent_exclusions"]
LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "ZoneBusy", "database is locked", "NestedZoneSession")

ANALYST = textwrap.dedent("""
    import sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    ok = failed = 0
    import os
    while not os.path.exists(stop):
        try:
            con = duckdb.connect(path, read_only=True)
            con.execute("select count(*), max(build_id) from mart_daily_active_usage, meta_build_info").fetchall()
            con.close()
            ok += 1
        except Exception as exc:
            failed += 1
            print("FAILED", type(exc).__name__, exc, flush=True)
        time.sleep(0.5)
    print("OK", ok, "FAILED", failed, flush=True)
""")


def _marts(path) -> dict:
    return table_rows(path, MARTS)


@pytest.fixture(scope="module")
def baseline(pipeline, tmp_path_factory, key):
    """The dag.test() path on the same generated data, with the same erasure: what the marts must be."""
    home = Paths(tmp_path_factory.mktemp("baseline")).ensure()
    for d in ("landing", "restricted", "warehouse", "analytics"):
        shutil.copytree(pipeline.home / d, home.home / d, dirs_exist_ok=True)
    cookie = busiest_cookie(home.raw_db)
    steps.erasure.register([Request("cookie_id", cookie, "scheduler test")], ctx(home, key))
    out = run_erasure(home, key)
    assert out["verify"]["verified"] == 1
    return {"marts": _marts(home.analytics_db), "cookie": cookie}


def _prepare(home: Paths, key) -> None:
    """Every day landed and ingested once, the marts published (analysts have something from the start):
    the concurrent runs re-ingest, rebuild and erase on top of that."""
    generate(home.landing, days=DAYS, scale=SCALE, seed=11, start=START)
    c = ctx(home, key)
    for src in load_policy():
        steps.ingest.ingest(src, START, c, until=START + dt.timedelta(days=DAYS - 1))
        steps.ingest.stage(src, START, c, until=START + dt.timedelta(days=DAYS - 1))
    b = build(home)
    publish(home, b, gate(home, b))


def _register_on_the_privacy_page(af: LocalAirflow, cookie: str) -> tuple[str, tuple[str, str]]:
    """The DPO registers the deletion request on the Privacy page (its form, its token, this origin), which
    starts plus_erasure for it: the request id and that run."""
    with af.client() as c:
        page = c.get("/plus-privacy/")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = c.post("/plus-privacy/requests", headers={"Origin": af.base_url}, follow_redirects=False,
                   data={"id_kind": "cookie_id", "identifier": cookie, "requester": "scheduler test",
                         "deadline_days": "30", "csrf": token})
    assert r.status_code == 303, r.text[:500]
    rid = r.headers["location"].split("registered=")[1]
    return rid, ("plus_erasure", f"privacy__{rid}")


def _trigger_everything(af: LocalAirflow) -> list[tuple[str, str]]:
    runs = []
    for i in range(DAYS):
        logical = (dt.datetime.combine(START + dt.timedelta(days=i + 1), dt.time()).isoformat() + "Z")
        for product in ("platform", "connect", "crm", "adtech"):
            runs.append((f"plus_ingest_{product}", af.trigger(f"plus_ingest_{product}", logical)))
    now = dt.datetime.now(dt.UTC).isoformat()
    runs.append(("plus_backfill", af.trigger("plus_backfill", now)))
    runs.append(("plus_marts", af.trigger("plus_marts", now)))
    runs.append(("plus_erasure", af.trigger("plus_erasure", now)))
    runs.append(("plus_retention", af.trigger("plus_retention", now, {"as_of": (START + dt.timedelta(days=DAYS)).isoformat()})))
    runs.append(("plus_pii_audit", af.trigger("plus_pii_audit", now)))
    runs.append(("plus_rotate_keys", af.trigger("plus_rotate_keys", now)))
    return runs


@contextmanager
def _zone_locks_seen(af: LocalAirflow):
    """With Celery, how many zone locks tasks held in PostgreSQL at most, sampled while the block runs."""
    seen = {"held": 0}
    url = af.env().get("PLUS_ZONE_LOCKS") if af.workers else None
    if not url:
        yield seen
        return
    import psycopg2

    done = threading.Event()

    def sample():
        with psycopg2.connect(locks._dsn(url)) as con, con.cursor() as cur:
            while not done.wait(0.1):
                cur.execute("select count(*) from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a on a.pid = l.pid "
                            "where l.locktype = 'advisory' and l.granted and a.application_name like 'plus-analytics %'")
                seen["held"] = max(seen["held"], cur.fetchone()[0])
                con.rollback()

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        done.set()
        t.join(10)


def _lock_errors(logs) -> list[str]:
    found = []
    for f in files_under(logs):
        text = f.read_text(errors="replace")
        found += [f"{f.relative_to(logs)}: {e}" for e in LOCK_ERRORS if e in text]
    return found


def _diagnosis(home: Paths, failed: dict) -> str:
    """What a CI log needs to tell why: the failed tasks' last log lines, the audit's findings, the
    erasure ledger (all hold locations and states, never an identifier)."""
    out = []
    for (dag_id, run_id), tasks in failed.items():
        for task_id, state in tasks.items():
            if state in ("failed", "upstream_failed"):
                for f in sorted((home.airflow_home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log")):
                    out += [f"--- {f.relative_to(home.airflow_home)}"] + f.read_text(errors="replace").splitlines()[-15:]
    for f in sorted((home.reports / "audit").glob("*.json"))[-1:]:
        out += [f"--- {f.name}", f.read_text()[:3000]]
    # Erasure's verification: which check found something, and where its byte scan did (paths, never values).
    out += ["--- verification"] + [ln[:600] for f in sorted((home.airflow_home / "logs").glob("dag_id=plus_erasure/*/task_id=verify/*.log"))
                                   for ln in f.read_text(errors="replace").splitlines() if "still in" in ln]
    try:
        with opened(home.privacy_db, read_only=True) as con:
            out += ["--- tombstones", str(con.execute("select request_id, status from tombstones").fetchall())]
            out += [str(r) for r in con.execute("select request_id, event, check_result, location from erasure_evidence "
                                                "where event like 'verified_%' or event = 'failed' order by seq").fetchall()]
    except duckdb.Error as exc:
        out += [f"--- tombstones unreadable: {exc}"]
    return "\n".join(out)


def _hosts(af: LocalAirflow, runs) -> set[str]:
    """The host names the runs' task instances recorded (with Celery: ``worker-N@host``)."""
    hosts = set()
    with af.client() as c:
        for dag_id, run_id in runs:
            tis = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}).json()
            hosts |= {t["hostname"] for t in tis.get("task_instances", []) if t.get("hostname")}
    return hosts


@pytest.fixture
def where(metadata, tmp_path):
    """The test's directory; with Celery one PostgreSQL (its own user, under root) may pass through."""
    if metadata != "celery":
        yield tmp_path
        return
    root = shared_tempdir("plus-celery-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("metadata", ["sqlite", "postgres", "celery"])
def test_every_dag_at_once_under_the_real_scheduler(metadata, where, baseline, tmp_path, key):
    home = Paths(where / "home").ensure()
    _prepare(home, key)
    env = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs this test triggers
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}  # task logs as a deployment keeps them (and the audit reads)
    with postgres() if metadata == "postgres" else nullcontext() as pg:
        if pg:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = pg[0]
        af = LocalAirflow(home, port=free_port(), env=env, **({"executor": "celery", "workers": 2} if metadata == "celery" else {}))
        stop = tmp_path / "analyst.stop"
        analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(home.analytics_db), str(stop)],
                                   stdout=subprocess.PIPE, text=True)
        started = time.monotonic()
        af.start()
        try:
            af.wait_ready()
            # Every run is created while the DAGs are paused, then they are unpaused at once: on SQLite, a run
            # triggered while tasks were starting once held the API server and the scheduler on the database lock
            # for the whole busy timeout, and the scheduler exited (README, "make airflow"). That is Airflow's
            # SQLite limit, not what this test is about; PostgreSQL has no such stall.
            rid, erasure = _register_on_the_privacy_page(af, baseline["cookie"])
            runs = [erasure, *_trigger_everything(af)]
            with _zone_locks_seen(af) as seen:  # with Celery, the zones' locks are PostgreSQL's advisory locks
                af.unpause(ALL_DAGS)
                states = af.wait(runs, timeout=1500)
            failed = {r: af.task_states(*r) for r, s in states.items() if s != "success"}
            assert not failed, f"runs that did not succeed (task states): {failed}\n{_diagnosis(home, failed)}"
            final = ("plus_marts", af.trigger("plus_marts", dt.datetime.now(dt.UTC).isoformat()))
            assert af.wait([final], timeout=600)[final] == "success"  # the freshness check: staging newer? rebuild
            hosts = _hosts(af, runs)
        finally:
            af.stop()
            stop.touch()
            out, _ = analyst.communicate(timeout=60)
        assert af.leftovers() == [], "every Airflow process (the API server's workers too) is stopped"
        elapsed = time.monotonic() - started
        servers = [pg[1]] if pg else [home.airflow_home / "postgres", home.airflow_home / "redis"] if af.workers else []
        for where in servers:
            leaked = scan_bytes(where, [baseline["cookie"].encode()])
            assert leaked == {}, f"the erased identifier is in {where}: {sorted(leaked)[:3]}"
        if af.workers:
            assert (home.airflow_home / "redis" / "dump.rdb").exists() and any((home.airflow_home / "postgres").rglob("*"))
            assert {h.split("@")[0] for h in hosts} == {"worker-1", "worker-2"}, f"tasks ran on {sorted(hosts)}"
            assert seen["held"] > 0, "no task held a zone lock in PostgreSQL"
    print(f"\n{metadata}: {len(runs) + 1} runs in {elapsed:.0f}s; analyst: {out.strip().splitlines()[-1]}")
    assert out.strip().splitlines()[-1].endswith("FAILED 0") and int(out.split("OK ")[-1].split()[0]) > 10, out[-2000:]
    assert _lock_errors(home.airflow_home / "logs") == []
    with opened(home.privacy_db, read_only=True) as con:
        assert con.execute("select status from tombstones where request_id = ?", [rid]).fetchone()[0] == "verified"
    assert _marts(home.analytics_db) == baseline["marts"]

