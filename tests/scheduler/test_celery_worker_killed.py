"""A Celery worker dies (SIGKILL to it and everything it started, as when its machine goes) while it runs
an ingest task, on the deployment ``PLUS_AIRFLOW_EXECUTOR=celery make airflow`` starts (two workers,
PostgreSQL and Redis under the data directory): the scheduler sees the task's heartbeat stop, the retry
runs on the other worker, the run succeeds, the day's lines are each accounted for once (nothing of the
killed try half-written or duplicated), and stopping the deployment leaves nothing running."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import time

import psutil
import pytest

from plus_analytics.config import Paths
from plus_analytics.generate import generate
from plus_analytics.scheduler import LocalAirflow
from tests.conftest import SCALE, START
from tests.helpers import every_line_once
from tests.services import free_port, shared_tempdir

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]
DAG = "plus_ingest_platform"


@pytest.fixture
def home():
    root = shared_tempdir("plus-celery-kill-")  # PostgreSQL runs as its own user under root: it must pass
    yield Paths(root / "home").ensure()
    shutil.rmtree(root, ignore_errors=True)


def _running_ingest(af: LocalAirflow, run_id: str, timeout: float = 300) -> tuple[str, str]:
    """(task id, host) of the first ingest task seen running with its worker known."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with af.client() as c:
            tis = c.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances", params={"limit": 100}).json()["task_instances"]
        for t in tis:
            if t["task_id"].startswith("ingest_") and t["state"] == "running" and t.get("hostname"):
                return t["task_id"], t["hostname"]
        assert af.run_state(DAG, run_id) not in ("success", "failed"), "the run ended before an ingest was seen running"
        time.sleep(0.2)
    raise TimeoutError("no ingest task of the run started")


def _tries(af: LocalAirflow, run_id: str, task_id: str) -> list[tuple[int, str, str]]:
    with af.client() as c:
        tries = c.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/tries").json()["task_instances"]
    return sorted((t["try_number"], t.get("hostname") or "", t["state"]) for t in tries)


def test_a_killed_workers_task_is_retried_on_the_other_worker(home):
    generate(home.landing, days=1, scale=SCALE, seed=5, start=START)
    env = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
           "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",  # a dead worker's task noticed in seconds
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    af = LocalAirflow(home, port=free_port(), env=env, executor="celery", workers=2)
    af.start()
    try:
        af.wait_ready(dags=(DAG,))
        run_id = af.trigger(DAG, dt.datetime.combine(START + dt.timedelta(days=1), dt.time()).isoformat() + "Z")
        af.unpause([DAG])
        task, host = _running_ingest(af, run_id)
        worker = host.split("@")[0]
        proc = af.procs.pop(worker)  # the machine is gone: nothing restarts it
        gone = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        assert len(gone) > 2, "the worker, its pool and the task's supervisor and process"
        for pid in gone:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        state = af.wait([(DAG, run_id)], timeout=900)[(DAG, run_id)]
        states = af.task_states(DAG, run_id)
        tries = _tries(af, run_id, task)
        others = {n for n in af.procs if n.startswith("worker-")}
    finally:
        af.stop()
    assert af.leftovers() == []
    assert [pid for pid in gone if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE] == []
    assert state == "success", f"the run after {worker} was killed while it ran {task}: {states}"
    assert set(states.values()) == {"success"}
    assert tries[0][:2] == (1, host) and tries[0][2] != "success", f"the killed try: {tries}"
    assert tries[-1][2] == "success" and tries[-1][1].split("@")[0] in others, f"the retry ran on the other worker: {tries}"
    every_line_once(home.raw_db, START, ["platform_accounts", "platform_consent", "platform_usage_events"])
