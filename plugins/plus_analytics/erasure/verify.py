"""Verification: a request is ``verified`` only when a check of every layer, for every identifier form
and every pseudonym of the subject under the active key, finds nothing:

* restricted zone: rows whose identifier columns hold a form, free-text and quarantined lines that
  contain one (Aho-Corasick, in bounded batches);
* staging: rows carrying a pseudonym of the subject, and rows of any other key version;
* marts: the published build was made from staging at or after the request was restaged;
* bytes: every file under the data directory (DuckDB files, landing, reports, task logs, the
  embedded Airflow metadata DB) scanned for every written, normalized and JSON-escaped form.

A request whose identifier was found nowhere, and whose checks all find nothing, is ``no_data`` (the
DPO's answer: we hold nothing about you), never ``verified`` by default; a request any check finds
something for is ``failed``: the next run propagates it again from resolution (whatever was missed or
arrived since is selected, removed and rewritten) and verifies again, until it passes. The sealed forms are
destroyed once a request passes.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import pandas as pd

from plus_analytics.context import Context
from plus_analytics.erasure import requests
from plus_analytics.ledger import evidence
from plus_analytics.policy import Source
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import sql_string, tables, transaction, with_frame
from plus_analytics.storage.files import files_under, scan_bytes
from plus_analytics.storage.sql import q

log = logging.getLogger(__name__)
SQL = requests.SQL
MIN_FORM_BYTES = 6
VERIFY_BATCH_ROWS = 100_000


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


def needles(forms: set[str]) -> set[bytes]:
    """Byte patterns of written forms: as UTF-8 and as JSON escapes them."""
    out = set()
    for form in forms:
        out |= {form.encode("utf-8"), json.dumps(form)[1:-1].encode("utf-8")}
    return {n for n in out if len(n) >= MIN_FORM_BYTES}


def _restricted_rows(con, sources: list[Source], by_request: dict[str, set[str]]) -> dict[str, int]:
    rows = [(rid, f) for rid, fs in by_request.items() for f in fs]
    forms = [f for _, f in rows]
    with_frame(con, "_forms_frame", pd.DataFrame(rows, columns=["request_id", "form"], dtype=object),
               sqlf.named(SQL, "forms_table"))
    out: dict[str, int] = defaultdict(int)

    def free_text(sql: str) -> None:  # rows whose text contains a form, counted once per request
        cur, offset = con.execute(sql), 0
        while batch := cur.fetchmany(VERIFY_BATCH_ROWS):  # bounded memory: millions of messages at scale
            for rid, _ in {(rows[j][0], offset + i) for i, j in text_hits([r[0] for r in batch], forms)}:
                out[rid] += 1
            offset += len(batch)

    for src in sources:
        for c in src.identifier_columns:
            for rid, n in sqlf.run(con, SQL, "identifier_rows_left", table=src.raw_table, column=q(c.name)).fetchall():
                out[rid] += n
        for c in src.free_text_columns:
            free_text(f"select {q(c.name)} from lake.{src.raw_table} where {q(c.name)} is not null")
    free_text(sqlf.named(SQL, "quarantine_payload_texts"))
    return out


def _staging_rows(con, sources: list[Source], key: MasterKey) -> tuple[dict[str, int], int]:
    out: dict[str, int] = defaultdict(int)
    other_versions = 0
    present = tables(con, "stg")
    for src in sources:
        if src.staging_table not in present:
            continue
        for c in src.columns:
            if c.rule == "pseudonymize":
                for rid, n in sqlf.run(con, SQL, "staging_rows_left", table=src.staging_table, column=q(c.pid_name),
                                       kind=sql_string(c.kind)).fetchall():
                    out[rid] += n
        other_versions += sqlf.run(con, SQL, "staging_other_versions", {"version": key.version},
                                   table=src.staging_table).fetchone()[0]
    return out, other_versions


def _bytes(home: Path, skip: tuple[Path, ...], by_request: dict[str, set[str]]) -> tuple[dict[str, int], int, dict[str, int]]:
    pats, owner = [], []
    for rid, fs in by_request.items():
        for n in needles(fs):
            pats.append(n)
            owner.append(rid)
    files = files_under(home, skip)
    found = scan_bytes(files, pats)
    per_request: dict[str, int] = defaultdict(int)
    for f, idx in found.items():
        for rid in {owner[i] for i in idx}:
            per_request[rid] += 1
            log.error("erasure verification: a form of an identifier of %s is still in %s", rid, f)
    return per_request, len(files), {rid: owner.count(rid) for rid in by_request}


def verify(con, ctx: Context, sources: list[Source], ids: list[str], published_version: int) -> dict:
    """Check ``ids``; ``con`` is the ledger (read-write) with the restricted zone attached as ``raw`` and
    staging as ``stg`` (read-only). Records the evidence and the outcome of each request. Every byte under the
    data directory is scanned, but its secrets (the keys of the embedded default, which hold no data)."""
    key = ctx.key
    subjects = requests.subjects(con, key, ctx.tomb, ids)
    requests.load_subjects_table(con, subjects)
    by_request: dict[str, set[str]] = {rid: set() for rid in ids}
    for s in subjects:
        by_request[s.request_id] |= {f for f in (s.normalized, *s.forms) if f and len(f.encode()) >= MIN_FORM_BYTES}
    empty = [rid for rid, fs in by_request.items() if not fs]
    if empty:
        raise RuntimeError(f"verification of {empty} would search for nothing (no identifier form recorded): refusing "
                           f"to report them as erased")
    rows = _restricted_rows(con, sources, by_request)
    staged, other_versions = _staging_rows(con, sources, key)
    files, scanned, patterns = _bytes(ctx.paths.home, (ctx.paths.secrets,), by_request)
    params = {"ids": ids}
    found = dict(sqlf.run(con, SQL, "found_at_resolution", params).fetchall())
    restaged = dict(sqlf.run(con, SQL, "restaged_versions", params).fetchall())
    outcome, records = {}, []
    for rid in ids:
        stale = int(restaged.get(rid) is None or published_version < restaged[rid])
        checks = {"rows": rows.get(rid, 0), "staging": staged.get(rid, 0) + other_versions, "marts": stale,
                  "bytes": files.get(rid, 0)}
        outcome[rid] = "failed" if any(checks.values()) else ("verified" if found.get(rid) else "no_data")
        records += [
            dict(request_id=rid, event="verified_rows", layer="restricted", location="raw tables, free text, quarantine",
                 check_result=checks["rows"], detail="rows still holding a form of the subject's identifiers"),
            dict(request_id=rid, event="verified_staging", layer="staging", location="stg tables",
                 check_result=checks["staging"], detail=f"rows holding a pseudonym of the subject (key version "
                                                        f"{key.version}) or of another key version"),
            dict(request_id=rid, event="verified_marts", layer="marts", location="analytics.duckdb",
                 check_result=stale, detail=f"published build made from staging version {published_version}; "
                                            f"the subject left staging at version {restaged.get(rid)}"),
            dict(request_id=rid, event="verified_bytes", layer="all", location="data directory",
                 check_result=checks["bytes"], detail=f"files containing any form of the subject's identifiers "
                                                       f"({patterns[rid]} byte patterns, {scanned} files scanned)"),
            dict(request_id=rid, event=outcome[rid], layer="all", detail="every check found nothing" if outcome[rid] != "failed"
                 else "something of the subject remains: see the checks above; the next run carries the request out again and re-verifies")]
    _record(con, ids, outcome, records, ctx.run_id)
    return {"requests": len(ids), **{s: sum(1 for o in outcome.values() if o == s) for s in ("verified", "no_data", "failed")}}


def _record(con, ids: list[str], outcome: dict[str, str], records: list[dict], run_id: str | None) -> None:
    done = [rid for rid in ids if outcome[rid] != "failed"]
    with transaction(con):
        evidence.append_many(con, records)
        for status in ("verified", "no_data", "failed"):
            mine = [rid for rid in ids if outcome[rid] == status]
            stamps = {"verified_at": requests.now()} if status != "failed" else {}
            requests.advance(con, mine, status, run_id, **stamps)
        if done:
            sqlf.run(con, SQL, "forget_sealed", {"ids": done})
            for table in ("erasure_rows", "erasure_redactions", "erasure_quarantine", "erasure_selected_over"):
                sqlf.run(con, SQL, "forget_selection", {"ids": done}, table=table)
