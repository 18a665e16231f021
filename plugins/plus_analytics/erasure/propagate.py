"""Propagate deletion requests through every layer, erase physically, verify, record evidence.

One call handles every pending request as a batch, set-wise: each affected table costs one pass
whatever the number of requests. Steps:

1. **Resolve**: expand each request to every linked identifier of its subject, to a fixpoint, through
   the ``subject`` columns the policy declares (an email finds a CRM customer, whose LINE id finds the
   chats; an account finds its sessions and cookies, a cookie its ad interactions and consent).
2. **Select**: rows about the subject (any subject column), rows that belong to them (messages of
   their conversations), rows of anyone's free text that mention them, quarantined lines containing
   them. Rows that merely *reference* them in a non-subject column (a CRM customer owned by their
   account) are not deleted: that column is redacted to ``erased``.
3. **Remove**: landing files (the line blanked, so every other row's line number stays valid, or the
   field redacted), raw tables, quarantine, mentions, identifier maps; staging follows in one
   transaction (rows whose source row is gone are deleted, redacted rows restaged), and the marts are
   rebuilt, gated and published.
4. **Erase physically**: DuckDB leaves deleted strings in freed blocks, so the restricted and staging
   files are rewritten (``COPY FROM DATABASE`` into a fresh file, then an atomic replace); build files
   left over from earlier runs are deleted.
5. **Verify**: SQL (rows still carrying the subject's identifiers: must be 0) and bytes (every file
   under the data directory scanned for every written and normalized form of every identifier of the
   subject, Aho-Corasick over raw bytes: must be 0).
6. **Evidence**: per request and table, in the hash-chained log; status pending -> propagated -> verified.

The subject's raw forms exist only in this process's memory while it runs (never in XCom, logs or
evidence), which is why this is one task.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path

from plus_analytics import db
from plus_analytics.config import Paths
from plus_analytics.erasure import evidence
from plus_analytics.erasure.intake import register_tombstone_key
from plus_analytics.policy import REDACTED, Source, load_policy
from plus_analytics.privacy import identifiers
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.sqlfiles import q as _q

log = logging.getLogger(__name__)
MIN_FORM_BYTES = 6
VERIFY_BATCH_ROWS = 100_000
MAX_RESOLVE_ROUNDS = 8




def _hits_sql(src: Source, cols) -> str:
    """(request_id, _file, _line) of rows of ``src`` whose ``cols`` hold a subject identifier."""
    return " union ".join(
        f"""select s.request_id, r._file, r._line from {src.raw_table} r
            join id_map m on m.kind = '{src.column(c).kind}' and m.raw_value = r.{_q(c)}
            join _subjects s on s.kind = m.kind and s.pseudonym = m.pseudonym"""
        for c in cols
    )


def resolve(con, sources: list[Source]) -> int:
    """Expand ``_subjects`` to a fixpoint through the subject columns of every source."""
    for _ in range(MAX_RESOLVE_ROUNDS):
        before = con.execute("select count(*) from _subjects").fetchone()[0]
        for src in sources:
            if not src.subject:
                continue
            linked = " union ".join(
                f"""select h.request_id, '{src.column(c).kind}' as kind, m.pseudonym
                    from hits h join {src.raw_table} r on r._file = h._file and r._line = h._line
                    join id_map m on m.kind = '{src.column(c).kind}' and m.raw_value = r.{_q(c)}
                    where m.pseudonym is not null"""
                for c in src.subject
            )
            con.execute(f"""insert into _subjects
                            with hits as ({_hits_sql(src, src.subject)})
                            select distinct l.request_id, l.kind, l.pseudonym from ({linked}) l
                            anti join _subjects s on s.request_id = l.request_id and s.kind = l.kind and s.pseudonym = l.pseudonym""")
        if con.execute("select count(*) from _subjects").fetchone()[0] == before:
            return before
    return con.execute("select count(*) from _subjects").fetchone()[0]


def _select_rows(con, sources: list[Source]) -> None:
    con.execute("create or replace temp table _erase_rows (source varchar, _file varchar, _line bigint, request_id varchar, why varchar)")
    con.execute("create or replace temp table _redact (source varchar, _file varchar, _line bigint, col varchar, request_id varchar)")
    for src in sources:
        if src.subject:
            con.execute(f"insert into _erase_rows select distinct '{src.name}', _file, _line, request_id, 'subject' from ({_hits_sql(src, src.subject)})")
    for src in sources:  # rows that belong to an erased parent row (messages of erased conversations)
        if src.parent:
            parent = next(s for s in sources if s.name == src.parent["source"])
            k = _q(src.parent["key"])
            con.execute(f"""insert into _erase_rows
                select distinct '{src.name}', c._file, c._line, e.request_id, 'belongs to an erased {parent.name} row'
                from {src.raw_table} c join {parent.raw_table} p on p.{k} = c.{k}
                join _erase_rows e on e.source = '{parent.name}' and e._file = p._file and e._line = p._line""")
    con.execute("""insert into _erase_rows
        select distinct tm.source, tm._file, tm._line, s.request_id, 'mentions the subject in free text'
        from text_mentions tm join id_map m on m.kind = tm.kind and m.raw_value = tm.raw_value
        join _subjects s on s.kind = m.kind and s.pseudonym = m.pseudonym""")
    for src in sources:  # non-subject identifier columns that reference the subject: redact, keep the row
        for c in src.identifier_columns:
            if c.name in src.subject or c.rule == "drop":
                continue
            con.execute(f"""insert into _redact
                select distinct '{src.name}', h._file, h._line, '{c.name}', h.request_id from ({_hits_sql(src, [c.name])}) h
                anti join _erase_rows e on e.source = '{src.name}' and e._file = h._file and e._line = h._line""")


def _collect_forms(con) -> list[tuple[str, str]]:
    """(request_id, form) for every written and normalized form of every subject identifier. Memory only."""
    rows = con.execute("""select distinct request_id, form from (
            select s.request_id, unnest([m.raw_value, trim(m.raw_value), m.normalized]) as form
            from _subjects s join id_map m on m.kind = s.kind and m.pseudonym = s.pseudonym)
        where form is not null and strlen(form) >= $n""", {"n": MIN_FORM_BYTES}).fetchall()
    return [(r, f) for r, f in rows]


def text_hits(texts, forms: list[str]) -> list[tuple[int, int]]:
    """(text index, form index) for every text that contains a form, case-insensitively: Aho-Corasick,
    one pass over the texts whatever the number of forms (a SQL ``contains`` join compares every text
    with every form). A first pass over all the texts at once answers the usual case, no hit at all."""
    from ahocorasick_rs import AhoCorasick

    if not forms or not len(texts):
        return []
    ac = AhoCorasick([f.lower() for f in forms])
    lowered = [t.lower() if isinstance(t, str) else "" for t in texts]
    if not ac.find_matches_as_indexes("\x00".join(lowered)):
        return []
    return sorted({(i, m[0]) for i, t in enumerate(lowered) if t for m in ac.find_matches_as_indexes(t, overlapping=True)})


def _quarantine_hits(con, forms: list[tuple[str, str]]) -> None:
    import pandas as pd

    rows = con.execute("select source, _dt, _file, _line, payload from quarantine").fetchall()
    hits = {(*rows[i][:4], forms[j][0]) for i, j in text_hits([r[4] for r in rows], [f for _, f in forms])}
    frame = pd.DataFrame(sorted(hits), columns=["source", "_dt", "_file", "_line", "request_id"], dtype=object)
    db.with_frame(con, "_quarantine_hit_rows", frame, """create or replace temp table _erase_quarantine as
        select cast(source as varchar) as source, cast(_dt as date) as _dt, cast(_file as varchar) as _file,
               cast(_line as bigint) as _line, cast(request_id as varchar) as request_id from _quarantine_hit_rows""")


# --------------------------------------------------------------------------------------------- landing

def _rewrite_landing(con, landing: Path) -> dict[str, int]:
    """Blank erased lines and redact referencing fields in the landing files. Returns lines per file."""
    blank: dict[str, set[int]] = defaultdict(set)
    for f, line in con.execute("select _file, _line from _erase_rows union select _file, _line from _erase_quarantine").fetchall():
        blank[f].add(int(line))
    redact: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for src_name, f, line, col in con.execute("select source, _file, _line, col from _redact").fetchall():
        redact[f][int(line)].add(col)
    return rewrite_lines(landing, blank, redact)


def rewrite_lines(landing: Path, blank: dict[str, set[int]], redact: dict | None = None) -> dict[str, int]:
    """Blank whole lines (line numbers of every other row stay valid) and redact single fields."""
    redact = redact or {}
    changed = {}
    for f in sorted(set(blank) | set(redact)):
        path = Path(landing) / f
        if not path.exists():
            continue
        lines = path.read_bytes().split(b"\n")
        header = None
        if path.suffix == ".csv" and lines:
            header = next(csv.reader([lines[0].decode("utf-8", "replace")]))
        n = 0
        for line_no, cols in redact.get(f, {}).items():
            if line_no in blank.get(f, ()):
                continue
            i = line_no - 1
            text = lines[i].decode("utf-8")
            if header is None:
                obj = json.loads(text)
                for c in cols:
                    obj[c] = REDACTED
                text = json.dumps(obj, ensure_ascii=False)
            else:
                fields = next(csv.reader([text]))
                for c in cols:
                    fields[header.index(c)] = REDACTED
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow(fields)
                text = buf.getvalue()
            lines[i] = text.encode("utf-8")
            n += 1
        for line_no in blank.get(f, ()):
            if 0 < line_no <= len(lines):
                lines[line_no - 1] = b""
                n += 1
        tmp = path.with_name(path.name + ".erasing")
        with open(tmp, "wb") as fh:
            fh.write(b"\n".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        changed[f] = n
    return changed


# ------------------------------------------------------------------------------------------ restricted

def _remove_restricted(con, sources: list[Source]) -> dict[tuple[str, str], int]:
    """Delete/redact in the restricted zone; returns rows removed per (request, table)."""
    removed: dict[tuple[str, str], int] = {}
    for rid, source, n in con.execute("select request_id, source, count(*) from _erase_rows group by all").fetchall():
        removed[(rid, f"raw_{source}")] = n
    for rid, n in con.execute("select request_id, count(*) from _erase_quarantine group by all").fetchall():
        removed[(rid, "quarantine")] = n
    for rid, source, n in con.execute("select request_id, source, count(*) from _redact group by all").fetchall():
        removed[(rid, f"raw_{source} (redacted references)")] = n
    for src in sources:
        con.execute(f"delete from {src.raw_table} where (_file, _line) in (select _file, _line from _erase_rows where source = '{src.name}')")
        for (col,) in con.execute("select distinct col from _redact where source = ?", [src.name]).fetchall():
            con.execute(f"""update {src.raw_table} set {_q(col)} = '{REDACTED}'
                            where (_file, _line) in (select _file, _line from _redact where source = '{src.name}' and col = '{col}')""")
    con.execute("delete from quarantine where (_file, _line) in (select _file, _line from _erase_quarantine)")
    con.execute("delete from text_mentions where (_file, _line) in (select _file, _line from _erase_rows)")
    # The subject's identifiers leave both maps; then every identifier no row refers to any more (an IP
    # only the subject used, say) is garbage-collected.
    con.execute("delete from id_map where (kind, pseudonym) in (select kind, pseudonym from _subjects)")
    con.execute("delete from pseudonyms where (kind, pseudonym) in (select kind, pseudonym from _subjects)")
    collect_orphans(con, sources)
    return removed


def collect_orphans(con, sources: list[Source]) -> None:
    refs = " union ".join(
        f"select '{c.kind}' as kind, {_q(c.name)} as v from {s.raw_table}" for s in sources for c in s.identifier_columns
    ) + " union select kind, raw_value from text_mentions"
    con.execute(f"create or replace temp table _refs as select distinct kind, v from ({refs}) where v is not null")
    con.execute("delete from id_map where (kind, raw_value) not in (select kind, v from _refs) and kind <> 'ip_prefix'")
    con.execute("""delete from pseudonyms where kind <> 'ip_prefix' and (kind, normalized) not in
                   (select kind, normalized from id_map where normalized is not null)""")
    con.execute("""delete from pseudonyms where kind = 'ip_prefix' and normalized not in
                   (select prefix from id_map where kind = 'ip' and prefix is not null)""")


# ---------------------------------------------------------------------------------------------- physical

def rewrite_database(path: Path) -> int:
    """Copy the live data of a DuckDB file into a fresh file and swap it in: the freed blocks that still
    hold deleted strings are gone with the old file. Returns the new size in bytes."""
    if not path.exists():
        return 0
    fresh = path.with_name(path.name + ".rewrite")
    for p in (fresh, Path(str(fresh) + ".wal")):
        p.unlink(missing_ok=True)
    con = db.connect(":memory:")
    try:
        con.execute(f"attach '{path}' as old (read_only)")
        con.execute(f"attach '{fresh}' as new")
        con.execute("copy from database old to new")
        con.execute("detach new")
        con.execute("detach old")
    finally:
        con.close()
    with open(fresh, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(fresh, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    return path.stat().st_size


def _compact_airflow_sqlite(paths: Paths) -> None:
    """The demo's Airflow metadata DB lives under the data directory: vacuum it with secure_delete and
    truncate its WAL, so no freed page keeps an old value (a production Postgres has its own VACUUM)."""
    from plus_analytics.metadata_db import truncate_sqlite_wal

    meta = paths.airflow_home / "airflow.db"
    if meta.exists():
        truncate_sqlite_wal(str(meta), vacuum=True)


SCAN_CHUNK = 64 * 2**20


def _scan_file(ac, path: Path, overlap: int) -> set[int]:
    """Needle indexes found in one file, read in chunks (a database file can be larger than memory
    should hold); consecutive chunks overlap by the longest needle less one byte, so nothing straddling
    a boundary is missed."""
    hits: set[int] = set()
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(SCAN_CHUNK):
            data = tail + chunk
            hits.update(m[0] for m in ac.find_matches_as_indexes(data, overlapping=True))
            tail = data[-overlap:] if overlap else b""
    return hits


def scan_bytes(root: Path, needles: list[bytes], skip: tuple[Path, ...] = ()) -> dict[str, list[int]]:
    """{file: [needle indexes found]} for every file under ``root`` (Aho-Corasick over raw bytes, on
    every core: the matcher releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from ahocorasick_rs import BytesAhoCorasick

    if not needles:
        return {}
    ac = BytesAhoCorasick(needles)
    overlap = max(map(len, needles)) - 1
    paths = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not (any(p.is_relative_to(s) for s in skip) or p.is_symlink()):
                paths.append(p)

    def scan(p: Path) -> tuple[str, set[int]]:
        try:
            return str(p), _scan_file(ac, p, overlap)
        except OSError:
            return str(p), set()

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return {f: sorted(h) for f, h in pool.map(scan, paths) if h}


def _needle_variants(form: str) -> set[bytes]:
    out = {form.encode("utf-8"), json.dumps(form)[1:-1].encode("utf-8")}
    return {n for n in out if len(n) >= MIN_FORM_BYTES}


# ----------------------------------------------------------------------------------------------- driver

def erase_pending(paths: Paths, key: MasterKey, tomb_key: MasterKey, k: int) -> dict:
    """Propagate, erase and verify every pending request."""
    from plus_analytics.gate.run import run_gate
    from plus_analytics.marts.build import build_marts, publish
    from plus_analytics.privacy.staging import restage_after_erasure

    t0 = time.perf_counter()
    sources = list(load_policy().values())
    con = db.connect(paths.raw_db)
    try:
        identifiers.ensure_schema(con)
        identifiers.register_key(con, key)
        register_tombstone_key(con, tomb_key)
        pending = [r[0] for r in con.execute(
            "select request_id from tombstones where status in ('pending', 'propagated') order by received_at").fetchall()]
        if not pending:
            return {"requests": 0}
        present = db.tables(con)
        sources = [s for s in sources if s.raw_table in present]
        con.execute("""create or replace temp table _subjects as
                       select distinct request_id, kind, pseudonym from tombstone_subjects
                       where pseudonym is not null and request_id in (select unnest($r))""", {"r": pending})
        n_subject_ids = resolve(con, sources)
        # Blind index of every linked identifier, so late arrivals of any of them are suppressed.
        con.execute("""insert into tombstone_subjects
            select s.request_id, s.kind, s.pseudonym, $v, plus_pid(t.ipad, t.opad, p.normalized)
            from _subjects s join pseudonyms p on p.kind = s.kind and p.pseudonym = s.pseudonym
            join _tomb_key t on t.kind = s.kind
            anti join tombstone_subjects ts on ts.request_id = s.request_id and ts.kind = s.kind and ts.pseudonym = s.pseudonym""",
                    {"v": key.version})
        forms = _collect_forms(con)
        _select_rows(con, sources)
        _quarantine_hits(con, forms)
        changed: dict[str, list[tuple[str, int]]] = {r[0]: [] for r in con.execute(
            "select distinct source from _erase_rows union select distinct source from _redact").fetchall()}
        for name, f, line in con.execute("select distinct source, _file, _line from _redact order by all").fetchall():
            changed[name].append((f, line))
        t_resolve = time.perf_counter()
        landing_changed = _rewrite_landing(con, paths.landing)
        con.execute("begin transaction")
        removed = _remove_restricted(con, sources)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        records = [dict(request_id=rid, event="removed", layer="restricted", location=table, rows_removed=n)
                   for (rid, table), n in sorted(removed.items())]
        landing_counts = {rid: (files, lines) for rid, files, lines in con.execute(
            """select request_id, count(distinct _file), count(*) from (
                   select request_id, _file, _line from _erase_rows union
                   select request_id, _file, _line from _erase_quarantine union
                   select request_id, _file, _line from _redact) group by 1""").fetchall()}
        for rid in pending:
            files, lines = landing_counts.get(rid, (0, 0))
            records.append(dict(request_id=rid, event="removed", layer="landing", location=f"{files} files",
                                rows_removed=lines, detail="lines blanked or references redacted"))
        evidence.append_many(con, records)
        con.execute("update tombstones set status = 'propagated', propagated_at = $now where request_id in (select unnest($r))",
                    {"now": now, "r": pending})
        con.execute("commit")
        con.execute("checkpoint")
    finally:
        con.close()

    # Staging follows what is left (the rows erased or redacted, nothing else), and the marts are rebuilt:
    # the aggregates the subject contributed to change.
    with db.opened(paths.staging_db) as scon:
        db.attach(scon, paths.raw_db, "raw", read_only=True)
        restage_after_erasure(scon, sources, key, changed)
    t_stage = time.perf_counter()
    for stale in paths.builds.glob("build-*.duckdb*"):  # earlier builds are copies too
        stale.unlink()
    b = build_marts(paths, k)
    run_gate(b.path, paths, b.build_id)
    publish(b.path, paths.analytics_db)
    t_marts = time.perf_counter()

    sizes = {str(p): rewrite_database(p) for p in (paths.raw_db, paths.staging_db)}
    _compact_airflow_sqlite(paths)
    t_rewrite = time.perf_counter()

    # Verification: rows, then bytes.
    result = _verify(paths, pending, forms)
    t_verify = time.perf_counter()
    con = db.connect(paths.raw_db)
    try:
        con.execute("begin transaction")
        records = []
        for rid in pending:
            r = result[rid]
            records.append(dict(request_id=rid, event="verified_rows", layer="all", location="restricted, staging",
                                check_result=r["rows"], detail="rows still holding the subject's identifiers"))
            records.append(dict(request_id=rid, event="verified_bytes", layer="all", location=str(paths.home),
                                check_result=r["files"], detail=f"files containing any form of the subject's identifiers "
                                                                f"({r['needles']} byte patterns, {r['files_scanned']} files scanned)"))
        evidence.append_many(con, records)
        verified = [rid for rid in pending if result[rid]["rows"] == 0 and result[rid]["files"] == 0]
        con.execute("update tombstones set status = 'verified', verified_at = $now where request_id in (select unnest($r))",
                    {"now": dt.datetime.now(dt.UTC).replace(tzinfo=None), "r": verified})
        con.execute("commit")
    finally:
        con.close()
    rewrite_database(paths.raw_db)  # the evidence commit above must not leave anything in free blocks
    out = {
        "requests": len(pending), "subject_identifiers": n_subject_ids,
        "verified": sum(1 for r in result.values() if r["rows"] == 0 and r["files"] == 0),
        "landing_files_rewritten": len(landing_changed),
        "seconds": {"resolve_select": round(t_resolve - t0, 2), "remove_restage": round(t_stage - t_resolve, 2),
                    "marts": round(t_marts - t_stage, 2), "rewrite_files": round(t_rewrite - t_marts, 2),
                    "verify": round(t_verify - t_rewrite, 2), "total": round(time.perf_counter() - t0, 2)},
        "database_bytes": sizes,
    }
    log.info("erasure: %s", out)
    return out


def _verify(paths: Paths, pending: list[str], forms: list[tuple[str, str]]) -> dict:
    by_request: dict[str, set[str]] = defaultdict(set)
    for rid, form in forms:
        by_request[rid].add(form)
    needles: list[bytes] = []
    owner: list[str] = []
    for rid, fs in by_request.items():
        for f in fs:
            for n in _needle_variants(f):
                needles.append(n)
                owner.append(rid)
    found = scan_bytes(paths.home, needles, skip=(paths.secrets,))
    files_scanned = sum(len(files) for _, _, files in os.walk(paths.home))
    files_per_request: dict[str, int] = defaultdict(int)
    for f, idx in found.items():
        for rid in {owner[i] for i in idx}:
            files_per_request[rid] += 1
            log.error("erasure verification: a form of an identifier of %s is still in %s", rid, f)
    rows_per_request = _verify_rows(paths, by_request)
    return {rid: {"rows": rows_per_request.get(rid, 0), "files": files_per_request.get(rid, 0),
                  "needles": sum(1 for o in owner if o == rid), "files_scanned": files_scanned} for rid in pending}


def _verify_rows(paths: Paths, by_request: dict[str, set[str]]) -> dict[str, int]:
    """Rows in the restricted zone whose identifier or free-text columns hold a form of the subject's
    identifiers, and staging rows carrying the subject's pseudonyms."""
    out: dict[str, int] = defaultdict(int)
    con = db.connect(":memory:")
    try:
        db.attach(con, paths.raw_db, "raw")
        db.attach(con, paths.staging_db, "stg")
        import pandas as pd

        rows = [(rid, f) for rid, fs in by_request.items() for f in fs]
        forms = [f for _, f in rows]
        db.with_frame(con, "_forms_frame", pd.DataFrame(rows, columns=["request_id", "form"], dtype=object),
                      "create temp table _f as select cast(request_id as varchar) as request_id, "
                      "cast(form as varchar) as form from _forms_frame")

        def free_text(sql: str) -> None:  # rows whose text contains a form, counted once per request
            cur, offset = con.execute(sql), 0
            while batch := cur.fetchmany(VERIFY_BATCH_ROWS):  # bounded memory: millions of messages at scale
                for rid, _ in {(rows[j][0], offset + i) for i, j in text_hits([r[0] for r in batch], forms)}:
                    out[rid] += 1
                offset += len(batch)

        present = {r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = 'raw'").fetchall()}
        for src in load_policy().values():
            if src.raw_table not in present:
                continue
            for c in src.identifier_columns:
                for rid, n in con.execute(f"select f.request_id, count(*) from raw.{src.raw_table} r join _f f "
                                          f"on r.{_q(c.name)} = f.form group by 1").fetchall():
                    out[rid] += n
            for c in src.free_text_columns:
                free_text(f"select {_q(c.name)} as t from raw.{src.raw_table} where {_q(c.name)} is not null")
        free_text("select payload as t from raw.quarantine where payload is not null")
        stg = {r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = 'stg'").fetchall()}
        for src in load_policy().values():
            if src.staging_table not in stg:
                continue
            for c in src.columns:
                if c.rule != "pseudonymize":
                    continue
                for rid, n in con.execute(f"""select t.request_id, count(*) from stg.{src.staging_table} s
                        join raw.tombstone_subjects t on t.kind = '{c.kind}' and t.pseudonym = s.{_q(c.pid_name)}
                        group by 1""").fetchall():
                    out[rid] += n
    finally:
        con.close()
    return out
