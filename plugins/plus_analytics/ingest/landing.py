"""Rewriting landing files in place: blank whole lines (every other row's line number stays valid) and
redact single fields. Used by erasure and by ingest (late arrivals of erased subjects). Each file is
replaced atomically; doing it twice gives the same file, so a run that died half-way is simply redone."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from plus_analytics.policy import REDACTED
from plus_analytics.storage.files import atomic_write_bytes

#: Files rewritten at once: one file's read, write and fsync overlap the next one's newline index.
REWRITE_THREADS = 4
NEWLINE_CHUNK = 8 * 2**20


def _redact_line(text: str, cols: set[str], header: list[str] | None) -> str:
    if header is None:
        obj = json.loads(text)
        for c in cols:
            obj[c] = REDACTED
        return json.dumps(obj, ensure_ascii=False)
    fields = next(csv.reader([text]))
    for c in cols:
        fields[header.index(c)] = REDACTED
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def _newlines(data: bytes) -> np.ndarray:
    """Offsets of every b"\\n" in ``data``, found in chunks (a bounded temporary, however large the file)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    found = [np.flatnonzero(arr[i:i + NEWLINE_CHUNK] == 0x0A) + i for i in range(0, len(arr), NEWLINE_CHUNK)]
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _rewrite_file(path: Path, gone: set[int], redact: dict[int, set[str]]) -> tuple[list | None, int]:
    """The new content of one file as a list of byte buffers (None: nothing to change) and how many lines
    it changes. Lines are found by a vectorized newline index and spliced, never split into one object per
    line: a landing file holds millions of lines and an erasure touches a few of them."""
    data = path.read_bytes()
    newlines = _newlines(data)
    count = len(newlines) + 1  # as bytes.split(b"\n") counts: a final newline ends in an empty last line

    def line(k: int) -> tuple[int, int]:  # line k (1-based) is data[start:end], without its newline
        return (int(newlines[k - 2]) + 1 if k > 1 else 0), (int(newlines[k - 1]) if k <= len(newlines) else len(data))

    header = None
    if path.suffix == ".csv":
        header = next(csv.reader([data[slice(*line(1))].decode("utf-8", "replace")]))
    new: dict[int, bytes] = {}
    for k, cols in redact.items():
        if k not in gone and 0 < k <= count and (text := data[slice(*line(k))]):
            new[k] = _redact_line(text.decode("utf-8"), set(cols), header).encode("utf-8")
    n = len(new)
    for k in gone:
        if 0 < k <= count:
            new[k] = b""
            n += 1
    view, parts, at, differs = memoryview(data), [], 0, False
    for k in sorted(new):
        start, end = line(k)
        differs = differs or view[start:end] != new[k]
        parts += [view[at:start], new[k]]
        at = end
    parts.append(view[at:])
    return (parts if differs else None), n


def rewrite_lines(landing: Path, blank: dict[str, set[int]], redact: dict | None = None) -> dict[str, int]:
    """Blank the lines ``blank`` ({file: line numbers}) and set the fields ``redact`` ({file: {line:
    columns}}) to the redaction marker. Files are relative to ``landing``. Returns lines changed per file.
    Files are done on a few threads: reading, the newline index, writing and fsync release the GIL, so
    one file's disk wait overlaps the next one's work. Each file is replaced atomically."""
    redact = redact or {}

    def one(f: str) -> tuple[str, int | None]:
        path = Path(landing) / f
        if not path.exists():
            return f, None
        parts, n = _rewrite_file(path, blank.get(f, set()), redact.get(f, {}))
        if parts is not None:  # a rerun finds its lines already blank: nothing to write
            atomic_write_bytes(path, parts)
        return f, n

    with ThreadPoolExecutor(max_workers=REWRITE_THREADS) as pool:
        return {f: n for f, n in pool.map(one, sorted(set(blank) | set(redact))) if n is not None}
