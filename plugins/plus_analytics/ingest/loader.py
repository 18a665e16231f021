"""Ingest: landing files of one source and one or more days into the restricted zone, bad rows into
quarantine.

The whole batch is validated set-wise inside DuckDB against the policy (types, required fields,
lengths, enums, minimums, identifier normalization, duplicate keys). Every line read ends up in exactly
one place: ``raw_<source>`` or ``quarantine`` (with file, line and reason), or is counted as suppressed
for an erasure request. Re-running a day replaces that day exactly, in one transaction.

A daily DAG run ingests one day; a backfill ingests many days of a source in batches of whole days
that fit memory (:func:`ingest_days`), with exactly the per-day results, rows and quarantine reasons
that ingesting them one by one, in order, would give: the statements and identifier lookups are paid
once per batch rather than once per day.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from plus_analytics import db

from plus_analytics.policy import Column, Source, UndeclaredColumnError
from plus_analytics.privacy import identifiers
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.sqlfiles import q as _q

log = logging.getLogger(__name__)

PAYLOAD_KEEP = 4000  # characters of a quarantined line kept for engineers (restricted zone only)
csv.field_size_limit(10_000_000)


@dataclass
class IngestResult:
    source: str
    day: str
    files: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_suppressed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


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


# ---------------------------------------------------------------------------------------------- reading

_bad_bytes = threading.local()


def _collect_bad_bytes(exc: UnicodeDecodeError) -> tuple[str, int]:
    _bad_bytes.offsets.append(exc.start)
    return "\ufffd", exc.end


codecs.register_error("plus_analytics_collect", _collect_bad_bytes)


def split_lines(data: bytes) -> tuple[list[str], list[int]]:
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


def file_name(landing: Path, f: Path) -> str:
    """How raw rows and quarantine refer to a landing file: relative to the landing root, so the data
    directory can move and erasure always rewrites the files of the zone it works on."""
    return Path(f).relative_to(landing).as_posix()


def _load_ndjson_lines(con, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    con.execute("create or replace temp table _lines (_dt date, _file varchar, _line bigint, payload varchar, _err varchar)")
    # Lines are split in Python and handed over as one frame per file: string functions over every line
    # (trim, rtrim) cost DuckDB more than the whole split does.
    for day, f in files:
        lines, bad = split_lines(Path(f).read_bytes())
        for n in bad:
            lines[n - 1] = lines[n - 1][:PAYLOAD_KEEP]
        keep = [i for i, line in enumerate(lines) if line.strip(" \t\f\v\r")]  # blank lines hold no record
        frame = pd.DataFrame({"n": np.asarray(keep, dtype="int64") + 1, "p": [lines[i] for i in keep]})
        db.with_frame(con, "_file_lines", frame,
                      """insert into _lines select $day, $name, n, p, if(list_contains($bad, n), 'invalid UTF-8', null)
                         from _file_lines""",
                      {"name": file_name(landing, f), "day": day, "bad": bad})


def _extract_ndjson(con, src: Source) -> None:
    declared = list(src.column_names)
    # Each line is parsed as few times as possible: JSON functions re-parse their text argument, and a
    # CASE around them costs several times the call itself, so validity is settled by filters first.
    con.execute("""create or replace temp table _objects as
                   select _dt, _file, _line, json_type(payload) = 'OBJECT' as is_object
                   from _lines where _err is null and json_valid(payload)""")
    undeclared = [r[0] for r in con.execute(
        """select distinct k from (
               select unnest(json_keys(l.payload)) as k from _lines l semi join _objects o
               on o._file = l._file and o._line = l._line and o.is_object)
           where k not in (select unnest($declared))""",
        {"declared": declared},
    ).fetchall()]
    if undeclared:
        raise UndeclaredColumnError(src.name, undeclared)
    paths = [f'$."{c}"' for c in declared]
    cols = ",\n".join(
        f"json_type(j[{i}]) as {_q('t_' + c)}, j[{i}] ->> '$' as {_q('v_' + c)}" for i, c in enumerate(declared, 1)
    )
    con.execute(
        f"""create or replace temp table _cand as
            select _dt, _file, _line, payload, _err, {cols}
            from (
                select l._dt, l._file, l._line, l.payload,
                       coalesce(l._err, if(o._line is null, 'invalid JSON', if(o.is_object, null, 'not a JSON object'))) as _err,
                       json_extract(if(o.is_object, l.payload, '{{}}'), $paths) as j
                from _lines l left join _objects o on o._file = l._file and o._line = l._line)""",
        {"paths": paths},
    )
    con.execute("drop table _objects")


def _load_csv(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path) -> None:
    declared = list(src.column_names)
    records = []
    for day, f in files:
        with open(f, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                continue
            header = [h.strip() for h in header]
            src.check_columns(header)  # fail closed on an undeclared column
            pos = {h: i for i, h in enumerate(header)}
            start = reader.line_num
            for fields in reader:
                line = start + 1
                start = reader.line_num
                if not fields or all(not x.strip() for x in fields):
                    continue
                payload = ",".join(fields)
                err = None
                if any("\udc80" <= ch <= "\udcff" for ch in payload):
                    err = "invalid UTF-8"
                    payload = payload.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                elif len(fields) != len(header):
                    err = f"wrong number of fields: expected {len(header)}, got {len(fields)}"
                values = []
                for c in declared:
                    i = pos.get(c)
                    v = fields[i] if (err is None and i is not None and i < len(fields)) else None
                    values.append(v if v != "" else None)
                records.append([day, file_name(landing, f), line, payload[:PAYLOAD_KEEP], err] + values)
    frame = pd.DataFrame(records, columns=["_dt", "_file", "_line", "payload", "_err"] + [f"v_{c}" for c in declared], dtype=object)
    frame["_line"] = frame["_line"].astype("int64")
    types = ", ".join(f"case when {_q('v_' + c)} is null then 'NULL' else 'VARCHAR' end as {_q('t_' + c)}" for c in declared)
    vals = ", ".join(f"cast({_q('v_' + c)} as varchar) as {_q('v_' + c)}" for c in declared)
    db.with_frame(con, "_csvrows", frame, f"create or replace temp table _cand as select cast(_dt as date) as _dt, _file, "
                                          f"_line, payload, cast(_err as varchar) as _err, {types}, {vals} from _csvrows")


# ------------------------------------------------------------------------------------------- validating

def typed_expr(c: Column, fmt: str) -> str:
    v = _q("v_" + c.name)
    t = c.type
    if t == "VARCHAR":
        return v
    if t == "TIMESTAMP":
        return f"(try_cast({v} as timestamptz) at time zone 'UTC')"
    return f"try_cast({v} as {t})"


def _allowed_json_types(c: Column) -> tuple[str, ...]:
    if c.type in ("VARCHAR", "TIMESTAMP", "DATE"):
        return ("VARCHAR",)
    if c.type == "BOOLEAN":
        return ("BOOLEAN",)
    if c.type == "BIGINT":
        return ("BIGINT", "UBIGINT")
    return ("BIGINT", "UBIGINT", "DOUBLE")  # DECIMAL, DOUBLE


def _check_expr(c: Column, fmt: str) -> str:
    """One CASE per column yielding the first problem with it, or NULL."""
    t, v, typed = _q("t_" + c.name), _q("v_" + c.name), typed_expr(c, fmt)
    name = c.name
    branches = []
    missing = f"{t} is null or {t} = 'NULL'"
    if c.required:
        branches.append((missing, f"'missing required field: {name}'"))
    else:
        branches.append((missing, "null"))
    if fmt == "ndjson":
        allowed = ", ".join(f"'{x}'" for x in _allowed_json_types(c))
        branches.append((f"{t} not in ({allowed})", f"'wrong type for {name}: expected {c.type}'"))
    branches.append((f"{typed} is null", f"'wrong type for {name}: expected {c.type}'"))
    if c.max_length:
        branches.append((f"length({v}) > {int(c.max_length)}", f"'value too long for {name}: over {int(c.max_length)} characters'"))
    if c.enum:
        allowed = ", ".join("'" + e.replace("'", "''") + "'" for e in c.enum)
        branches.append((f"{v} not in ({allowed})", f"'value not allowed for {name}'"))
    if c.min is not None:
        branches.append((f"{typed} < {c.min}", f"'value below minimum for {name}'"))
    if c.kind:
        branches.append((f"{_q('m_' + name)}.error is not null",
                         f"'invalid {c.kind} in {name}: ' || {_q('m_' + name)}.error"))
    whens = " ".join(f"when {cond} then {res}" for cond, res in branches)
    return f"case {whens} end"


def _validate(con, src: Source) -> None:
    cols = src.columns
    joins = "\n".join(
        f"left join id_map {_q('m_' + c.name)} on {_q('m_' + c.name)}.kind = '{c.kind}' "
        f"and {_q('m_' + c.name)}.raw_value = c.{_q('v_' + c.name)}"
        for c in cols if c.kind
    )
    checks = ", ".join(_check_expr(c, src.format) for c in cols)
    typed = ", ".join(f"{typed_expr(c, src.format)} as {_q(c.name)}" for c in cols)
    key = ", ".join(_q(k) for k in src.key)
    con.execute(
        f"""create or replace temp table _checked as
            select c._dt, c._file, c._line, c.payload,
                   coalesce(c._err, nullif(array_to_string(list_filter([{checks}], lambda x: x is not null), '; '), '')) as reason,
                   {typed}
            from _cand c
            {joins}"""
    )
    # Duplicate keys, as if the batch's days were ingested one by one in order: the first valid copy of
    # a key is kept; any other copy is a duplicate within its delivery if its own day has an earlier copy,
    # else it was delivered on an earlier day. Rows already loaded for days outside the batch count as earlier
    # deliveries for the days after them.
    con.execute(
        f"""update _checked set reason = if(d.n_day > 1, 'duplicate key ({', '.join(src.key)}) within the delivery',
                                            'duplicate key ({', '.join(src.key)}): delivered on an earlier day')
            from (select _file, _line, n_day from (
                    select _file, _line, row_number() over (partition by {key} order by _dt, _file, _line) as n,
                           row_number() over (partition by {key}, _dt order by _file, _line) as n_day
                    from _checked where reason is null) where n > 1) d
            where _checked._file = d._file and _checked._line = d._line"""
    )
    con.execute(
        f"""update _checked set reason = 'duplicate key ({', '.join(src.key)}): delivered on an earlier day'
            from (select distinct c._file, c._line from _checked c
                  join {src.raw_table} e on {' and '.join(f'c.{_q(k)} = e.{_q(k)}' for k in src.key)} and e._dt < c._dt
                  where c.reason is null and e._dt not in (select distinct _dt from _cand)) d
            where _checked._file = d._file and _checked._line = d._line"""
    )


# ----------------------------------------------------------------------------------------------- mentions

_D = "[0-9\u0e50-\u0e59\uff10-\uff19]"
#: Identifier candidates inside free text, matched as written (Thai and fullwidth digits included) so that
#: erasure can find the exact bytes later. Each candidate is normalized like any identifier; only the
#: ones that normalize can ever match a subject.
MENTION_PATTERNS = {
    "email": r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
    # digits with single spaces/dashes between them, an optional +, an optional (area code)
    "phone": r"\+?\(?" + _D + r"(?:\)? ?|[ \-]?)?(?:" + _D + r"(?:\)? ?|[ \-]?)){6,13}" + _D,
    "national_id": _D + r"(?:[ \-]?" + _D + r"){12}",
    "platform_user": r"U[0-9a-f]{32}",
}


def _extract_mentions(con, src: Source) -> None:
    parts = [
        f"""select _file, _line, '{kind}' as kind, unnest(regexp_extract_all({_q('v_' + c.name)}, '{rx.replace("'", "''")}')) as v
            from _cand where _err is null and {_q('v_' + c.name)} is not null"""
        for c in src.free_text_columns for kind, rx in MENTION_PATTERNS.items()
    ]
    con.execute("create or replace temp table _mentions as " + (" union all ".join(parts) if parts else
                "select null::varchar as _file, null::bigint as _line, null::varchar as kind, null::varchar as v where false"))
    con.execute("update _mentions set v = trim(v, ' -')")
    # A candidate that opens a parenthesis it never closes (or the reverse) is cut from its context;
    # normalization decides the rest.
    for kind in MENTION_PATTERNS:
        identifiers.learn_identifiers(con, kind, f"select v from _mentions where kind = '{kind}'")


# ------------------------------------------------------------------------------------------------ tables

def raw_table_ddl(src: Source) -> str:
    cols = ",\n    ".join(f"{_q(c.name)} {c.type}" for c in src.columns)
    return (f"create table if not exists {src.raw_table} (\n    _dt date not null,\n    _file varchar not null,\n"
            f"    _line bigint not null,\n    {cols},\n    _ingested_at timestamp not null\n)")


def ensure_raw_table(con, src: Source) -> None:
    con.execute(raw_table_ddl(src))
    from plus_analytics.db import table_columns

    have = table_columns(con, src.raw_table)
    want = ["_dt", "_file", "_line", *src.column_names, "_ingested_at"]
    if have != want:
        raise RuntimeError(
            f"{src.raw_table} has columns {have} but the policy declares {want}: migrate the restricted zone "
            f"(plus-analytics reingest --source {src.name}) before ingesting"
        )


def ingest_partition(con, src: Source, day: dt.date, landing: Path, key: MasterKey,
                     suppress: bool = False) -> IngestResult:
    """Validate and load one (source, day): see :func:`ingest_days`."""
    return ingest_days(con, src, [day], landing, key, suppress)[0]


def ingest_days(con, src: Source, days: list[dt.date], landing: Path, key: MasterKey,
                suppress: bool = False) -> list[IngestResult]:
    """Validate and load the landing files of ``src`` for ``days`` in batches of whole days (as many as
    fit :func:`batch_bytes`), each in one transaction; one result per day, in order. With ``suppress``
    (erased subjects exist, tombstone key registered), rows about a tombstoned subject (late arrivals)
    are counted per request, not loaded, and blanked in landing. A day without landing files keeps the rows already loaded for it (landing expired under
    retention, or not re-delivered): loaded data is never replaced with nothing."""
    days = sorted(set(days))
    identifiers.ensure_schema(con)
    identifiers.register_key(con, key)
    identifiers.check_key_version(con, key)
    ensure_raw_table(con, src)
    results: list[IngestResult] = []
    chunk: list[tuple[dt.date, list[Path]]] = []
    size = 0
    for day in days:
        found = partition_files(landing, src, day)
        day_size = sum(f.stat().st_size for f in found)
        if chunk and size + day_size > batch_bytes():
            results += _ingest_chunk(con, src, chunk, landing, suppress)
            chunk, size = [], 0
        chunk.append((day, found))
        size += day_size
    if chunk:
        results += _ingest_chunk(con, src, chunk, landing, suppress)
    return results


def batch_bytes() -> int:
    """Landing bytes ingested per batch (``PLUS_INGEST_BATCH_MB``, default 192): a batch's lines and
    candidates live in memory, so a long backfill is cut into batches of whole days that fit."""
    return int(float(os.environ.get("PLUS_INGEST_BATCH_MB", "192")) * 2**20)


def _ingest_chunk(con, src: Source, chunk: list[tuple[dt.date, list[Path]]], landing: Path,
                  suppress: bool) -> list[IngestResult]:
    """One batch of whole days, in one transaction."""
    days = [d for d, _ in chunk]
    files: list[tuple[dt.date, Path]] = [(d, f) for d, found in chunk for f in found]
    kept: dict[dt.date, int] = {}
    for day, found in chunk:
        if not found:
            n = con.execute(f"select count(*) from {src.raw_table} where _dt = ?", [day]).fetchone()[0]
            if n:
                log.warning("no landing files for %s on %s; keeping the %d rows already loaded", src.name, day, n)
                kept[day] = n
            else:
                log.warning("no landing files for %s on %s", src.name, day)
    replaced = [d for d in days if d not in kept]
    if src.format == "ndjson":
        _load_ndjson_lines(con, files, Path(landing))
        _extract_ndjson(con, src)
    else:
        _load_csv(con, src, files, Path(landing))

    # Learn identifiers and user agents before validation: validity of an identifier is part of it.
    for c in src.identifier_columns:
        identifiers.learn_identifiers(con, c.kind, f"select {_q('v_' + c.name)} as v from _cand where _err is null")
    for c in src.columns:
        if c.rule == "generalize" and c.how == "user_agent":
            identifiers.learn_user_agents(con, f"select {_q('v_' + c.name)} as v from _cand where _err is null")
    _extract_mentions(con, src)
    _validate(con, src)
    if src.visitor:
        event_days = [r[0] for r in con.execute(
            f"select distinct cast({_q(src.event_time)} as date) from _checked where reason is null").fetchall()]
        identifiers.ensure_visitor_salts(con, event_days)

    suppressed: dict[dt.date, int] = {}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    cols = ", ".join(_q(c) for c in src.column_names)
    batch = {"days": replaced}
    con.execute("begin transaction")
    try:
        if suppress:
            from plus_analytics.erasure import evidence
            from plus_analytics.erasure.propagate import rewrite_lines
            from plus_analytics.erasure.suppression import find_suppressed, forget_suppressed_identifiers

            if find_suppressed(con, src):
                evidence.append_many(con, [
                    dict(request_id=rid, event="suppressed", layer="ingest", location=f"{src.name} {day}", rows_removed=n,
                         detail="late arrival for an erased subject: dropped at ingest and blanked in landing")
                    for rid, day, n in con.execute(
                        """select s.request_id, c._dt, count(distinct (s._file, s._line)) from _suppressed s
                           join _checked c using (_file, _line) group by all order by 1, 2""").fetchall()])
                suppressed = dict(con.execute(
                    """select c._dt, count(distinct (s._file, s._line)) from _suppressed s
                       join _checked c using (_file, _line) group by all""").fetchall())
                blank: dict[str, set[int]] = {}
                for f, line in con.execute("select distinct _file, _line from _suppressed").fetchall():
                    blank.setdefault(f, set()).add(int(line))
                forget_suppressed_identifiers(con, src)
                con.execute("delete from _checked where (_file, _line) in (select _file, _line from _suppressed)")
                rewrite_lines(Path(landing), blank)
        con.execute(f"delete from {src.raw_table} where list_contains(cast($days as date[]), _dt)", batch)
        con.execute(
            f"insert into {src.raw_table} select _dt, _file, _line, {cols}, $now from _checked where reason is null",
            {"now": now},
        )
        con.execute("delete from text_mentions where source = $s and list_contains(cast($days as date[]), _dt)", {"s": src.name, **batch})
        con.execute(
            """insert into text_mentions select distinct $s, c._dt, m._file, m._line, m.kind, m.v
               from _mentions m join _checked c on c._file = m._file and c._line = m._line and c.reason is null
               join id_map i on i.kind = m.kind and i.raw_value = m.v and i.error is null""",
            {"s": src.name},
        )
        con.execute("delete from quarantine where source = $s and list_contains(cast($days as date[]), _dt)", {"s": src.name, **batch})
        con.execute(
            """insert into quarantine select $s, _dt, _file, _line, reason, left(payload, $keep), $now
               from _checked where reason is not null""",
            {"s": src.name, "keep": PAYLOAD_KEEP, "now": now},
        )
        counts = {d: (n, ok, bad) for d, n, ok, bad in con.execute(
            """select _dt, count(*), count(*) filter (where reason is null), count(*) filter (where reason is not null)
               from _checked group by 1""").fetchall()}
        n_files = {d: sum(1 for fd, _ in files if fd == d) for d in replaced}
        results = []
        for day in days:
            if day in kept:
                results.append(IngestResult(src.name, day.isoformat(), 0, 0, kept[day], 0))
                continue
            read, loaded, bad = counts.get(day, (0, 0, 0))
            sup = suppressed.get(day, 0)
            results.append(IngestResult(src.name, day.isoformat(), n_files[day], read + sup, loaded, bad, sup))
        con.execute("delete from ingest_log where source = $s and list_contains(cast($days as date[]), _dt)", {"s": src.name, **batch})
        for day, r in zip(days, results):
            if day not in kept:
                con.execute(
                    "insert into ingest_log values ($s, $day, $files, $read, $loaded, $bad, $sup, $now)",
                    {"s": src.name, "day": day, "files": r.files, "read": r.rows_read,
                     "loaded": r.rows_loaded, "bad": r.rows_quarantined, "sup": r.rows_suppressed, "now": now},
                )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    for t in ("_lines", "_cand", "_checked", "_mentions"):
        con.execute(f"drop table if exists {t}")
    for r in results:
        log.info("ingested %s %s: %s", src.name, r.day,
                 {k: v for k, v in r.as_dict().items() if k not in ("source", "day")})
    return results
