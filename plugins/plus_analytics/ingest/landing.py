"""Rewriting landing files in place: blank whole records (every other row's line number stays valid) and
redact single fields. Used by erasure and by ingest (late arrivals of erased subjects). A record is one
line, or for CSV every line a quoted line break makes it span (:mod:`plus_analytics.ingest.csv_records`).

A blanked line keeps its length (spaces: ingest skips a line of whitespace as it skips an empty one), and
a redacted NDJSON line is padded with spaces to its old length (whitespace after a JSON value is no part
of it); so the changed lines are overwritten where they are, without copying the file. Only a change that
cannot keep its length (a redacted CSV line, or a redacted line longer than before) makes the file be
rewritten and replaced atomically. Doing it twice gives the same file, so a run that died half-way is
simply redone."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from plus_analytics.ingest import csv_records
from plus_analytics.policy import REDACTED
from plus_analytics.storage.files import atomic_write_bytes, overwrite_in_place

#: Files rewritten at once: one file's read, write and fsync overlap the next one's newline index.
REWRITE_THREADS = 4
NEWLINE_CHUNK = 8 * 2**20
#: What a line holding no record may hold besides nothing: ingest skips it, a blanked line is made of it.
BLANK = " \t\f\v\r"


def _redacted(span: bytes, cols: set[str], header: list[str] | None, fields: list[str] | None) -> bytes:
    """A record with the fields ``cols`` set to the marker. JSON: padded with spaces to its old length when
    shorter. CSV (``fields`` as the reader read them): as many line breaks as before (a redacted value that
    held some leaves empty lines)."""
    if header is None:
        obj = json.loads(span)
        for c in cols:
            obj[c] = REDACTED
        text = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return text + b" " * (len(span) - len(text)) if len(text) < len(span) else text
    if fields is None:
        raise ValueError("a CSV record the reader rejects holds no field to redact")
    old, fields = span.decode("utf-8", "surrogateescape"), list(fields)
    for c in cols:
        fields[header.index(c)] = REDACTED
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(fields)  # (a value holding a character of the terminator is quoted)
    text = buf.getvalue()[:-2]
    return (text + "\n" * (old.count("\n") - text.count("\n"))).encode("utf-8", "surrogateescape")


def _blanked(span: bytes) -> bytes:
    """Every byte but the line breaks made a space: the same length, the same lines, no record."""
    arr = np.frombuffer(span, dtype=np.uint8).copy()
    arr[arr != 0x0A] = 0x20
    return arr.tobytes()


def _newlines(data: bytes) -> np.ndarray:
    """Offsets of every b"\\n" in ``data``, found in chunks (a bounded temporary, however large the file)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    found = [np.flatnonzero(arr[i:i + NEWLINE_CHUNK] == 0x0A) + i for i in range(0, len(arr), NEWLINE_CHUNK)]
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


class _Records:
    """One landing file's bytes and newline index: where line k is and where the record starting at it
    ends, without splitting the file into one object per line (a landing file holds millions of lines
    and an erasure touches a few of them)."""

    def __init__(self, path: Path):
        self.data = path.read_bytes()
        self.newlines = _newlines(self.data)
        self.count = len(self.newlines) + 1  # as bytes.split(b"\n") counts: a final newline ends in an empty last line
        self.csv = path.suffix == ".csv"

    def line(self, k: int) -> tuple[int, int]:
        """Line k (1-based) is data[start:end], without its newline."""
        nl = self.newlines
        return (int(nl[k - 2]) + 1 if k > 1 else 0), (int(nl[k - 1]) if k <= len(nl) else len(self.data))

    def _texts(self, k: int) -> Iterator[str]:  # lines k, k+1, ... as ingest reads a CSV file
        for i in range(k, self.count + 1):
            start, end = self.line(i)
            if i < self.count or end > start:
                yield self.data[start:end].decode("utf-8", "surrogateescape") + ("\n" if i < self.count else "")

    def header(self) -> list[str]:
        first = next(csv_records.records(self._texts(1)), None)
        return [h.strip() for h in first.fields] if first is not None and first.fields else []

    def record(self, k: int) -> tuple[int, int, list[str] | None]:
        """Bounds of the record starting at line k (that line, or a CSV record's every line) and, for CSV,
        its fields as the reader read them (None: rejected)."""
        last, fields = k, None
        if self.csv:
            rec = next(csv_records.records(self._texts(k), k), None)
            last, fields = (rec.last, rec.fields) if rec is not None else (k, None)
        return self.line(k)[0], self.line(last)[1], fields


