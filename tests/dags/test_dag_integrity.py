"""Every DAG imports, follows the house policies, and does no I/O at parse time."""

import importlib.util

import pytest

from plus_analytics.config import DUCKDB_POOL, REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO_ROOT / "dags"))


def test_no_import_errors(bag):
    assert bag.import_errors == {}


def test_one_dag_per_file_named_after_it(bag):
    assert len(bag.dags) == len(DAG_FILES)
    for f in DAG_FILES:
        assert f.stem in bag.dags, f"{f.name} must define the DAG {f.stem}"


@pytest.mark.parametrize("dag_id", [f.stem for f in DAG_FILES])
def test_dag_policies(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.tags and "plus-analytics" in dag.tags
    assert dag.doc_md and len(dag.doc_md) > 100
    assert dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.retries >= 0
    writers = [t for t in dag.tasks if t.task_id.startswith(("ingest_", "stage_", "build", "publish", "rekey_", "restage_",
                                                             "propagate_", "retention_", "audit", "register_"))]
    assert writers and all(t.pool == DUCKDB_POOL for t in writers), "DuckDB writers must share the one-slot pool"
    assert any(t.retries >= 1 for t in dag.tasks) or dag_id.startswith("plus_erasure")  # erasure never retries blindly: a failure is for a person to read


def test_ingest_dags_have_daily_intervals(bag):
    from airflow.timetables.interval import CronDataIntervalTimetable

    for dag_id, dag in bag.dags.items():
        if dag_id.startswith("plus_ingest_"):
            assert isinstance(dag.timetable, CronDataIntervalTimetable)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_time_opens_no_connection_and_makes_no_query(path, monkeypatch):
    import duckdb
    from airflow.sdk import BaseHook, Variable

    def refuse(*a, **k):
        raise AssertionError(f"{path.name} did I/O at parse time")

    monkeypatch.setattr(duckdb, "connect", refuse)
    monkeypatch.setattr(BaseHook, "get_connection", refuse)
    monkeypatch.setattr(Variable, "get", refuse)
    import sqlalchemy.engine

    monkeypatch.setattr(sqlalchemy.engine.Engine, "connect", refuse)
    spec = importlib.util.spec_from_file_location(f"_parse_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.dag.dag_id == path.stem


def test_library_kept_out_of_plugin_manager():
    ignore = (REPO_ROOT / "plugins" / ".airflowignore").read_text()
    assert "plus_analytics/" in ignore
