"""The backfill DAG (one batch per source, through real Airflow) leaves exactly what the daily runs left."""

import shutil

import pytest

from plus_analytics.config import Paths
from plus_analytics.policy import load_policy
from tests.helpers import opened

pytestmark = pytest.mark.integration


def _rows(path, sql):
    with opened(path, read_only=True) as con:
        return sorted(map(tuple, con.execute(sql).fetchall()), key=repr)


@pytest.fixture(scope="module")
def backfilled(pipeline, tmp_path_factory):
    home = Paths(tmp_path_factory.mktemp("backfill")).ensure()
    shutil.copytree(pipeline.landing, home.landing, dirs_exist_ok=True)
    from plus_analytics.runner import dag_bag, prepare_airflow, run_dag

    prepare_airflow(pipeline)  # (sets the environment for the pipeline's home: override it after)
    mp = pytest.MonkeyPatch()
    mp.setenv("PLUS_ANALYTICS_HOME", str(home.home))  # same Airflow metadata DB; the tasks work on the new home
    try:
        assert run_dag(dag_bag(), "plus_backfill", None) == "success"
    finally:
        mp.undo()
    return home


def test_restricted_zone_equals_the_daily_runs(pipeline, backfilled):
    for src in load_policy().values():
        sql = f"select * exclude (_ingested_at) from {src.raw_table}"
        assert _rows(backfilled.raw_db, sql) == _rows(pipeline.raw_db, sql), src.name
    for sql in ("select * exclude (quarantined_at) from quarantine", "select * exclude (ingested_at) from ingest_log",
                "select * from text_mentions"):
        assert _rows(backfilled.raw_db, sql) == _rows(pipeline.raw_db, sql), sql


def test_published_marts_equal_the_daily_runs(pipeline, backfilled):
    with opened(pipeline.analytics_db, read_only=True) as con:
        tables = [r[0] for r in con.execute("select table_name from duckdb_tables() order by 1").fetchall()]
    assert "mart_daily_active_usage" in tables
    for t in tables:
        if t == "meta_build_info":
            continue
        assert _rows(backfilled.analytics_db, f"select * from {t}") == _rows(pipeline.analytics_db, f"select * from {t}"), t
