"""Reading landing files into the candidate rows of a batch (temp table ``_cand``: one row per line,
with ``_err`` for what is wrong with the line as a whole, and per declared column its JSON type and text
value, ``t_<col>`` and ``v_<col>``).

A batch's lines reach DuckDB with no Python object per line: the newlines are found by one vectorized
search and the files' own bytes become one Arrow string array (each line with its newline, which JSON
ignores), registered as ``_batch_lines`` for the whole batch and read where it lies; one statement gives
every line's verdict and values. The lines are UTF-8-checked by Arrow's vectorized validation; the rare
line that is not valid UTF-8 is repaired (replacement characters) and marked, to be quarantined. What a
quarantined line keeps (``_payloads``) is read from the same bytes, only for those lines. A landed column
the policy does not declare stops the batch (fail closed).
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from plus_analytics.ingest import csv_records
from plus_analytics.ingest.landing import BLANK
from plus_analytics.policy import PolicyError, Source, UndeclaredColumnError
from plus_analytics.storage import duck
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.sql import q

SQL = "ingest/ingest.sql"
PAYLOAD_KEEP = 4000  # characters of a quarantined line kept for engineers (restricted zone only)


def partition_files(landing: Path, src: Source, day: dt.date) -> list[Path]:
    ext = "ndjson" if src.format == "ndjson" else "csv"
    return sorted((Path(landing) / src.name / f"dt={day.isoformat()}").glob(f"*.{ext}"))


def landed_days(landing: Path, src: Source) -> list[dt.date]:
    """Every day with a landing partition directory for ``src``, in order."""
    out = []
    for d in (Path(landing) / src.name).glob("dt=*"):
        try:
            out.append(dt.date.fromisoformat(d.name[3:]))
        except ValueError:
            continue
    return sorted(out)


def file_name(landing: Path, f: Path) -> str:
    """How raw rows and quarantine refer to a landing file: relative to the landing root, so the data
    directory can move and erasure always rewrites the files of the zone it works on."""
    return Path(f).relative_to(landing).as_posix()


_bad_bytes = threading.local()


def _collect_bad_bytes(exc: UnicodeDecodeError) -> tuple[str, int]:
    _bad_bytes.offsets.append(exc.start)
    return "\ufffd", exc.end


codecs.register_error("plus_analytics_collect", _collect_bad_bytes)

#: Where Arrow's UTF-8 validation says it stopped; past this many undecodable lines in one file, one
#: decoding pass of the whole file finds the rest faster than validating from each of them again.
_ARROW_BAD_AT = re.compile(r"string index (\d+)")
ARROW_UTF8_PROBES = 64


def line_starts(data: bytes) -> np.ndarray:
    """Where each line of ``data`` starts, and where the data ends (Arrow's offsets for its lines). A line
    ends at ``\n`` and nowhere else."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    tail = len(data) > (int(newlines[-1]) + 1 if len(newlines) else 0)  # a last line without a newline
    starts = np.empty(len(newlines) + tail + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:len(newlines) + 1] = newlines + 1
    if tail:
        starts[-1] = len(data)
    return starts


def _lines_array(data: bytes, starts: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.large_string(), len(starts) - 1, [None, pa.py_buffer(starts), pa.py_buffer(data)])


def undecodable_lines(data: bytes, starts: np.ndarray) -> list[int]:
    """0-based indexes of the lines of ``data`` that are not valid UTF-8. Arrow validates the lines in one
    vectorized pass from each undecodable line to the next (a line ends at a newline byte, which is never
    part of a multi-byte character, so a line is valid exactly when the file's decoding has no error in
    it); a file with many undecodable lines is decoded once instead."""
    lines, bad, at = _lines_array(data, starts), [], 0
    while len(bad) < ARROW_UTF8_PROBES:
        try:
            lines.slice(at).validate(full=True)
            return bad
        except pa.ArrowInvalid as exc:
            found = _ARROW_BAD_AT.search(str(exc))
            if found is None:
                break
            bad.append(at + int(found.group(1)))
            at = bad[-1] + 1
    _bad_bytes.offsets = []
    data.decode("utf-8", "plus_analytics_collect")
    return sorted(set((np.searchsorted(starts, _bad_bytes.offsets, side="right") - 1).tolist()))


def _repaired(data: bytes, starts: np.ndarray, bad: list[int]) -> tuple[bytes, np.ndarray]:
    """``data`` with every line of ``bad`` (0-based) decoded with replacement characters and cut to
    ``PAYLOAD_KEEP`` characters (it is quarantined; its line end stays as it was), and the lines' new
    starts."""
    parts, pos, shift = [], 0, np.zeros(len(starts), dtype=np.int64)
    for i in bad:
        start, end = int(starts[i]), int(starts[i + 1])
        line = data[start:end]
        newline = b"\r\n" if line.endswith(b"\r\n") else b"\n" if line.endswith(b"\n") else b"\r" if line.endswith(b"\r") else b""
        text = line[:len(line) - len(newline)].decode("utf-8", "replace")[:PAYLOAD_KEEP]
        parts += [data[pos:start], text.encode() + newline]
        shift[i + 1] = len(parts[-1]) - len(line)
        pos = end
    parts.append(data[pos:])
    return b"".join(parts), starts + np.cumsum(shift)


_BLANK_BYTES = np.frombuffer((BLANK + "\n").encode(), dtype=np.uint8)

#: The lines of a batch's files as DuckDB reads them (``_batch_lines``): file index, line number, whether
#: the line holds a record (not blank), whether it was undecodable, and the line over the file's bytes.
LINES = pa.schema([("f", pa.int32()), ("n", pa.int64()), ("keep", pa.bool_()), ("bad", pa.bool_()),
                   ("p", pa.large_string())])


def file_lines(data: bytes, f: int = 0) -> pa.Table:
    """The lines of a landing file's bytes as :func:`line_table`, each line that is not valid UTF-8
    repaired and marked ``bad``. One vectorized validation when the file is valid, as nearly all are."""
    starts = line_starts(data)
    bad = undecodable_lines(data, starts)
    if bad:
        data, starts = _repaired(data, starts, bad)
    return line_table(data, starts, [i + 1 for i in bad], f)


def line_table(data: bytes, starts: np.ndarray, bad: list[int], f: int) -> pa.Table:
    """The lines of ``data`` (valid UTF-8; ``starts`` from :func:`line_starts`) as an Arrow table over its
    own bytes (:data:`LINES`): ``p`` is the line with its ``\n`` (or ``\r\n``), ``keep`` false for a
    blank line, which holds no record, ``bad`` true for the line numbers ``bad``, ``f`` the file's index
    in its batch."""
    buf = np.frombuffer(data, dtype=np.uint8)
    count = len(starts) - 1
    maybe_blank = np.isin(buf[starts[:-1]], _BLANK_BYTES)  # a record starts with no blank byte: only these are read
    keep = ~maybe_blank
    for i in np.flatnonzero(maybe_blank):
        keep[i] = bool(data[starts[i]:starts[i + 1]].strip(_BLANK_BYTES.tobytes()))
    marked = np.zeros(count, dtype=bool)
    marked[np.asarray(bad, dtype=np.int64) - 1] = True
    return pa.table([pa.array(np.full(count, f, dtype=np.int32)), pa.array(np.arange(1, count + 1, dtype=np.int64)),
                     pa.array(keep), pa.array(marked), _lines_array(data, starts)], schema=LINES)


def _register_batch(con, files: list[tuple[dt.date, Path]], landing: Path, lines) -> None:
    """The batch's lines (``lines``: an Arrow table or DataFrame, ``f`` the index into ``files``) registered
    as ``_batch_lines`` until :func:`release`, its files as ``_batch_files`` (``f``, ``_dt``, ``_file``)."""
    duck.register(con, "_batch_lines", lines)
    sqlf.run(con, SQL, "batch_files", {"days": [d for d, _ in files], "names": [file_name(landing, f) for _, f in files]})
    sqlf.run(con, SQL, "payloads")


def release(con) -> None:
    """Forget a batch's lines (and their bytes, which ``_payloads`` reads until then)."""
    sqlf.run(con, SQL, "drop_payloads")
    sqlf.run(con, SQL, "drop_batch_files")
    con.unregister("_batch_lines")


def load_ndjson(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    """``_cand`` from NDJSON files: the batch's lines read where they lie (one Arrow table over the files'
    bytes, no copy), every line's JSON verdict and every declared key's type and text in one statement."""
    tables = [file_lines(Path(f).read_bytes(), f=i) for i, (_, f) in enumerate(files)]
    _register_batch(con, files, landing, pa.concat_tables(tables) if tables else LINES.empty_table())
    declared = list(src.column_names)
    undeclared = [r[0] for r in sqlf.run(con, SQL, "undeclared_keys", {"declared": declared}).fetchall()]
    if undeclared:
        raise UndeclaredColumnError(src.name, undeclared)
    columns = ", ".join(f"types[{i}] as {q('t_' + c)}, texts[{i}] as {q('v_' + c)}" for i, c in enumerate(declared, 1))
    sqlf.run(con, SQL, "json_candidates", {"paths": [f'$."{c}"' for c in declared]}, columns=columns)


#: What ``surrogateescape`` decoding leaves for a byte that is not UTF-8.
_UNDECODED = re.compile("[\udc80-\udcff]")


def _csv_records(src: Source, landing: Path, f: Path) -> list[list]:
    declared = list(src.column_names)
    lines = csv_records.split_lines(Path(f).read_bytes().decode("utf-8", "surrogateescape"))
    found = csv_records.records(lines)
    header = next(found, None)
    if header is None:
        return []
    if header.fields is None:
        raise PolicyError(f"source {src.name!r}: the header of {file_name(landing, f)} cannot be read ({header.error}), "
                          f"so its columns cannot be checked against the policy")
    names = [h.strip() for h in header.fields]
    src.check_columns(names)  # fail closed on an undeclared column
    pos = {h: i for i, h in enumerate(names)}
    records = []
    for rec in found:
        fields = rec.fields
        if fields is not None and (not fields or all(not x.strip() for x in fields)):
            continue
        err = rec.error
        payload = ",".join(fields) if fields is not None else "".join(lines[rec.first - 1:rec.last]).rstrip("\n")
        if _UNDECODED.search(payload):
            err = "invalid UTF-8"
            payload = payload.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        elif err is None and len(fields) != len(names):
            err = f"wrong number of fields: expected {len(names)}, got {len(fields)}"
        values = []
        for c in declared:
            i = pos.get(c)
            v = fields[i] if (err is None and i is not None and i < len(fields)) else None
            values.append(v if v != "" else None)
        records.append([rec.first, payload[:PAYLOAD_KEEP], err] + values)
    return records


def load_csv(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    """``_cand`` from CSV files (header checked against the policy; a short or long row is quarantined)."""
    declared = list(src.column_names)
    records = [[i, *r] for i, (_, f) in enumerate(files) for r in _csv_records(src, landing, f)]
    frame = pd.DataFrame(records, columns=["f", "n", "p", "_err"] + [f"v_{c}" for c in declared], dtype=object)
    frame["f"] = frame["f"].astype("int32")
    frame["n"] = frame["n"].astype("int64")
    _register_batch(con, files, landing, frame)
    columns = ", ".join(f"case when {q('v_' + c)} is null then 'NULL' else 'VARCHAR' end as {q('t_' + c)}, "
                        f"cast({q('v_' + c)} as varchar) as {q('v_' + c)}" for c in declared)
    sqlf.run(con, SQL, "csv_candidates", columns=columns)


def load_candidates(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    (load_ndjson if src.format == "ndjson" else load_csv)(con, src, files, Path(landing))
