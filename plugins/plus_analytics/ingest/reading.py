"""Reading landing files into the candidate rows of a batch (temp table ``_cand``: one row per line,
with ``_err`` for what is wrong with the line as a whole, and per declared column its JSON type and text
value, ``t_<col>`` and ``v_<col>``).

Lines are split in Python in one decoding pass (an error handler records where invalid UTF-8 is) and
handed to DuckDB as one frame per file: string functions over every line cost DuckDB more than the whole
split does. A landed column the policy does not declare stops the batch (fail closed).
"""

from __future__ import annotations

import codecs
import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pandas as pd

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


def decode_lines(data: bytes) -> tuple[list[str], list[int]]:
    """The lines of a landing file (``\\r\\n`` or ``\\n``), and the numbers of the lines that are not valid
    UTF-8 (decoded with replacement characters, to be quarantined). One decoding pass whatever the
    number of bad lines: the error handler records where the bad bytes are."""
    _bad_bytes.offsets = []
    text = data.decode("utf-8", "plus_analytics_collect")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1].endswith("\r"):
        lines[-1] = lines[-1][:-1]
    bad: list[int] = []
    line, pos = 1, 0
    for at in _bad_bytes.offsets:
        line += data.count(b"\n", pos, at)
        pos = at
        if not bad or bad[-1] != line:
            bad.append(line)
    return lines, bad


def load_ndjson(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    """``_cand`` from NDJSON files: lines, then one JSON extraction of every declared key."""
    sqlf.run(con, SQL, "lines_table")
    for day, f in files:
        lines, bad = decode_lines(Path(f).read_bytes())
        for n in bad:
            lines[n - 1] = lines[n - 1][:PAYLOAD_KEEP]
        keep = [i for i, line in enumerate(lines) if line.strip(BLANK)]  # blank lines hold no record
        frame = pd.DataFrame({"n": np.asarray(keep, dtype="int64") + 1, "p": [lines[i] for i in keep]})
        with_frame(con, "_file_lines", frame, sqlf.named(SQL, "insert_file_lines"),
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
