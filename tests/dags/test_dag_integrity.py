"""Every DAG imports, follows the house policies, and does no I/O at parse time."""

from pathlib import Path

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


#: Parses one DAG file in a fresh interpreter, so every module it imports (the library's too) runs its
#: import-time code under watch: a database connection (DuckDB, SQLite, SQLAlchemy), a connection or
#: Variable lookup, or a network connection fails the parse. Prints the DAG ids, or the I/O it saw.
PARSE_WATCHED = """
import json, sys
seen = []
def watch(event, args):
    if event in ("sqlite3.connect", "socket.connect"):
        seen.append(event)
sys.addaudithook(watch)
import duckdb
def refuse(*a, **k):
    seen.append("duckdb.connect")
    raise RuntimeError("I/O at parse time")
duckdb.connect = refuse
from airflow.sdk import BaseHook, Variable
BaseHook.get_connection = classmethod(lambda cls, *a, **k: refuse())
Variable.get = staticmethod(lambda *a, **k: refuse())
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
print(json.dumps({"dags": sorted(bag.dags), "errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}, "io": seen}))
"""


def parse_watched(path: Path, extra_path: Path | None = None) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = f"{extra_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
    done = subprocess.run([sys.executable, "-c", PARSE_WATCHED, str(path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_time_opens_no_connection_and_makes_no_query(path):
    parsed = parse_watched(path)
    assert parsed == {"dags": [path.stem], "errors": {}, "io": []}


def test_the_parse_time_check_sees_io_in_an_imported_module(tmp_path):
    """A library module that opens a database when imported fails the check, though the DAG file itself
    does nothing: the parse runs in a fresh interpreter."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "planted_io.py").write_text("import sqlite3\nsqlite3.connect(':memory:')\n")
    dag_file = tmp_path / "plus_planted.py"
    dag_file.write_text((REPO_ROOT / "dags" / "plus_pii_audit.py").read_text().replace(
        "from airflow.sdk import dag", "import planted_io  # noqa: F401\nfrom airflow.sdk import dag"))
    assert parse_watched(dag_file, tmp_path / "lib")["io"] == ["sqlite3.connect"]


def test_library_kept_out_of_plugin_manager():
    ignore = (REPO_ROOT / "plugins" / ".airflowignore").read_text()
    assert "plus_analytics/" in ignore
