"""Physical erasure of files: atomic rewrites, overwrites in place, DuckDB file compaction, pending-rewrite markers, byte scans.

DuckDB's DELETE leaves the deleted strings in the file's freed blocks (even after CHECKPOINT and
VACUUM), so a file that had personal data deleted from it is rewritten: its live data copied into a
fresh file, which then replaces it atomically. Because a process can die between the delete and the
rewrite, the deleting transaction is preceded by :func:`mark_dirty`; the marker is removed only after the
rewrite, and every erasure or retention run first finishes the rewrites a dead run left pending.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plus_analytics.storage import faults

SCAN_CHUNK = 64 * 2**20


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes | list) -> None:
    """Replace ``path`` with ``data`` (bytes, or a list of byte buffers written one after the other):
    readers see the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".writing")
    with open(tmp, "wb") as fh:
        if isinstance(data, list):
            fh.writelines(data)
        else:
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    faults.reached("file")


def overwrite_in_place(path: Path, spans: list[tuple[int, bytes]]) -> None:
    """Write each ``(offset, bytes)`` over the same bytes of ``path`` and fsync: the file keeps its size and
    its blocks, so on an overwrite-in-place file system (ext4, XFS) the old bytes are gone from the disk too,
    where a replacing rename leaves the whole old file in free blocks. A process killed half-way leaves
    some spans written and the rest untouched; the caller's rerun writes them again."""
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset, data in spans:
            os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    faults.reached("file")


def dirty_marker(path: Path) -> Path:
    return path.with_name(path.name + ".needs-rewrite")


def mark_dirty(path: Path) -> bool:
    """Record, durably, that ``path`` will hold deleted values in freed blocks until it is rewritten.
    Returns whether this call made the mark (False: it was there already)."""
    marker = dirty_marker(path)
    if marker.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, b"deleted values may remain in freed blocks until this file is rewritten\n")
    return True


def is_dirty(path: Path) -> bool:
    return dirty_marker(path).exists()


def rewrite_database(path: Path, uncompressed: bool = False) -> int:
    """Copy the live data of a DuckDB file into a fresh file and swap it in: the freed blocks that still
    hold deleted strings are gone with the old file; with ``uncompressed`` (the restricted database) the
    fresh file stores every value as written (:func:`plus_analytics.storage.duck.store_uncompressed`).
    Clears the pending-rewrite marker. The caller holds the file's zone lock exclusively. Returns the new
    size in bytes."""
    from plus_analytics.storage import duck

    if not path.exists():
        dirty_marker(path).unlink(missing_ok=True)
        return 0
    fresh = path.with_name(path.name + ".rewrite")
    for p in (fresh, Path(str(fresh) + ".wal")):
        p.unlink(missing_ok=True)
    con = duck.connect(duck.spill_directory(path))
    try:
        if uncompressed:
            duck.store_uncompressed(con)
        duck.attach(con, path, "old", read_only=True)
        duck.attach(con, fresh, "new", read_only=False)
        con.execute("copy from database old to new")
        con.execute("detach new")
        con.execute("detach old")
    finally:
        con.close()
    with open(fresh, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(fresh, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    fsync_dir(path.parent)
    faults.reached("file")
    dirty_marker(path).unlink(missing_ok=True)
    return path.stat().st_size


def _matcher(needles: list[bytes]):
    """A Hyperscan database matching every needle as an exact byte string (each byte escaped, so NUL and
    any other byte are literal), each reported once per scan, whatever else overlaps it."""
    import hyperscan

    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[b"".join(b"\\x%02x" % c for c in n) for n in needles], ids=list(range(len(needles))),
               elements=len(needles), flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(needles))
    return db


def _scan_file(db, path: Path, overlap: int) -> set[int]:
    """Needle indexes found in one file, read in chunks (a database file can be larger than memory
    should hold); consecutive chunks overlap by the longest needle less one byte, so nothing straddling
    a boundary is missed. Each thread has its own scratch space."""
    import hyperscan

    hits: set[int] = set()
    scratch = hyperscan.Scratch(db)

    def found(needle: int, start: int, end: int, flags: int, context) -> None:
        hits.add(needle)

    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(SCAN_CHUNK):
            data = tail + chunk
            db.scan(data, match_event_handler=found, scratch=scratch)
            tail = data[-overlap:] if overlap else b""
    return hits


def files_under(root: Path, skip: Iterable[Path] = ()) -> list[Path]:
    """Every regular file under ``root`` but those under ``skip``: what holds bytes at rest (not symbolic
    links, which point at files counted where they are, nor sockets and pipes, which hold none)."""
    skip = tuple(skip)
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not any(p.is_relative_to(s) for s in skip) and _regular(p):
                out.append(p)
    return out


def _regular(p: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(p).st_mode)
    except FileNotFoundError:
        return False  # removed while we walked
    except OSError:
        return True  # cannot even look: scanned, so the scan reports it


def scan_bytes(paths: Path | Iterable[Path], needles: list[bytes]) -> dict[str, list[int]]:
    """{file: [needle indexes found]} over the raw bytes of ``paths`` (a directory: every file under
    it), Hyperscan on every core (it releases the GIL while it scans). A file that cannot be read is
    reported as a hit of every needle: a scan that could not look must not pass."""
    if not needles:
        raise ValueError("a byte scan with nothing to look for proves nothing")
    if not all(needles):
        raise ValueError("an empty needle would match every file")
    if isinstance(paths, Path) and paths.is_dir():
        paths = files_under(paths)
    db = _matcher(needles)
    overlap = max(map(len, needles)) - 1

    def scan(p: Path) -> tuple[str, set[int]]:
        try:
            return str(p), _scan_file(db, p, overlap)
        except FileNotFoundError:
            return str(p), set()  # removed while we walked (a rewrite's temporary file)
        except OSError:
            return str(p), set(range(len(needles)))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return {f: sorted(h) for f, h in pool.map(scan, list(paths)) if h}
