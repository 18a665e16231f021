"""The zones' locks kept in PostgreSQL (``PLUS_ZONE_LOCKS``), as a deployment of several machines sharing
the data path keeps them: two processes that share no lock file (two machines mounting the share in
different places, here two directories) exclude each other by the zone file's place in the data
directory; readers share; a holder killed lets go; an unreachable server is a clear error, no secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plus_analytics.config import ConfigError, settings
from plus_analytics.storage import locks
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
