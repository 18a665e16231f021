"""The zones' locks kept in PostgreSQL (``PLUS_ZONE_LOCKS``), as a deployment of several machines sharing
the data path keeps them: two processes that share no lock file (two machines mounting the share in
different places, here two directories) exclude each other by the zone file's place in the data
directory; readers share; a holder killed lets go; an unreachable server is a clear error, no secret."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plus_analytics.config import ConfigError, Paths, settings
from plus_analytics.storage import locks
from tests.conftest import DAYS, START
from tests.helpers import opened
from tests.services import free_port, postgres

pytestmark = pytest.mark.integration

HOLDER = """
import sys, time
from pathlib import Path
from plus_analytics.storage import locks
with locks.hold({Path(sys.argv[1]): sys.argv[2] == "write"}):
    Path(sys.argv[3]).write_text("held")
    time.sleep(600)
"""


def _zone_file(machine: Path) -> Path:
    path = machine / "restricted" / "raw.duckdb"
    path.parent.mkdir(parents=True)
    return path


def _holder(monkeypatch, zone_file: Path, mode: str, tmp_path: Path) -> subprocess.Popen:
    ready = tmp_path / f"ready-{mode}"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(zone_file), mode, str(ready)], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the holder did not take the lock"
        time.sleep(0.05)
    return proc


def test_machines_that_share_no_lock_file_exclude_each_other_through_postgresql(monkeypatch, tmp_path):
    with postgres() as (url, _data):
        monkeypatch.setenv("PLUS_ZONE_LOCKS", url)
        monkeypatch.setenv("PLUS_ZONE_LOCK_TIMEOUT", "1")
        here, there = _zone_file(tmp_path / "machine-a"), _zone_file(tmp_path / "machine-b")
        writer = _holder(monkeypatch, there, "write", tmp_path)
        try:
            busy = pytest.raises(locks.ZoneBusy, match=rf"in use by plus-analytics \S+ pid {writer.pid} \(.*\) since 20\d\d-")
            with busy, locks.hold({here: False}):
                pass
            with locks.hold({here.with_name("staging.duckdb"): True}):  # another zone file: no wait
                pass
            monkeypatch.delenv("PLUS_ZONE_LOCKS")
            with locks.hold({here: True}):  # the files' locks alone: machine a's lock file is free
                pass
            monkeypatch.setenv("PLUS_ZONE_LOCKS", url)
            writer.send_signal(signal.SIGKILL)
            writer.wait(30)
            deadline = time.monotonic() + 30
            while True:  # the server ends the dead session and its locks with it
                try:
                    with locks.hold({here: True}):
                        break
                except locks.ZoneBusy:
                    assert time.monotonic() < deadline, "the killed holder's lock was never let go"
            reader = _holder(monkeypatch, there, "read", tmp_path)
            try:
                with locks.hold({here: False}):  # readers share, across machines too
                    pass
                with pytest.raises(locks.ZoneBusy), locks.hold({here: True}):
                    pass
            finally:
                reader.kill()
                reader.wait(30)
        finally:
            writer.kill()
            writer.wait(30)


def test_an_unreachable_lock_server_is_a_clear_error_that_names_no_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("PLUS_ZONE_LOCKS", f"postgresql://plus:hunter2-secret@127.0.0.1:{free_port()}/locks")
    with pytest.raises(locks.ZoneBusy, match="cannot be reached") as refused, locks.hold({_zone_file(tmp_path): True}):
        pass
    assert "hunter2" not in str(refused.value) and "127.0.0.1" in str(refused.value)


def test_zone_locks_must_name_postgresql(monkeypatch):
    monkeypatch.setenv("PLUS_ZONE_LOCKS", "redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="PLUS_ZONE_LOCKS must be a PostgreSQL URL"):
        settings()


MACHINE = """
import contextlib, datetime as dt, json, os, sys, time
from pathlib import Path
from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.context import context
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import locks

# Another machine: the lock files beside the zone files are this machine's own, so they order nothing.
locks._one = lambda *a, **k: contextlib.nullcontext()
home, first, last, *sources = sys.argv[1:]
key, tomb = (MasterKey(1, bytes.fromhex(k)) for k in os.environ.pop("TEST_KEYS").split())  # tests' keys only
ctx = context(Paths(Path(home)).ensure(), key, tomb)
start = time.time()
for name in sources:
    steps.ingest.ingest(name, dt.date.fromisoformat(first), ctx, until=dt.date.fromisoformat(last))
print(json.dumps({"start": start, "end": time.time(), "locks": locks.tally()}))
"""


def test_two_machines_ingest_at_once_ordered_by_postgresql_alone(tmp_path, landing, key, tomb):
    """Two processes, each with its own lock files switched off (what a flock is across hosts), ingest the
    same data directory at once, half the sources each: with the zones' locks in PostgreSQL they overlap,
    wait for each other's writes there, and every line of every day is accounted for once (in the rows or
    in quarantine, as each day's ingest log says)."""
    paths = Paths(tmp_path / "home").ensure()
    paths.landing.rmdir()
    paths.landing.symlink_to(landing)
    sources = sorted(p.name for p in landing.iterdir() if p.is_dir())
    halves = [sources[0::2], sources[1::2]]
    last = START + dt.timedelta(days=DAYS - 1)
    with postgres() as (url, _data):
        env = {**os.environ, "PLUS_ZONE_LOCKS": url, "PLUS_ANALYTICS_HOME": str(paths.home),
               "TEST_KEYS": f"{key.secret.hex()} {tomb.secret.hex()}"}
        procs = [subprocess.Popen([sys.executable, "-c", MACHINE, str(paths.home), str(START), str(last), *half],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for half in halves]
        outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    runs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert min(r["end"] for r in runs) > max(r["start"] for r in runs), "the two machines ran at once"
    assert sum(r["locks"]["waited_s"] for r in runs) > 0, "they waited for each other's locks, in PostgreSQL"
    with opened(paths.raw_db, read_only=True) as con:
        logged = con.execute("select source, count(*), sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
                             "from ingest_log group by 1").fetchall()
        assert sorted(s for s, *_ in logged) == sources
        for source, days, read, loaded, bad in logged:
            rows = con.execute(f"select count(*) from raw_{source}").fetchone()[0]
            held = con.execute("select count(*) from quarantine where source = ?", [source]).fetchone()[0]
            assert (days, rows, held) == (DAYS, loaded, bad) and read == loaded + bad, source
