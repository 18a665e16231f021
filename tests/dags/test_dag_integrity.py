"""Every DAG imports, follows the house policies, and does no I/O at parse time."""

import pytest

from tests import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("plus_*.py"))


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
    assert any(t.retries >= 1 for t in dag.tasks), "transient failures (a busy zone file, a restarted worker) retry"
    gates = [t for t in dag.tasks if t.task_id.endswith(".gate")]
    assert all(t.retries == 0 for t in gates), "a failed PII gate is for a person to read, not to retry"
    if any(t.task_id.endswith(".publish") for t in dag.tasks):
        group = {t.task_id for t in dag.tasks if t.task_id.startswith("write_audit_publish.")}
        assert group == {"write_audit_publish.build", "write_audit_publish.gate", "write_audit_publish.publish"}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_shows_its_graph(path):
    """A reader of one DAG file sees what it runs: the @dag function wires the tasks itself."""
    text = path.read_text()
    assert "@dag(" in text and f"def {path.stem}():" in text and f"\ndag = {path.stem}()\n" in text
    assert "dag_factory" not in text


def test_erasure_steps_run_in_order_and_resume():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(REPO_ROOT / "dags")).dags["plus_erasure"]
    order = ["resolve", "select", "remove", "restage", "write_audit_publish.build", "write_audit_publish.gate",
             "write_audit_publish.publish", "confirm_published", "rewrite", "verify", "dpo_report"]
    for a, b in zip(order, order[1:]):
        assert b in dag.get_task(a).downstream_task_ids, f"{a} -> {b}"
    for step in ("select", "remove", "restage", "confirm_published", "rewrite", "verify", "dpo_report"):
        assert dag.get_task(step).trigger_rule == "none_failed", f"{step} must run when the steps before had nothing to do"


def test_ingest_dags_have_daily_intervals(bag):
    from airflow.sdk import CronDataIntervalTimetable

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
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(path))
    assert bag.import_errors == {} and list(bag.dags) == [path.stem]


def test_library_kept_out_of_plugin_manager():
    ignore = (REPO_ROOT / "plugins" / ".airflowignore").read_text()
    assert "plus_analytics/" in ignore
