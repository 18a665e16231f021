"""Intake through the Airflow params form: the identifier is pseudonymized and leaves no trace in Airflow."""

import json
import shutil

import duckdb
import pytest

from plus_analytics.config import Paths
from plus_analytics.erasure.propagate import scan_bytes

pytestmark = pytest.mark.integration


def test_form_intake_scrubs_the_identifier_from_airflow(pipeline, tmp_path, monkeypatch):
    from plus_analytics.runner import dag_bag, prepare_airflow, run_dag

    prepare_airflow(pipeline)  # applies the pipeline's environment: patch the zone paths after it
    home = Paths(tmp_path / "home")
    shutil.copytree(pipeline.home / "restricted", home.restricted)
    monkeypatch.setenv("PLUS_ANALYTICS_HOME", str(home.home))
    monkeypatch.setenv("AIRFLOW_CONN_PLUS_DUCKDB_RAW", json.dumps({"conn_type": "duckdb", "host": str(home.raw_db)}))
    con = duckdb.connect(str(home.raw_db), read_only=True)
    email = con.execute("select raw_value from id_map where kind = 'email' and error is null order by 1 limit 1").fetchone()[0]
    con.close()
    form = {"id_kind": "email", "identifier": email, "requester": "form test", "deadline_days": 30}

    run_dag(dag_bag(), "plus_erasure_intake", None, conf=form)

    con = duckdb.connect(str(home.raw_db), read_only=True)
    assert con.execute("select count(*) from tombstones where requester = 'form test'").fetchone()[0] == 1
    con.close()
    meta = pipeline.airflow_home / "airflow.db"
    import sqlite3

    db = sqlite3.connect(f"file:{meta}?mode=ro", uri=True)
    confs = [r[0] for r in db.execute("select conf from dag_run where dag_id = 'plus_erasure_intake'").fetchall()]
    db.close()
    assert confs and all("scrubbed" in str(c) and email not in str(c) for c in confs)
    assert scan_bytes(pipeline.airflow_home, [email.encode(), email.strip().encode()]) == {}, \
        "the identifier must not survive anywhere in the Airflow home (metadata DB pages, logs)"