def _changes(path: Path, gone: set[int], redact: dict[int, set[str]]) -> tuple[bytes, list[tuple[int, int, bytes]], int]:
    """(the file's bytes, its changes as ``(start, end, new bytes)`` in file order, records changed). A
    change equal to what is there is left out (a rerun finds its records already blank)."""
    f = _Records(path)
    data, header = f.data, (f.header() if f.csv else None)
    new: dict[int, tuple[int, int, bytes]] = {}
    for k, cols in redact.items():
        if k not in gone and 0 < k <= f.count:
            start, end, fields = f.record(k)
            if data[start:end].strip(BLANK.encode()):  # a blank record holds no field to redact
                new[k] = (start, end, _redacted(data[start:end], set(cols), header, fields))
    for k in gone:
        if 0 < k <= f.count:
            start, end, _ = f.record(k)
            new[k] = (start, end, _blanked(data[start:end]))
    changes, at = [], 0
    for k in sorted(new):
        start, end, text = new[k]
        if start >= at and data[start:end] != text:  # (a line inside a record already changed is no record)
            changes.append((start, end, text))
        at = max(at, end)
    return data, changes, len(new)


def read_records(landing: Path, wanted: dict[str, set[int]]) -> dict[tuple[str, int], str]:
    """The whole text of the records starting at the lines ``wanted`` ({file: line numbers}, files
    relative to ``landing``), decoded with invalid bytes replaced; a file or line that is gone is left out.
    For what the restricted zone keeps only the start of (a quarantined line's payload)."""
    out = {}
    for name, lines in wanted.items():
        path = Path(landing) / name
        if not path.exists():
            continue
        f = _Records(path)
        for k in lines:
            if 0 < k <= f.count:
                start, end, _ = f.record(k)
                out[(name, k)] = f.data[start:end].decode("utf-8", "replace")
    return out


def _spliced(data: bytes, changes: list[tuple[int, int, bytes]]) -> list:
    view, parts, at = memoryview(data), [], 0
    for start, end, text in changes:
        parts += [view[at:start], text]
        at = end
    parts.append(view[at:])
    return parts


def rewrite_lines(landing: Path, blank: dict[str, set[int]], redact: dict | None = None) -> dict[str, int]:
    """Blank the lines ``blank`` ({file: line numbers}) and set the fields ``redact`` ({file: {line:
    columns}}) to the redaction marker. Files are relative to ``landing``. Returns lines changed per file.
    Files are done on a few threads: reading, the newline index, writing and fsync release the GIL, so
    one file's disk wait overlaps the next one's work."""
    redact = redact or {}

    def one(f: str) -> tuple[str, int | None]:
        path = Path(landing) / f
        if not path.exists():
            return f, None
        data, changes, n = _changes(path, blank.get(f, set()), redact.get(f, {}))
        if all(end - start == len(text) for start, end, text in changes):
            if changes:
                overwrite_in_place(path, [(start, text) for start, _, text in changes])
        else:
            atomic_write_bytes(path, _spliced(data, changes))
        return f, n

    with ThreadPoolExecutor(max_workers=REWRITE_THREADS) as pool:
        return {f: n for f, n in pool.map(one, sorted(set(blank) | set(redact))) if n is not None}
