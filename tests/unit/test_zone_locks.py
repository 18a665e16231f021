"""The zone-lock discipline (plus_analytics.storage.locks), process against process, without Airflow or
DuckDB: readers share, a writer excludes, a bounded wait names the holder, a killed holder releases,
a waiting writer is not starved by new readers, and sessions never nest; a new build clears the lock files
of builds that finished or died, never those of a build that is running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from plus_analytics.storage import locks

HOLDER = textwrap.dedent("""
    import os, sys, time
    os.environ["AIRFLOW_CTX_DAG_ID"], os.environ["AIRFLOW_CTX_TASK_ID"] = "plus_marts", "build"
    from pathlib import Path
    from plus_analytics.storage import locks
    path, exclusive, seconds = Path(sys.argv[1]), sys.argv[2] == "1", float(sys.argv[3])
    t = time.monotonic()
    with locks.hold({path: exclusive}, timeout=60):
        print(f"HELD {time.monotonic() - t:.3f}", flush=True)
        time.sleep(seconds)
    print("RELEASED", flush=True)
""")


@contextmanager
def holder(path, exclusive: bool, seconds: float, wait_held: bool = True) -> Iterator[subprocess.Popen]:
    """Another process holding ``path``'s lock for ``seconds`` (killed at the end of the block if still there)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "1" if exclusive else "0", str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    try:
        if wait_held:
            line = proc.stdout.readline()
            assert line.startswith("HELD"), line
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def zone_file(tmp_path):
    return tmp_path / "raw.duckdb"


def test_readers_share(zone_file):
    with holder(zone_file, exclusive=False, seconds=5):
        t = time.monotonic()
        with locks.hold({zone_file: False}, timeout=2):
            assert time.monotonic() - t < 1.5


def test_a_writer_excludes_and_the_bounded_wait_names_the_holder(zone_file):
    with holder(zone_file, exclusive=True, seconds=30) as writer:
        for exclusive in (False, True):
            t = time.monotonic()
            with pytest.raises(locks.ZoneBusy) as err, locks.hold({zone_file: exclusive}, timeout=0.5):
                pass
            assert 0.4 < time.monotonic() - t < 5
            assert f"pid {writer.pid}" in str(err.value) and "plus_marts.build" in str(err.value)


def test_a_waiting_session_gets_the_file_when_the_holder_finishes(zone_file):
    with holder(zone_file, exclusive=True, seconds=1.0):
        t = time.monotonic()
        with locks.hold({zone_file: False}, timeout=30):
            waited = time.monotonic() - t
        assert 0.5 < waited < 10


def test_a_killed_holder_releases_its_lock(zone_file):
    with holder(zone_file, exclusive=True, seconds=300) as writer:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        with locks.hold({zone_file: True}, timeout=5):
            pass


def test_a_waiting_writer_is_not_starved_by_new_readers(zone_file):
    """A reader holds the file; a writer starts waiting; a reader arriving after the writer waits behind it."""
    with holder(zone_file, exclusive=False, seconds=2.0), \
            holder(zone_file, exclusive=True, seconds=1.0, wait_held=False) as writer:
        time.sleep(0.5)  # the writer is now queued at the turnstile, holding it
        t = time.monotonic()
        with locks.hold({zone_file: False}, timeout=30):
            waited = time.monotonic() - t
        assert writer.stdout.readline().startswith("HELD")
        # The late reader got in only after the writer had held and released the file (about 1.5 s of the
        # first reader plus 1 s of the writer), not alongside the first reader.
        assert waited > 2.0, waited


def test_sessions_do_not_nest(zone_file, tmp_path):
    with locks.hold({zone_file: False}, timeout=1), pytest.raises(locks.NestedZoneSession), \
            locks.hold({tmp_path / "staging.duckdb": False}, timeout=1):
        pass
    with locks.hold({tmp_path / "staging.duckdb": True}, timeout=1):  # usable again once the first has ended
        pass


def test_unfinished_builds_and_lock_files_left_by_renamed_builds_go_unless_a_build_is_running(tmp_path):
    from plus_analytics.marts.publish import remove_unfinished_builds

    died = tmp_path / "building-20261126T000000-aaaaaaaa.duckdb"  # a build that died before its rename
    died.write_bytes(b"partial")
    renamed = tmp_path / "building-20261126T000001-bbbbbbbb.duckdb"  # finished: renamed, its lock files left
    for p in (locks.lock_file(renamed), tmp_path / (locks.lock_file(renamed).name + ".turn")):
        p.write_bytes(b"")
    running = tmp_path / "building-20261126T000002-cccccccc.duckdb"
    running.write_bytes(b"in progress")
    with holder(running, True, 60):
        removed = remove_unfinished_builds(tmp_path)
    assert sorted(removed) == [died.name, renamed.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [running.name, locks.lock_file(running).name, locks.lock_file(running).name + ".turn"])


def test_the_name_a_postgresql_holder_gives_itself_fits_and_stays_readable(monkeypatch):
    """PostgreSQL cuts an application name at 63 bytes: a long task name is cut inside its parentheses, so
    the waiting side's error still says host, pid and task (the task's start), in that shape."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "plus_erasure_with_a_long_dag_id")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "write_audit_publish.publish_and_certify")
    name = locks._holder_name()
    assert len(name.encode()) <= 63
    assert name.startswith("plus-analytics ") and f" pid {os.getpid()} (plus_erasure_with" in name and name.endswith(")")
    assert locks.advisory_key(Path("/a/restricted/raw.duckdb")) == locks.advisory_key(Path("/mnt/b/restricted/raw.duckdb"))
    assert locks.advisory_key(Path("/a/restricted/raw.duckdb")) != locks.advisory_key(Path("/a/restricted/privacy.duckdb"))
    assert 0 < locks.advisory_key(Path("/a/restricted/raw.duckdb")) < 2**63
