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

Several machines: with ``PLUS_ZONE_LOCKS`` (a PostgreSQL URL) the same locks, turnstile included, are
first taken as that server's advisory locks, keyed by the file's place in the data directory, so machines
that share the data path but no lock file exclude each other; a holder that dies loses them with its
connection. The files' locks are still taken after them, so a process of the same machine without the
setting (a CLI run in another shell) is still excluded.

Analysts are not part of this: they read ``analytics.duckdb``, which the pipeline never opens for
writing (builds are swapped in with an atomic rename).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

from plus_analytics.config import settings
from plus_analytics.storage import sql as sqlf

_held = threading.local()
_tally = {"waited_s": 0.0, "held_for_writing_s": 0.0}
log = logging.getLogger(__name__)
SQL = "storage/locks.sql"  # PostgreSQL's advisory locks (PLUS_ZONE_LOCKS)


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


def _wait(attempt, deadline: float, wait: float, what: Path, holder) -> None:
    """``attempt()`` (True: the lock is taken) until it succeeds, backing off; at ``deadline`` a clear error
    naming ``holder()``."""
    delay = 0.02
    while not attempt():
        if time.monotonic() >= deadline:
            raise ZoneBusy(f"{what} is in use by {holder()}; gave up after waiting {wait:.0f} s "
                           f"(PLUS_ZONE_LOCK_TIMEOUT). "
                           f"The holder is still working or hung: wait, or stop it; nothing was changed here.")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _flock(fd: int, op: int, deadline: float, wait: float, what: Path) -> None:
    def attempt() -> bool:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            return False

    _wait(attempt, deadline, wait, what, lambda: _describe_holder(lock_file(what)))


def _holder_what() -> str:
    """What this process is, for whoever waits for its locks: the Airflow task, else its command."""
    what = os.environ.get("AIRFLOW_CTX_DAG_ID")
    if what:
        return f"{what}.{os.environ.get('AIRFLOW_CTX_TASK_ID', '?')}"
    return " ".join(os.path.basename(a) for a in sys.argv[:3]) or "python"


def _holder_info() -> str:
    return json.dumps({"pid": os.getpid(), "what": _holder_what(),
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


def advisory_key(path: Path) -> int:
    """The PostgreSQL advisory lock key of a zone file: from its folder and name in the data directory
    (``restricted/raw.duckdb``), so machines that mount the shared data path in different places agree."""
    name = "/".join(Path(path).parts[-2:])
    return int.from_bytes(hashlib.sha256(f"plus-analytics zone {name}".encode()).digest()[:8], "big") >> 1


def _dsn(url: str) -> str:
    """A libpq connection string from a SQLAlchemy-style URL (``postgresql+psycopg2://...``)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else url


@contextmanager
def _advisory(ordered: list[tuple[Path, bool]], deadline: float, wait: float) -> Iterator[None]:
    """The zone files' locks as PostgreSQL advisory locks (``PLUS_ZONE_LOCKS``), which every machine of a
    deployment shares: the same readers-writer rule and turnstile as the files' locks, one session of the
    server holding them. A process that dies, or whose machine does, loses its connection and with it its
    locks (TCP keepalives find a machine that vanished within about a minute)."""
    import psycopg2

    url = settings().zone_locks
    try:
        con = psycopg2.connect(_dsn(url), application_name=_holder_name(), connect_timeout=10, keepalives=1,
                               keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
    except psycopg2.Error as exc:
        where = url.rsplit("@", 1)[-1]  # host, port and database, never a password
        raise ZoneBusy(f"the zone locks are kept in PostgreSQL (PLUS_ZONE_LOCKS: {where}), which cannot be reached: "
                       f"{str(exc).strip().splitlines()[0]}; nothing was changed here") from None
    con.autocommit = True
    try:
        cur = con.cursor()
        for path, exclusive in ordered:
            key, turn = advisory_key(path), advisory_key(Path(f"{path}.turn"))
            _wait(partial(_advisory_try, cur, turn, True), deadline, wait, path, partial(_advisory_holder, cur, turn))
            try:
                _wait(partial(_advisory_try, cur, key, exclusive), deadline, wait, path, partial(_advisory_holder, cur, key))
            finally:
                cur.execute(sqlf.named(SQL, "unlock"), {"key": turn})
        yield
    finally:
        con.close()  # the server lets go of every lock the session held


def _advisory_try(cur, key: int, exclusive: bool) -> bool:
    cur.execute(sqlf.named(SQL, "try_exclusive" if exclusive else "try_shared"), {"key": key})
    return cur.fetchone()[0]


def _holder_name() -> str:
    """What a PostgreSQL session holding zone locks calls itself (its application name, 63 bytes at most)."""
    head = f"plus-analytics {socket.gethostname()[:24]} pid {os.getpid()} ("
    return f"{head}{_holder_what()[:63 - len(head) - 1]})"


def _advisory_holder(cur, key: int) -> str:
    cur.execute(sqlf.named(SQL, "holders"), {"high": key >> 32, "low": key & 0xFFFFFFFF})
    found = [f"{name} since {since:%Y-%m-%d %H:%M:%S %Z}" for name, since in cur.fetchall()]
    return "; ".join(found) or "another process (a session that just let go)"


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
            if settings().zone_locks:  # machines that share the data path share these; the files' locks follow
                stack.enter_context(_advisory(ordered, deadline, wait))
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
            if "raw" in write:
                duck.store_uncompressed(con)
            raw = write.get("raw") or read.get("raw")
            if raw is not None and Path(raw).exists():
                # the zone's rows: lake.raw_<source>; the views stay with a session that goes on (they hold no
                # file open: each later zone session points them at the snapshot it sees before any use)
                lake.attach(con, Path(raw), writable="raw" in write)
            yield con
        finally:
            if own:
                con.close()
            else:
                duck.detach(con, attached)  # before the locks go: DuckDB holds a file while it is attached
