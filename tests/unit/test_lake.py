"""The restricted zone's rows as Delta tables (plus_analytics.storage.lake): days replaced whole, views on
the session's snapshot, erasure's rewrite touching only its days and leaving no byte behind, concurrent
writers of different days, and the move from the earlier layout."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from pathlib import Path

import duckdb
import pytest

from plus_analytics.config import Paths
from plus_analytics.storage import files, lake, locks, rewrites

TABLE = "raw_demo_events"
ROWS = """select cast(d as date) as _dt, 'f-' || cast(d as varchar) as _file, cast(i as bigint) as _line,
    'person-' || cast(i as varchar) || '@example.test' as email, cast(i as integer) as clicks,
    timestamp '2026-10-01 00:00:00' as _ingested_at
from (select date '2026-10-01' + cast(i % 4 as integer) as d, i from range({n}) t(i))"""
EMPTY = ROWS.format(n=0) + " limit 0"
DAYS = [dt.date(2026, 10, 1) + dt.timedelta(days=k) for k in range(4)]


def _home(tmp_path: Path) -> Paths:
    paths = Paths(tmp_path / "home").ensure()
    with locks.zone(write=paths.zones("raw")) as con:
        lake.ensure(con, TABLE, EMPTY)
    return paths


def _day_files(paths: Paths) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in (lake.root_of(paths.raw_db) / TABLE).glob("_dt=*/*.parquet"):
        out.setdefault(f.parent.name, set()).add(f.name)
    return out


def test_an_empty_table_reads_as_its_typed_columns(tmp_path):
    paths = _home(tmp_path)
    with locks.zone(read=paths.zones("raw")) as con:
        assert lake.present(con) == {TABLE}
        assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 0
        types = dict(con.execute(f"select column_name, column_type from (describe lake.{TABLE})").fetchall())
    assert types == {"_dt": "DATE", "_file": "VARCHAR", "_line": "BIGINT", "email": "VARCHAR", "clicks": "INTEGER",
                     "_ingested_at": "TIMESTAMP"}


def test_replacing_days_replaces_exactly_them_and_the_session_sees_it(tmp_path):
    paths = _home(tmp_path)
    with locks.zone(write=paths.zones("raw")) as con:
        lake.replace_days(con, TABLE, DAYS, ROWS.format(n=400))
        before = _day_files(paths)
        lake.replace_days(con, TABLE, [DAYS[1]], f"select * from lake.{TABLE} where _dt = $d and _line < 10", {"d": DAYS[1]})
        per_day = dict(con.execute(f"select _dt, count(*) from lake.{TABLE} group by 1").fetchall())
    assert per_day == {DAYS[0]: 100, DAYS[1]: 3, DAYS[2]: 100, DAYS[3]: 100}
    after = _day_files(paths)
    for day in ("_dt=2026-10-01", "_dt=2026-10-03", "_dt=2026-10-04"):
        assert after[day] == before[day], "a day that was not replaced keeps its files"
    with locks.zone(read=paths.zones("raw")) as con:  # a new session reads the latest snapshot
        assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 303


def test_a_row_of_another_day_is_refused(tmp_path):
    paths = _home(tmp_path)
    refused = pytest.raises(duckdb.InvalidInputException, match="a row of day 2026-10-02 is outside the days being replaced")
    with locks.zone(write=paths.zones("raw")) as con, refused:
        lake.replace_days(con, TABLE, [DAYS[0]], ROWS.format(n=8))
    with locks.zone(read=paths.zones("raw")) as con:
        assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 0


def test_the_log_names_files_and_days_never_a_value(tmp_path):
    """A commit's log entry holds each file's path, size, day and row count: no column's minimum or maximum
    (the first and last rows' values here), so no personal value waits in the log for an erasure."""
    paths = _home(tmp_path)
    with locks.zone(write=paths.zones("raw")) as con:
        lake.replace_days(con, TABLE, DAYS, ROWS.format(n=400))
    log_dir = lake.root_of(paths.raw_db) / TABLE / "_delta_log"
    values = [b"person-0@example.test", b"person-399@example.test", b"person-100@example.test", b"f-2026-10-01"]
    assert files.scan_bytes(lake.root_of(paths.raw_db) / TABLE, values), "the data files hold them"
    assert files.scan_bytes(log_dir, values) == {}
    adds = [json.loads(line)["add"] for f in sorted(log_dir.glob("*.json")) for line in f.read_text().splitlines()
            if '"add"' in line]
    assert sorted(json.loads(a["stats"])["numRecords"] for a in adds) == [100, 100, 100, 100]
    assert all(set(json.loads(a["stats"])) == {"numRecords"} for a in adds)


def test_erasure_leaves_no_byte_and_touches_only_its_days(tmp_path):
    """The byte scan finds a value in the middle of a column before (uncompressed files: it can see), and
    nowhere under the zone after the edit and the purge (log, checkpoint, removed files); the other
    days' files are the same files."""
    paths = _home(tmp_path)
    root = lake.root_of(paths.raw_db)
    erased, kept = b"person-201@example.test", b"person-202@example.test"  # 201 % 4 == 1: day two
    with locks.zone(write=paths.zones("raw")) as con:
        lake.replace_days(con, TABLE, DAYS, ROWS.format(n=400))
        lake.replace_days(con, TABLE, [DAYS[1]], f"select * from lake.{TABLE} where _dt = $d", {"d": DAYS[1]})
    assert files.scan_bytes(root, [erased]), "the scan must see a mid-column value before the erasure"
    before = _day_files(paths)
    files.mark_dirty(paths.raw_db)
    with locks.zone(write=paths.zones("raw")) as con, lake.edit(con, TABLE, [DAYS[1]]) as edited:
        con.execute(f"delete from temp.{edited} where email = 'person-201@example.test'")
    assert files.scan_bytes(root, [erased]), "until the purge, the old snapshot's file still holds it"
    with locks.hold({paths.raw_db: True}):
        done = rewrites.rewrite_zone(paths.raw_db)
    purged = done["tables_purged"][TABLE]
    assert purged["data_files_deleted"] == 2, "day two's file of the first write and of the second"
    assert purged["log_files_deleted"] >= 4 and purged["version"] >= 4
    assert not files.is_dirty(paths.raw_db)
    assert files.scan_bytes(paths.home, [erased]) == {}
    assert files.scan_bytes(root, [kept]), "the day's other rows are still there"
    after = _day_files(paths)
    assert after["_dt=2026-10-02"] != before["_dt=2026-10-02"]
    for day in ("_dt=2026-10-01", "_dt=2026-10-03", "_dt=2026-10-04"):
        assert after[day] == before[day]
    logs = sorted(p.name for p in (root / TABLE / "_delta_log").iterdir() if p.suffix == ".json")
    assert len(logs) == 1, f"the log before the checkpoint is gone: {logs}"
    with locks.zone(read=paths.zones("raw")) as con:
        assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 399


def _writer(raw_db: str, days: list[str], rounds: int) -> None:
    """A process writing its days ``rounds`` times, with no zone lock: only the Delta commit orders it."""
    con = duckdb.connect()
    con.execute(f"attach '{raw_db}' as raw (read_only)")
    lake.attach(con, Path(raw_db), writable=False)
    for r in range(rounds):
        for day in days:
            lake.replace_days(con, TABLE, [dt.date.fromisoformat(day)],
                              f"select * from ({ROWS.format(n=400)}) where _dt = $d and _line // 4 % 10 = $r",
                              {"d": dt.date.fromisoformat(day), "r": r})
    con.close()


@pytest.mark.parametrize("same_days", [False, True])
def test_two_writers_at_once_never_lose_or_double_a_day(tmp_path, same_days):
    paths = _home(tmp_path)
    mine, theirs = (DAYS, DAYS) if same_days else (DAYS[:2], DAYS[2:])
    spawn = multiprocessing.get_context("spawn")  # the Delta runtime does not survive a fork
    procs = [spawn.Process(target=_writer, args=(str(paths.raw_db), [d.isoformat() for d in days], 5))
             for days in (mine, theirs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with locks.zone(read=paths.zones("raw")) as con:
        per_day = dict(con.execute(f"select _dt, count(*) from lake.{TABLE} group by 1").fetchall())
        lines = {r[0] for r in con.execute(f"select distinct _line // 4 % 10 from lake.{TABLE}").fetchall()}
    assert per_day == dict.fromkeys(DAYS, 10), "each day holds one whole write, never two"
    assert lines == {4}, "the last round of every day won"


def test_the_earlier_layout_is_read_in_place_and_moved_by_the_first_writer(tmp_path):
    paths = Paths(tmp_path / "home").ensure()
    with duckdb.connect(str(paths.raw_db)) as con:
        con.execute(f"create table {TABLE} as {ROWS.format(n=40)}")
    with locks.zone(read=paths.zones("raw")) as con:
        assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 40
    assert not lake.exists(lake.root_of(paths.raw_db) / TABLE)
    with locks.zone(write=paths.zones("raw")) as con:
        moved = sorted(con.execute(f"select * from lake.{TABLE}").fetchall())
        assert con.execute("select count(*) from duckdb_tables() where database_name = 'raw'").fetchone()[0] == 0
    assert files.is_dirty(paths.raw_db), "the old table's rows stay in freed blocks until the file is rewritten"
    with duckdb.connect() as con:
        assert moved == sorted(con.execute(ROWS.format(n=40)).fetchall())


def test_the_purge_removes_a_data_file_no_commit_took(tmp_path):
    """A writer killed after writing its data file and before its commit leaves a file the log never
    names; the purge deletes it too (a full vacuum), so an erased value cannot survive in one."""
    paths = _home(tmp_path)
    with locks.zone(write=paths.zones("raw")) as con:
        lake.replace_days(con, TABLE, DAYS, ROWS.format(n=40))
    orphan = lake.root_of(paths.raw_db) / TABLE / "_dt=2026-10-02" / "part-00000-killed-before-its-commit.parquet"
    orphan.write_bytes(b"PAR1 person-9999@example.test PAR1")
    with locks.hold({paths.raw_db: True}):
        rewrites.rewrite_zone(paths.raw_db)
    assert not orphan.exists()
    with locks.zone(read=paths.zones("raw")) as con:
        assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 40


def _live_files(paths: Paths) -> set[str]:
    import pyarrow as pa
    from deltalake import DeltaTable

    return set(pa.table(DeltaTable(str(lake.root_of(paths.raw_db) / TABLE)).get_add_actions(flatten=True))["path"].to_pylist())


def test_files_written_ahead_under_the_read_lock_are_committed_as_written(tmp_path):
    """An ingest writes its rows' files while it holds the zone's read lock, and commits them under the write
    lock: the commit names exactly those files, the rows are computed once."""
    paths = _home(tmp_path)
    with locks.zone(write=paths.zones("raw")) as con:
        lake.replace_days(con, TABLE, DAYS, ROWS.format(n=40))
    with locks.zone(read=paths.zones("raw")) as con:
        ahead = lake.write_ahead(con, TABLE, DAYS[:2], ROWS.format(n=400) + " where _dt < date '2026-10-03'")
    written = {f[0] for f in ahead.written}
    assert written and not written & _live_files(paths), "written, not yet in the snapshot"
    with locks.zone(write=paths.zones("raw")) as con:
        assert lake.commit_ahead(con, ahead)
        per_day = dict(con.execute(f"select _dt, count(*) from lake.{TABLE} group by 1").fetchall())
    assert written <= _live_files(paths)
    assert per_day == {DAYS[0]: 100, DAYS[1]: 100, DAYS[2]: 10, DAYS[3]: 10}


@pytest.mark.parametrize("between", ["another commit", "a purge"])
def test_files_written_ahead_of_a_change_are_deleted_not_committed(tmp_path, between):
    """Another commit to the table (its snapshot is no longer the one the rows were computed against) or
    a purge (it deletes files no commit names: an erasure's, which must not find them afterwards) between
    the files written ahead and their commit: they are deleted and the caller is told to write again."""
    paths = _home(tmp_path)
    with locks.zone(write=paths.zones("raw")) as con:
        lake.replace_days(con, TABLE, DAYS, ROWS.format(n=40))
    with locks.zone(read=paths.zones("raw")) as con:
        ahead = lake.write_ahead(con, TABLE, DAYS[:1], ROWS.format(n=400) + " where _dt = date '2026-10-01'")
    table = lake.root_of(paths.raw_db) / TABLE
    if between == "another commit":
        with locks.zone(write=paths.zones("raw")) as con:
            lake.replace_days(con, TABLE, [DAYS[3]], f"select * from lake.{TABLE} where false")
    else:
        with locks.hold({paths.raw_db: True}):
            rewrites.rewrite_zone(paths.raw_db)
        assert not any((table / f[0]).exists() for f in ahead.written), "the purge deleted what no commit named"
    with locks.zone(write=paths.zones("raw")) as con:
        assert not lake.commit_ahead(con, ahead)
        per_day = dict(con.execute(f"select _dt, count(*) from lake.{TABLE} group by 1").fetchall())
    assert not any((table / f[0]).exists() for f in ahead.written)
    assert per_day[DAYS[0]] == 10, "the day was not replaced by the files written ahead"


def test_quarantine_is_a_table_per_source_seen_together_and_moved_from_the_earlier_layout(tmp_path):
    """The earlier layout kept every source's quarantined lines in one table of raw.duckdb: a reader sees
    them in place through ``lake.quarantine``; the first writer moves each source's lines into its own
    table (``quarantine_<source>``, partitioned by day), drops the old table and marks the file for
    rewriting; the view then shows the same lines, by source."""
    paths = Paths(tmp_path / "home").ensure()
    with locks.zone(read=paths.zones("raw")) as con:  # no zone file yet: nothing to see, nothing to fail
        pass
    with locks.zone(write=paths.zones("raw")) as con:  # a zone without quarantine reads as its typed columns
        types = dict(con.execute("select column_name, column_type from (describe lake.quarantine)").fetchall())
        assert con.execute("select count(*) from lake.quarantine").fetchone()[0] == 0
    assert types == {"source": "VARCHAR", "_dt": "DATE", "_file": "VARCHAR", "_line": "BIGINT", "reason": "VARCHAR",
                     "payload": "VARCHAR", "quarantined_at": "TIMESTAMP"}
    lines = """select s as source, date '2026-10-01' + cast(i % 3 as integer) as _dt, s || '/f' as _file, cast(i as bigint) as _line,
        'bad value' as reason, 'line ' || s || '-' || cast(i as varchar) as payload, timestamp '2026-10-05 00:00:00' as quarantined_at
    from (select unnest(['alpha', 'beta']) as s), range(30) t(i)"""
    with duckdb.connect(str(paths.raw_db)) as con:
        con.execute(f"create table quarantine as {lines}")
    with locks.zone(read=paths.zones("raw")) as con:
        assert sorted(con.execute("select * from lake.quarantine").fetchall()) == sorted(con.execute(lines).fetchall())
    root = lake.root_of(paths.raw_db)
    assert not lake.exists(root / "quarantine_alpha")
    with locks.zone(write=paths.zones("raw")) as con:
        assert {"quarantine_alpha", "quarantine_beta"} <= lake.present(con)
        assert sorted(con.execute("select * from lake.quarantine").fetchall()) == sorted(con.execute(lines).fetchall())
        assert con.execute("select count(*) from lake.quarantine_beta where _dt = date '2026-10-02'").fetchone()[0] == 10
        assert "quarantine" not in {r[0] for r in con.execute(
            "select table_name from duckdb_tables() where database_name = 'raw'").fetchall()}
    assert files.is_dirty(paths.raw_db), "the old table's lines stay in freed blocks until the file is rewritten"
    assert sorted(p.name for p in (root / "quarantine_alpha").glob("_dt=*")) == [
        "_dt=2026-10-01", "_dt=2026-10-02", "_dt=2026-10-03"]


def test_mentions_are_a_table_per_source_and_moved_from_the_earlier_layout(tmp_path):
    """The same for the identifiers free text mentions (``raw.text_mentions`` -> ``mentions_<source>``)."""
    paths = Paths(tmp_path / "home").ensure()
    mentions = """select 'chat' as source, date '2026-10-01' + cast(i % 2 as integer) as _dt, 'chat/f' as _file,
        cast(i as bigint) as _line, 'phone' as kind, '+6681000' || cast(i as varchar) as raw_value from range(6) t(i)"""
    with duckdb.connect(str(paths.raw_db)) as con:
        con.execute(f"create table text_mentions as {mentions}")
    with locks.zone(read=paths.zones("raw")) as con:
        assert sorted(con.execute("select * from lake.text_mentions").fetchall()) == sorted(con.execute(mentions).fetchall())
    with locks.zone(write=paths.zones("raw")) as con:
        assert "mentions_chat" in lake.present(con)
        assert sorted(con.execute("select * from lake.text_mentions").fetchall()) == sorted(con.execute(mentions).fetchall())
        assert con.execute("select count(*) from duckdb_tables() where database_name = 'raw'").fetchone()[0] == 0


def test_a_session_lent_to_the_zone_again_sees_the_tables_as_they_are_then(tmp_path):
    """The views stay with a session that goes on (ingest lends one to the zone several times): each time
    they are pointed at the snapshot of that moment, and tables created meanwhile appear, in the views of
    a family too."""
    from plus_analytics.storage import duck

    paths = _home(tmp_path)
    con = duck.connect(duck.spill_directory(paths.raw_db))
    try:
        with locks.zone(read=paths.zones("raw"), con=con):
            assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 0
            assert con.execute("select count(*) from lake.quarantine").fetchone()[0] == 0
        with locks.zone(write=paths.zones("raw")) as other:  # another session commits and creates a table
            lake.replace_days(other, TABLE, DAYS, ROWS.format(n=40))
            lake.ensure(other, "quarantine_demo", lake.columns_of(lake.QUARANTINE))
            lake.replace_days(other, "quarantine_demo", DAYS[:1], "select date '2026-10-01' as _dt, 'f' as _file, 1 as _line, "
                              "'bad' as reason, 'line' as payload, timestamp '2026-10-05 00:00:00' as quarantined_at")
        with locks.zone(read=paths.zones("raw"), con=con):
            assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 40
            assert con.execute("select source, payload from lake.quarantine").fetchall() == [("demo", "line")]
        other_home = _home(tmp_path / "elsewhere")  # the same session, another data directory: its tables only
        with locks.zone(read=other_home.zones("raw"), con=con):
            assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 0
            assert lake.present(con) == {TABLE}
    finally:
        con.close()


def test_a_session_that_read_the_earlier_layout_in_place_sees_the_table_once_moved(tmp_path):
    """Views of a table read where it is (``raw.<table>``) are not kept: once another session has moved
    it, the same session lent to the zone again reads the Delta table, not the dropped one."""
    from plus_analytics.storage import duck

    paths = Paths(tmp_path / "home").ensure()
    with duckdb.connect(str(paths.raw_db)) as con:
        con.execute(f"create table {TABLE} as {ROWS.format(n=40)}")
    con = duck.connect(duck.spill_directory(paths.raw_db))
    try:
        with locks.zone(read=paths.zones("raw"), con=con):
            assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 40
        with locks.zone(write=paths.zones("raw")):  # the first writer moves it
            pass
        assert lake.exists(lake.root_of(paths.raw_db) / TABLE)
        with locks.zone(read=paths.zones("raw"), con=con):
            assert con.execute(f"select count(*) from lake.{TABLE}").fetchone()[0] == 40
    finally:
        con.close()
