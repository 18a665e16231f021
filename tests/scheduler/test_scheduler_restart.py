"""The scheduler killed (SIGKILL, no clean-up) while a DAG run's task is running, then started again as
``make airflow`` does (:meth:`LocalAirflow.revive`): the run still succeeds, every line of the day is
accounted for once, nothing but the scheduler was restarted, and stopping Airflow stops what the killed
scheduler left behind (its executor workers)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import psutil
import pytest

from plus_analytics.config import Paths
from plus_analytics.generate import generate
from plus_analytics.scheduler import LocalAirflow
from tests.conftest import SCALE, START
from tests.helpers import every_line_once
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]
DAG = "plus_ingest_platform"


def _running(af: LocalAirflow, run_id: str, timeout: float = 300) -> str:
    """The first task of the run seen running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [t for t, s in af.task_states(DAG, run_id).items() if s == "running"]
        if running:
            return running[0]
        assert af.run_state(DAG, run_id) not in ("success", "failed"), "the run ended before a task was seen running"
        time.sleep(0.3)
    raise TimeoutError("no task of the run started")


def _in_group(pgid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return found


def test_a_killed_scheduler_is_started_again_and_the_run_completes(tmp_path):
    home = Paths(tmp_path / "home").ensure()
    generate(home.landing, days=1, scale=SCALE, seed=5, start=START)
    af = LocalAirflow(home, port=free_port(), env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
    af.start()
    try:
        af.wait_ready(dags=(DAG,))
        run_id = af.trigger(DAG, dt.datetime.combine(START + dt.timedelta(days=1), dt.time()).isoformat() + "Z")
        af.unpause([DAG])
        task = _running(af, run_id)
        others = {n: p.pid for n, p in af.procs.items() if n != "scheduler"}
        killed = af.procs["scheduler"].pid  # a session leader: its process group bears its pid
        os.kill(killed, signal.SIGKILL)
        af.procs["scheduler"].wait(timeout=30)
        assert af.dead() == ["scheduler"]
        assert af.revive() == ["scheduler"]
        assert af.dead() == []
        state = af.wait([(DAG, run_id)], timeout=600)[(DAG, run_id)]
        states = af.task_states(DAG, run_id)
        kept = {n: af.procs[n].pid for n in others if af.procs[n].poll() is None}
    finally:
        af.stop()
    assert af.leftovers() == []
    assert _in_group(killed) == [], "what the killed scheduler started (its executor workers) is stopped too"
    assert state == "success", f"the run after the scheduler was killed while {task} ran: {states}"
    assert set(states.values()) == {"success"}
    assert kept == others  # the API server, DAG processor and triggerer kept running, never restarted
    every_line_once(home.raw_db, START, ["platform_accounts", "platform_consent", "platform_usage_events"])
