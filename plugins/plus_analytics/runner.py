"""Run the DAGs through real Airflow on the embedded default (SQLite metadata DB, local DuckDB files).

Everything lives under the data directory: the Airflow home (metadata DB, logs) included, so a run
touches nothing outside the checkout. ``airflow_env`` must be applied before Airflow is imported.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from plus_analytics.config import (BUILD_CONN_ID, DUCKDB_POOL, KEY_CONN_ID, RAW_CONN_ID, REPO_ROOT,
                                   STAGING_CONN_ID, TOMBSTONE_CONN_ID, Paths)

log = logging.getLogger(__name__)


def ensure_local_key(paths: Paths, name: str = "pseudonym_key") -> str:
    """A demo secret (pseudonym key or tombstone key): created once under data/secrets (mode 600), served
    as an Airflow connection through the environment-variables secrets backend. Production uses a real
    secrets backend."""
    from plus_analytics.privacy.keys import connection_uri_json, new_secret

    f = paths.secrets / f"{name}.json"
    if not f.exists():
        paths.secrets.mkdir(parents=True, exist_ok=True)
        os.chmod(paths.secrets, 0o700)
        f.write_text(json.dumps({"key_version": 1, "secret": new_secret()}))
        os.chmod(f, 0o600)
    data = json.loads(f.read_text())
    return connection_uri_json(data["secret"], int(data["key_version"]))


def new_local_key_version(paths: Paths) -> int:
    """Demo only: replace the local secret with a fresh one of version N+1 (the old one is destroyed)."""
    from plus_analytics.privacy.keys import new_secret

    ensure_local_key(paths)
    f = paths.secrets / "pseudonym_key.json"
    version = int(json.loads(f.read_text())["key_version"]) + 1
    f.write_text(json.dumps({"key_version": version, "secret": new_secret()}))
    os.chmod(f, 0o600)
    return version


def airflow_env(paths: Paths) -> dict[str, str]:
    duck = lambda p: json.dumps({"conn_type": "duckdb", "host": str(p)})  # noqa: E731
    env = {
        "PLUS_ANALYTICS_HOME": str(paths.home),
        "AIRFLOW_HOME": str(paths.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{paths.airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(paths.airflow_home / "logs"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "GX_ANALYTICS_ENABLED": "false",
        f"AIRFLOW_CONN_{RAW_CONN_ID.upper()}": duck(paths.raw_db),
        f"AIRFLOW_CONN_{STAGING_CONN_ID.upper()}": duck(paths.staging_db),
        f"AIRFLOW_CONN_{BUILD_CONN_ID.upper()}": json.dumps({"conn_type": "duckdb", "host": str(paths.builds / "build.duckdb")}),
    }
    if not os.environ.get(f"AIRFLOW_CONN_{KEY_CONN_ID.upper()}"):
        env[f"AIRFLOW_CONN_{KEY_CONN_ID.upper()}"] = ensure_local_key(paths)
    if not os.environ.get(f"AIRFLOW_CONN_{TOMBSTONE_CONN_ID.upper()}"):
        env[f"AIRFLOW_CONN_{TOMBSTONE_CONN_ID.upper()}"] = ensure_local_key(paths, "tombstone_key")
    return env


def prepare_airflow(paths: Paths) -> None:
    """Apply the environment, migrate the metadata DB once, create the one-slot DuckDB pool."""
    paths.airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_env(paths))
    marker = paths.airflow_home / ".migrated"
    if not marker.exists():
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run([str(airflow), "db", "migrate"], check=True, env=os.environ.copy(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        marker.write_text(dt.datetime.now(dt.UTC).isoformat())
    from airflow.models.pool import Pool

    # Airflow's .airflowignore handling trips a pathspec deprecation on every parse: noise, not ours. Set
    # after Airflow is imported (its import resets the filters).
    warnings.filterwarnings("ignore", message=".*GitWildMatchPattern.*", category=DeprecationWarning)

    Pool.create_or_update_pool(DUCKDB_POOL, slots=1, description="serializes writers of the DuckDB files",
                               include_deferred=False)


def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag


def _succeeded(dag_id: str, logical_date) -> bool:
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState

    return bool(DagRun.find(dag_id=dag_id, logical_date=logical_date, state=DagRunState.SUCCESS))


def run_dag(bag, dag_id: str, logical_date=None, conf: dict | None = None, skip_done: bool = True) -> str:
    """``dag.test()`` one run; returns 'skipped' when Airflow already ran that interval successfully."""
    import pendulum

    dag = bag.get_dag(dag_id)
    if logical_date is not None:
        logical_date = pendulum.instance(logical_date) if isinstance(logical_date, dt.datetime) else \
            pendulum.datetime(logical_date.year, logical_date.month, logical_date.day, tz="UTC")
        if skip_done and _succeeded(dag_id, logical_date):
            return "skipped"
    run = dag.test(logical_date=logical_date, run_conf=conf) if conf else dag.test(logical_date=logical_date)
    if dag_id == "plus_erasure_intake":
        # The listener scrubbed the form's conf; with the run over, fold SQLite's WAL (which still holds
        # the original insert) into the file and truncate it. Erasure runs do the same before verifying.
        from plus_analytics.metadata_db import truncate_sqlite_wal

        truncate_sqlite_wal(os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "").removeprefix("sqlite:///"))
    state = str(getattr(run, "state", "unknown"))
    if "success" not in state:
        failed = [ti.task_id for ti in run.get_task_instances() if ti.state and "failed" in str(ti.state)]
        raise RuntimeError(f"DAG {dag_id} run for {logical_date} ended {state}; failed tasks: {failed}. "
                           f"Task logs: {paths_logs()}")
    return "success"


def paths_logs() -> str:
    return os.path.join(os.environ.get("AIRFLOW_HOME", ""), "logs")


def run_pipeline(paths: Paths, days: list[dt.date], products: tuple[str, ...] | None = None,
                 marts: bool = True, force: bool = False) -> dict:
    """Ingest+stage every day for every product DAG, then build, gate and publish the marts."""
    from plus_analytics.policy import PRODUCT_SOURCES  # not dag_factory: Airflow must not load before its env is set

    prepare_airflow(paths)
    bag = dag_bag()
    ran = {"ingest_runs": 0, "ingest_skipped": 0, "marts": "skipped"}
    for day in days:
        # Logical date of the daily interval [day, day+1) is its start; dag.test infers the interval.
        for product in products or tuple(PRODUCT_SOURCES):
            status = run_dag(bag, f"plus_ingest_{product}", dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC),
                             skip_done=not force)
            ran["ingest_runs" if status == "success" else "ingest_skipped"] += 1
    if marts and (ran["ingest_runs"] or force or not paths.analytics_db.exists()):
        run_dag(bag, "plus_marts", None)
        ran["marts"] = "success"
    return ran
