"""One discipline for every zone file: a readers-writer lock per DuckDB file, taken before DuckDB opens it.

Why: DuckDB lets one process hold a file read-write, and that lock shuts out every other process,
readers included; a second process that tries fails at once ("Could not set lock on file"). Airflow
runs tasks of several DAGs at the same time in separate processes, the CLI and the DPO's console run
beside them. So every open of a zone file, read or write, first takes an advisory lock on
``<file>.lock`` that mirrors DuckDB's rule (shared for readers, exclusive for a writer) and *waits* for
it, up to ``PLUS_ZONE_LOCK_TIMEOUT`` seconds, with a clear message naming the holder if the wait runs
out. A lock conflict inside DuckDB is then impossible; the worst case is a bounded wait.

Properties:
* ``flock`` locks belong to the open file: a process that dies (SIGKILL included) releases them.
* Writers are not starved by a stream of readers: everyone passes a turnstile (``<file>.lock.turn``)
  first, and a waiting writer holds it, so new readers queue behind the writer.
* A session takes all the locks it needs at once, in one global order (by path), so two sessions can
  never wait for each other. Sessions do not nest (checked), which keeps that true.

Analysts are not part of this: they read ``analytics.duckdb``, which the pipeline never opens for
writing (builds are swapped in with an atomic rename).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from plus_analytics.config import settings

_held = threading.local()
_tally = {"waited_s": 0.0, "held_for_writing_s": 0.0}
log = logging.getLogger(__name__)


class ZoneBusy(TimeoutError):
    """A zone file stayed locked by another process for longer than the allowed wait."""


class NestedZoneSession(RuntimeError):
    """A zone session was opened inside another one: that could deadlock, so it is refused."""


def lock_file(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _describe_holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (readers)"
    return f"pid {info.get('pid')} ({info.get('what', '?')}) since {info.get('since', '?')}"


def _flock(fd: int, op: int, deadline: float, wait: float, what: Path) -> None:
    delay = 0.02
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        if time.monotonic() >= deadline:
            raise ZoneBusy(f"{what} is in use by {_describe_holder(lock_file(what))}; gave up after waiting "
                           f"{wait:.0f} s (PLUS_ZONE_LOCK_TIMEOUT). "
                           f"The holder is still working or hung: wait, or stop it; nothing was changed here.")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _holder_info() -> str:
    what = os.environ.get("AIRFLOW_CTX_DAG_ID")
    if what:
        what = f"{what}.{os.environ.get('AIRFLOW_CTX_TASK_ID', '?')}"
    else:
        what = " ".join(os.path.basename(a) for a in sys.argv[:3]) or "python"
    return json.dumps({"pid": os.getpid(), "what": what,
                       "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")})


@contextmanager
def _one(path: Path, exclusive: bool, deadline: float, wait: float) -> Iterator[None]:
    lock = lock_file(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        turn = os.open(str(lock) + ".turn", os.O_RDWR | os.O_CREAT, 0o600)
        stack.callback(os.close, turn)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        stack.callback(os.close, fd)
        _flock(turn, fcntl.LOCK_EX, deadline, wait, path)
        try:
            _flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline, wait, path)
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_info().encode(), 0)
            stack.callback(os.ftruncate, fd, 0)
        stack.callback(fcntl.flock, fd, fcntl.LOCK_UN)
        yield


@contextmanager
def hold(locks: Mapping[Path, bool], timeout: float | None = None) -> Iterator[None]:
    """Hold the locks of ``locks`` ({zone file: exclusive}) for the block: all of them, taken in one
    global order, each waiting at most until ``timeout`` seconds from now (default: the setting)."""
    if getattr(_held, "paths", None):
        raise NestedZoneSession(f"a zone session is already open on {sorted(map(str, _held.paths))}: take every "
                                f"file one session needs at once (lock order), never one session inside another")
    wait = settings().lock_timeout if timeout is None else timeout
    deadline = time.monotonic() + wait if wait > 0 else 0
    ordered = sorted(((Path(p).resolve(), ex) for p, ex in locks.items()), key=lambda x: str(x[0]))
    _held.paths = [p for p, _ in ordered]
    asked = time.monotonic()
    try:
        with ExitStack() as stack:
            for path, exclusive in ordered:
                stack.enter_context(_one(path, exclusive, deadline, wait))
            got = time.monotonic()
            _tally["waited_s"] += got - asked
            if got - asked >= 1:
                log.info("waited %.1f s for the zone locks of %s", got - asked, [p.name for p in _held.paths])
            try:
                yield
            finally:
                if any(ex for _, ex in ordered):
                    _tally["held_for_writing_s"] += time.monotonic() - got
    finally:
        _held.paths = []


def tally() -> dict[str, float]:
    """This process's seconds spent waiting for zone locks, and holding one for writing (what another
    writer of the same file waits for)."""
    return {k: round(v, 2) for k, v in _tally.items()}


#: The zones by how sensitive what a session may spill from them is: a session spills beside the first
#: one it attaches (the restricted zone's files are the only place raw values may be written).
SENSITIVITY = ("raw", "ledger", "stg", "build", "analytics")


def _most_sensitive(files: Mapping[str, Path]) -> Path:
    if not files:
        raise ValueError("a zone session attaches at least one zone file")
    alias = min(files, key=lambda a: SENSITIVITY.index(a) if a in SENSITIVITY else len(SENSITIVITY))
    return Path(files[alias])


@contextmanager
def zone(write: Mapping[str, Path] | None = None, read: Mapping[str, Path] | None = None,
         timeout: float | None = None, con=None):
    """A DuckDB session holding every file's lock for the block: an in-memory database with each zone
    file of ``write`` attached read-write and each of ``read`` attached read-only, under its alias
    ({alias: file}; see :data:`plus_analytics.config.ZONES`); with the restricted zone come its Delta
    tables' views (:mod:`plus_analytics.storage.lake`). Every table is named with its database
    (``ledger.tombstones``), so what a name means never depends on which file a session opened first;
    only the session's scratch tables (``_name``, temporary) go unqualified. Files to read that do not
    exist yet are not attached.

    With ``con`` (a session of :func:`plus_analytics.storage.duck.connect` spilling where these files
    allow), the files are attached to it for the block and detached when it ends, the session and its
    scratch tables kept: work that needs no zone (reading landing files) is done before, without holding
    any lock, and the locks are held only while the zone's files are in use."""
    from plus_analytics.storage import duck, lake

    read, write = dict(read or {}), dict(write or {})
    if set(read) & set(write):
        raise ValueError(f"attached both to read and to write: {sorted(set(read) & set(write))}")
    locks: dict[Path, bool] = {Path(p): False for p in read.values()}
    locks.update({Path(p): True for p in write.values()})
    with hold(locks, timeout):
        own = con is None
        if own:
            con = duck.connect(duck.spill_directory(_most_sensitive({**read, **write})))
        attached: list[str] = []
        try:
            for alias, p in read.items():
                if Path(p).exists():
                    duck.attach(con, p, alias, read_only=True)
                    attached.append(alias)
            for alias, p in write.items():
                duck.attach(con, p, alias, read_only=False)
                attached.append(alias)
            raw = write.get("raw") or read.get("raw")
            if raw is not None and Path(raw).exists():
                lake.attach(con, Path(raw), writable="raw" in write)  # the zone's rows: lake.raw_<source>
                attached.append(lake.SCHEMA)
            yield con
        finally:
            if own:
                con.close()
            else:
                duck.detach(con, attached)  # before the locks go: DuckDB holds a file while it is attached
