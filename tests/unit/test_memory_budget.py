"""A memory budget for a task's whole process (the plus_duckdb connection's extra ``memory_budget``):
DuckDB's ``memory_limit`` bounds its buffers only, so beside Airflow, Great Expectations, pandas and Arrow
in the same process a limit sized to the worker alone lets the process outgrow the worker. Under a
budget each session's DuckDB gets what the process leaves of it (plus_analytics.storage.duck)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from plus_analytics.config import ConfigError, Settings
from plus_analytics.storage import duck

MiB = 2**20


def test_duckdb_gets_the_budget_less_what_the_process_holds_and_the_reserve():
    assert duck.memory_limit("2GiB", None, 500 * MiB) == 2048 * MiB - 500 * MiB - duck.BUDGET_RESERVE
    assert duck.memory_limit("2GB", None, 0) == 2_000_000_000 - duck.BUDGET_RESERVE  # DuckDB's units: GB by thousands
    # DuckDB's own limit, when set too and smaller, stays the bound
    assert duck.memory_limit("2GiB", "1000MB", 500 * MiB) == 1_000_000_000
    assert duck.memory_limit("2GiB", "1900MB", 500 * MiB) == 2048 * MiB - 500 * MiB - duck.BUDGET_RESERVE


def test_a_process_that_holds_its_budget_is_refused_with_why():
    with pytest.raises(ConfigError, match=r"already holds 1900 MiB of its memory budget of 2048 MiB") as e:
        duck.memory_limit("2GiB", None, 1900 * MiB)
    assert "raise the budget" in str(e.value)
    # a small DuckDB limit is the deployment's choice, not a refusal
    assert duck.memory_limit("2GiB", "100MB", 500 * MiB) == 100_000_000


@pytest.mark.parametrize("bad", ["lots", "2 gigs", "-1GB"])
def test_a_budget_that_is_not_a_size_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="not a size"):
        duck.memory_limit(bad, None, 0)
    with pytest.raises(ConfigError, match="PLUS_DUCKDB_MEMORY_BUDGET is .* not a size"):
        Settings.from_env({"PLUS_DUCKDB_MEMORY_BUDGET": bad})


def test_the_embedded_default_writes_the_budget_into_the_connection(monkeypatch):
    from plus_analytics import embedded

    monkeypatch.setattr(embedded, "settings", lambda: Settings.from_env({"PLUS_DUCKDB_MEMORY_BUDGET": "2GiB",
                                                                          "PLUS_DUCKDB_THREADS": "2"}))
    assert json.loads(embedded._duckdb_connection())["extra"] == {"threads": 2, "memory_budget": "2GiB"}


def test_a_session_under_a_budget_sets_duckdb_limit_from_what_the_process_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PLUS_DUCKDB", json.dumps({"conn_type": "duckdb", "extra": {"memory_budget": "2GiB"}}))
    monkeypatch.setattr(duck, "_process_rss", lambda: 768 * MiB)
    con = duck.connect(tmp_path)
    try:  # 2,048 - 768 - 256 MiB
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "1.0 GiB"
    finally:
        con.close()
    monkeypatch.setattr(duck, "_process_rss", lambda: 1900 * MiB)
    with pytest.raises(ConfigError, match="already holds 1900 MiB"):
        duck.connect(tmp_path)


def _peak_of_a_big_sort(tmp_path, extra: dict) -> tuple[float, str]:
    """A fresh process opens a session on a plus_duckdb connection with ``extra`` and sorts far more than
    1 GiB (12M rows of 132 characters): its peak resident memory in MiB (its own, DuckDB included) and
    DuckDB's limit in the session."""
    script = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from plus_analytics.storage import duck
        con = duck.connect(Path({str(tmp_path)!r}))
        con.execute("set enable_progress_bar = false")
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
        n = con.execute("select count(distinct v) from (select i, md5(i::varchar) || repeat('x', 100) as v "
                        "from range(12000000) t(i) order by v)").fetchone()[0]
        assert n == 12_000_000, n
        print(json.dumps({{"limit": limit}}))
    """)
    env = {**os.environ, "AIRFLOW_CONN_PLUS_DUCKDB": json.dumps({"conn_type": "duckdb", "extra": extra})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        assert proc.returncode == 0, err.read()[-3000:]
        return usage.ru_maxrss / 1024, json.loads(out.read().strip().splitlines()[-1])["limit"]


@pytest.mark.integration
def test_a_process_under_a_budget_stays_within_it(tmp_path):
    """Under a 1 GiB budget the sort spills and the process stays under 1 GiB; with no budget (and no
    limit), DuckDB sizes itself from the machine (80 % of its memory) and the same sort takes more than the
    budget would have allowed: the check can fail (each child's own peak, from os.wait4)."""
    peak, limit = _peak_of_a_big_sort(tmp_path / "a", {"memory_budget": "1GiB", "threads": 2})
    assert peak < 1024, (peak, limit)
    unbounded, _ = _peak_of_a_big_sort(tmp_path / "b", {"threads": 2})
    assert unbounded > 1024, unbounded
