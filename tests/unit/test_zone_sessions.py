"""A zone session (plus_analytics.storage.locks.zone) is an in-memory DuckDB database with each zone file
attached under its alias; what it spills goes beside the most sensitive file it attaches (the restricted
zone's, when it has it), never into the working directory, where nothing guards or erases it."""

from __future__ import annotations

import os

import pytest

from plus_analytics.config import Paths
from plus_analytics.storage import duck, locks


def _spill(con) -> None:
    """Make the session spill: a temporary table larger than its memory limit."""
    con.execute("set memory_limit = '64MB'")
    con.execute("set preserve_insertion_order = false")
    con.execute("create temp table _big as select i, repeat('x', 200) || i as v from range(2000000) t(i)")


@pytest.mark.parametrize(("write", "read", "beside"), [
    (("raw",), ("ledger",), "raw"),
    (("stg",), ("raw",), "raw"),
    (("ledger",), ("raw", "stg"), "raw"),
    (("stg",), (), "stg"),
])
def test_a_session_spills_beside_its_most_sensitive_zone(tmp_path, monkeypatch, write, read, beside):
    paths = Paths(tmp_path / "home").ensure()
    for alias in read:  # files to read must exist to be attached
        with locks.zone(write=paths.zones(alias)):
            pass
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    expected = duck.spill_directory(paths.zones(beside)[beside])
    with locks.zone(write=paths.zones(*write), read=paths.zones(*read)) as con:
        assert {r[0] for r in con.execute("select database_name from duckdb_databases() where not internal").fetchall()} \
            == {"memory", *write, *read, *(["lake"] if "raw" in {*write, *read} else [])}  # lake: the rows' views
        _spill(con)
        spilled = [p for p in expected.rglob("*") if p.is_file()] if expected.exists() else []
        assert spilled, f"nothing spilled into {expected}"
        assert not any(cwd.iterdir()), f"spilled into the working directory: {os.listdir(cwd)}"


def test_a_session_spills_where_it_is_told(tmp_path):
    con = duck.connect(tmp_path / "raw.duckdb.tmp")
    try:
        assert con.execute("select current_setting('temp_directory')").fetchone()[0] == str(tmp_path / "raw.duckdb.tmp")
        assert con.execute("select current_database()").fetchone()[0] == "memory"
    finally:
        con.close()
