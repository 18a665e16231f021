"""Running the DAGs through ``dag.test()`` on the embedded default (``make demo``, the CLI, the tests).

``dag.test()`` runs a DAG's tasks one after another in this process, which can reach the metadata DB;
the real scheduler (:mod:`plus_analytics.scheduler`) runs them in parallel workers that cannot. The
tasks are the same and make no use of that difference (tested under both).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import warnings
from collections.abc import Callable

from plus_analytics.config import Paths
from plus_analytics.embedded import dags_folder, migrate

log = logging.getLogger(__name__)


def prepare_airflow(paths: Paths) -> None:
    """Apply the environment and migrate the metadata DB once."""
    migrate(paths)
    import airflow  # noqa: F401 - its import resets the warning filters; quiet the noise after it

    # Airflow's .airflowignore handling trips a pathspec deprecation on every parse: noise, not ours.
    warnings.filterwarnings("ignore", message=".*GitWildMatchPattern.*", category=DeprecationWarning)


def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(dags_folder()))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag


def _succeeded(dag_id: str, logical_date) -> bool:
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState

    return bool(DagRun.find(dag_id=dag_id, logical_date=logical_date, state=DagRunState.SUCCESS))


class DagRunFailed(RuntimeError):
    """A DAG run did not succeed: names the failed tasks and where their logs are."""


def run_dag(bag, dag_id: str, logical_date=None, conf: dict | None = None, skip_done: bool = True) -> str:
    """``dag.test()`` one run; returns 'skipped' when Airflow already ran that interval successfully."""
    import os

    import pendulum

    dag = bag.get_dag(dag_id)
    if logical_date is not None:
        logical_date = pendulum.instance(logical_date) if isinstance(logical_date, dt.datetime) else \
            pendulum.datetime(logical_date.year, logical_date.month, logical_date.day, tz="UTC")
        if skip_done and _succeeded(dag_id, logical_date):
            return "skipped"
    run = dag.test(logical_date=logical_date, run_conf=conf) if conf else dag.test(logical_date=logical_date)
    state = str(getattr(run, "state", "unknown"))
    if "success" not in state:
        failed = [ti.task_id for ti in run.get_task_instances() if ti.state and "failed" in str(ti.state)]
        logs = os.path.join(os.environ.get("AIRFLOW_HOME", ""), "logs")
        raise DagRunFailed(f"DAG {dag_id} run for {logical_date or 'now'} ended {state}; failed tasks: {failed}. "
                           f"Task logs: {logs}")
    return "success"


def run_pipeline(paths: Paths, days: list[dt.date], products: tuple[str, ...] | None = None, marts: bool = True,
                 force: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """Ingest and stage every day for every product DAG, then ``plus_marts``, which rebuilds whenever
    staging is newer than the published marts (whether or not an ingest ran now: a run interrupted
    before its publish is caught up here)."""
    from plus_analytics.policy import product_sources  # not the DAG modules: Airflow must not load before its env is set

    prepare_airflow(paths)
    bag = dag_bag()
    ran = {"ingest_runs": 0, "ingest_skipped": 0, "marts": "up to date"}
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    for i, day in enumerate(days, 1):
        for product in products or tuple(product_sources()):
            # Logical date of the daily interval [day, day+1) is its end under CronDataIntervalTimetable.
            status = run_dag(bag, f"plus_ingest_{product}", dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC),
                             skip_done=not force)
            ran["ingest_runs" if status == "success" else "ingest_skipped"] += 1
        say(f"  day {i}/{len(days)} ({day}): ingested and staged [{time.perf_counter() - started:.0f}s]")
    if marts:
        from plus_analytics.steps.marts import fresh as marts_fresh

        if force or not marts_fresh(paths):
            say("  building, gating and publishing the marts (plus_marts) ...")
            run_dag(bag, "plus_marts", None)
            ran["marts"] = "published"
    return ran
