"""A zone session (plus_analytics.storage.locks.zone) is an in-memory DuckDB database with each zone file
attached under its alias; what it spills goes beside the most sensitive file it attaches (the restricted
zone's, when it has it), never into the working directory, where nothing guards or erases it."""

from __future__ import annotations

import os

import pytest

from plus_analytics.config import Paths
from plus_analytics.storage import duck, lake, locks


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


def test_a_session_lent_to_the_zone_keeps_its_scratch_and_lets_go_of_the_files(tmp_path):
    """Ingest reads a batch's landing files in a session of its own, then lends it to the zone for the
    writes: inside the block the files are attached and locked, after it they are detached and their locks
    released (another process can write them), and the session with its scratch tables goes on."""
    import subprocess
    import sys

    paths = Paths(tmp_path / "home").ensure()
    con = duck.connect(duck.spill_directory(paths.raw_db))
    try:
        con.execute("create temp table _cand as select 1 as n")
        for round_ in range(2):
            with locks.zone(write=paths.zones("raw"), con=con) as same:
                assert same is con
                con.execute(f"create or replace table raw.t as select n + {round_} as n from _cand")
            attached = dict(con.execute("select database_name, path from duckdb_databases() where not internal").fetchall())
            assert attached.keys() - {lake.SCHEMA} == {"memory"}, "the zone's files stayed attached after the block"
            assert attached.get(lake.SCHEMA) is None, "the views of the zone's tables (kept) are in memory, no file"
            other = ("from pathlib import Path; from plus_analytics.config import Paths; from plus_analytics.storage import locks\n"
                     f"p = Paths(Path({str(tmp_path / 'home')!r}))\n"
                     "with locks.zone(write=p.zones('raw'), timeout=5) as c:\n"
                     "    print(c.execute('select n from raw.t').fetchone()[0])")
            out = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr[-2000:]
            assert out.stdout.split()[-1] == str(1 + round_)
        assert con.execute("select n from _cand").fetchone()[0] == 1
    finally:
        con.close()
