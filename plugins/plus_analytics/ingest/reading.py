"""Reading landing files into the candidate rows of a batch (temp table ``_cand``: one row per line,
with ``_err`` for what is wrong with the line as a whole, and per declared column its JSON type and text
value, ``t_<col>`` and ``v_<col>``).

NDJSON lines reach DuckDB with no Python object per line: the newlines are found by one vectorized search
and the file's own bytes become one Arrow string array (each line with its newline, which JSON ignores;
it is cut off only from the payload a quarantined line keeps). The file is checked as UTF-8 in one
decoding pass; the rare line that is not valid UTF-8 is repaired (replacement characters) and marked,
to be quarantined. A landed column the policy does not declare stops the batch (fail closed).
"""

from __future__ import annotations

import codecs
import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from plus_analytics.ingest import csv_records
from plus_analytics.ingest.landing import BLANK
from plus_analytics.policy import PolicyError, Source, UndeclaredColumnError
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import with_frame
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


def repaired_utf8(data: bytes) -> tuple[bytes, list[int]]:
    """``data`` with every line that is not valid UTF-8 decoded with replacement characters and cut to
    ``PAYLOAD_KEEP`` characters (it is quarantined; a carriage return before its newline stays where it
    was), and those lines' numbers. One decoding pass when the file is valid, as nearly all are."""
    _bad_bytes.offsets = []
    data.decode("utf-8", "plus_analytics_collect")
    if not _bad_bytes.offsets:
        return data, []
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    bad = sorted(set(np.searchsorted(newlines, _bad_bytes.offsets).tolist()))  # 0-based line indexes
    parts, pos = [], 0
    for i in bad:
        start = int(newlines[i - 1]) + 1 if i > 0 else 0
        end = int(newlines[i]) if i < len(newlines) else len(data)
        line = data[start:end]
        cr = line.endswith(b"\r")
        parts += [data[pos:start], (line[:-1] if cr else line).decode("utf-8", "replace")[:PAYLOAD_KEEP].encode()
                  + (b"\r" if cr else b"")]
        pos = end
    parts.append(data[pos:])
    return b"".join(parts), [i + 1 for i in bad]


_BLANK_BYTES = np.frombuffer((BLANK + "\n").encode(), dtype=np.uint8)


def line_table(data: bytes) -> pa.Table:
    """The lines of ``data`` (valid UTF-8) as an Arrow table over its own bytes: ``n`` (line number), ``p``
    (the line with its ``\n``, or ``\r\n``), ``keep`` (false for a blank line, which holds no record). A
    line ends at ``\n`` and nowhere else."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    tail = len(data) > (int(newlines[-1]) + 1 if len(newlines) else 0)  # a last line without a newline
    starts = np.empty(len(newlines) + tail + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:len(newlines) + 1] = newlines + 1
    if tail:
        starts[-1] = len(data)
    count = len(starts) - 1
    maybe_blank = np.isin(buf[starts[:-1]], _BLANK_BYTES)  # a record starts with no blank byte: only these are read
    keep = ~maybe_blank
    for i in np.flatnonzero(maybe_blank):
        keep[i] = bool(data[starts[i]:starts[i + 1]].strip(_BLANK_BYTES.tobytes()))
    lines = pa.LargeStringArray.from_buffers(count, pa.py_buffer(starts), pa.py_buffer(data))
    return pa.table({"n": pa.array(np.arange(1, count + 1, dtype=np.int64)), "keep": pa.array(keep), "p": lines})


def load_ndjson(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    """``_cand`` from NDJSON files: lines, then one JSON extraction of every declared key."""
    sqlf.run(con, SQL, "lines_table")
    for day, f in files:
        data, bad = repaired_utf8(Path(f).read_bytes())
        with_frame(con, "_file_lines", line_table(data), sqlf.named(SQL, "insert_file_lines"),
                   {"name": file_name(landing, f), "day": day, "bad": bad})
    declared = list(src.column_names)
    sqlf.run(con, SQL, "json_objects")
    undeclared = [r[0] for r in sqlf.run(con, SQL, "undeclared_keys", {"declared": declared}).fetchall()]
    if undeclared:
        raise UndeclaredColumnError(src.name, undeclared)
    columns = ", ".join(f"json_type(j[{i}]) as {q('t_' + c)}, j[{i}] ->> '$' as {q('v_' + c)}"
                        for i, c in enumerate(declared, 1))
    sqlf.run(con, SQL, "json_candidates", {"paths": [f'$."{c}"' for c in declared]}, columns=columns)
    con.execute("drop table _objects")
    con.execute("drop table _lines")


def _csv_records(src: Source, landing: Path, day: dt.date, f: Path) -> list[list]:
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
        if any("\udc80" <= ch <= "\udcff" for ch in payload):
            err = "invalid UTF-8"
            payload = payload.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        elif err is None and len(fields) != len(names):
            err = f"wrong number of fields: expected {len(names)}, got {len(fields)}"
        values = []
        for c in declared:
            i = pos.get(c)
            v = fields[i] if (err is None and i is not None and i < len(fields)) else None
            values.append(v if v != "" else None)
        records.append([day, file_name(landing, f), rec.first, payload[:PAYLOAD_KEEP], err] + values)
    return records


def load_csv(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    """``_cand`` from CSV files (header checked against the policy; a short or long row is quarantined)."""
    declared = list(src.column_names)
    records = [r for day, f in files for r in _csv_records(src, landing, day, f)]
    frame = pd.DataFrame(records, columns=["_dt", "_file", "_line", "payload", "_err"] + [f"v_{c}" for c in declared],
                         dtype=object)
    frame["_line"] = frame["_line"].astype("int64")
    columns = ", ".join(f"case when {q('v_' + c)} is null then 'NULL' else 'VARCHAR' end as {q('t_' + c)}, "
                        f"cast({q('v_' + c)} as varchar) as {q('v_' + c)}" for c in declared)
    with_frame(con, "_csvrows", frame, sqlf.named(SQL, "csv_candidates", columns=columns))


def load_candidates(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    (load_ndjson if src.format == "ndjson" else load_csv)(con, src, files, Path(landing))
