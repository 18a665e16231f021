"""Removal, in two durable steps.

``select``: rows about the subject (any subject column), rows that belong to them (messages of their
conversations), anyone's free-text rows that mention them, quarantined lines containing them; and the
fields that merely *reference* them in a non-subject column (a CRM customer owned by their account),
to be redacted to ``erased``. The selection is recorded in the ledger (locations and machine keys only)
before anything is deleted.

``apply``: the recorded selection is carried out in the landing files (lines blanked, so every other
row's line number stays valid; fields redacted), then in the restricted zone (the days of the rows
rewritten in the sources' Delta tables, and of their quarantined lines and mentions in theirs, then the
identifier maps in one transaction), then recorded as done. Carrying out a selection twice
changes nothing the second time, so a run that dies anywhere is finished by the next.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from plus_analytics.context import Context
from plus_analytics.erasure import requests
from plus_analytics.erasure.resolve import hits_sql, written_values
from plus_analytics.ingest.landing import read_records, rewrite_lines
from plus_analytics.ingest.reading import PAYLOAD_KEEP
from plus_analytics.ingest.suppression import remember_erased_parents
from plus_analytics.ledger import evidence
from plus_analytics.policy import REDACTED, Source
from plus_analytics.privacy.identifiers import collect_orphans
from plus_analytics.privacy.staging import staging_key_sql
from plus_analytics.storage import lake
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import insert_rows, sql_string, tables, transaction, with_frame
from plus_analytics.storage.sql import q

SQL = requests.SQL


def _key_ctx(src: Source) -> dict:
    expr, joins = staging_key_sql(src)
    return {"staging_key": expr, "key_joins": " ".join(joins)}


def _select_rows(con, sources: list[Source]) -> None:
    """``_erase_rows``: every row to delete, with the key staging knows it by."""
    sqlf.run(con, SQL, "selection_tables")
    by_name = {s.name: s for s in sources}
    for src in sources:
        if src.subject:
            sqlf.run(con, SQL, "select_subject_rows", {"source": src.name}, hits=hits_sql(src, src.subject),
                     table=src.raw_table, **_key_ctx(src))
    for src in sources:
        if src.parent and src.parent["source"] in by_name:
            parent = by_name[src.parent["source"]]
            sqlf.run(con, SQL, "select_children", {"source": src.name, "parent": parent.name,
                                                   "why": f"belongs to an erased {parent.name} row"},
                     table=src.raw_table, parent_table=parent.raw_table, parent_key=q(src.parent["key"]), **_key_ctx(src))
    sqlf.run(con, SQL, "select_mentions")
    for src in sources:
        if src.free_text_columns:
            sqlf.run(con, SQL, "mention_staging_keys", {"source": src.name}, table=src.raw_table, **_key_ctx(src))


def _select_redactions(con, sources: list[Source]) -> list[tuple]:
    rows = []
    for src in sources:
        for c in src.reference_columns:
            rows += sqlf.run(con, SQL, "select_redactions", {"source": src.name, "column": c.name},
                             hits=hits_sql(src, [c.name])).fetchall()
    return rows


def _select_quarantine(con, subjects: list[requests.Subject], landing: Path) -> list[tuple]:
    """Quarantined lines containing any form of a subject identifier (Aho-Corasick over the payloads). The
    zone keeps only the first characters of a quarantined line: a longer one is read whole from landing."""
    from plus_analytics.erasure.verify import text_hits

    forms = [(s.request_id, f) for s in subjects for f in {s.normalized, *s.forms} if f and len(f.encode()) >= 6]
    payloads = sqlf.run(con, SQL, "quarantine_payloads").fetchall()
    cut: dict[str, set[int]] = defaultdict(set)
    for p in payloads:
        if p[4] is not None and len(p[4]) >= PAYLOAD_KEEP:
            cut[p[2]].add(int(p[3]))
    whole = read_records(landing, cut)
    texts = [whole.get((p[2], int(p[3])), p[4]) for p in payloads]
    hits = {(forms[j][0], *payloads[i][:4]) for i, j in text_hits(texts, [f for _, f in forms])}
    return sorted(hits)


def _record_selection(con, subjects: list[requests.Subject], sources: list[Source], landing: Path) -> dict:
    """Add to the ledger's selection of ``subjects``' requests whatever it does not hold yet, inside the
    caller's transaction (``con`` writes the ledger and reads the restricted zone). Returns how many rows,
    redactions and quarantined lines were added."""
    requests.load_subjects_table(con, subjects)
    written_values(con)
    _select_rows(con, sources)
    sqlf.run(con, SQL, "redactions_table")
    insert_rows(con, "_redactions", _select_redactions(con, sources))
    sqlf.run(con, SQL, "quarantine_table")
    insert_rows(con, "_quarantined", _select_quarantine(con, subjects, landing))
    return {what: sqlf.run(con, SQL, f"store_{what}").fetchone()[0] for what in ("rows", "redactions", "quarantined")}


def _ingest_state(con) -> str:
    """The query of the restricted zone's ingest log digest (a zone never ingested into has none)."""
    return sqlf.named(SQL, "ingest_state" if "ingest_log" in tables(con, "raw") else "no_ingest_state")


def select(con, ctx: Context, sources: list[Source], ids: list[str]) -> dict:
    """Record what ``apply`` will remove for the resolved requests ``ids``, and the step, in one ledger
    transaction; ``con`` has the ledger read-write and the restricted zone read-only."""
    with transaction(con):
        added = _record_selection(con, requests.subjects(con, ctx.key, ctx.tomb, ids), sources, ctx.paths.landing)
        sqlf.run(con, SQL, "forget_selected_over", {"ids": ids})
        sqlf.run(con, SQL, "record_selected_over", {"ids": ids}, ingest_state=_ingest_state(con))
        requests.advance(con, ids, "selected", ctx.run_id)
    return {"requests": len(ids), **added}


def _landing(con, landing: Path, ids: list[str]) -> dict[str, int]:
    blank: dict[str, set[int]] = defaultdict(set)
    for f, line in sqlf.run(con, SQL, "landing_lines", {"ids": ids}).fetchall():
        blank[f].add(int(line))
    redact: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for f, line, col in sqlf.run(con, SQL, "landing_redactions", {"ids": ids}).fetchall():
        redact[f][int(line)].add(col)
    return rewrite_lines(landing, blank, redact)


def _rows(con, src: Source, ids: list[str]) -> None:
    """The source's rows of the selection deleted and its references redacted: the days that hold any are
    rewritten in one pass (read, filtered, redacted and streamed into the commit), each source's in one
    commit to its Delta table; no other day is touched."""
    params = {"ids": ids, "source": src.name}
    days = [r[0] for r in sqlf.run(con, SQL, "touched_days", params, table=src.raw_table).fetchall()]
    if not days:
        return
    redacted = ", ".join(sqlf.named(SQL, "redacted_column", col=sql_string(c.name), column=q(c.name))
                         for c in src.identifier_columns)
    lake.replace_days(con, src.raw_table, days,
                      sqlf.named(SQL, "erased_rows", table=src.raw_table, replace=f"replace ({redacted})" if redacted else ""),
                      {**params, "days": sorted(days), **({"redacted": REDACTED} if redacted else {})})


def _lines(con, src: Source, table: str, selection: str, ids: list[str]) -> None:
    """The lines of the ledger's ``selection`` deleted from the source's ``table`` (its quarantined lines,
    its mentions): the days that hold any rewritten in one commit; no other day is touched."""
    if table not in lake.present(con):
        return
    params = {"ids": ids, "source": src.name}
    days = [r[0] for r in sqlf.run(con, SQL, "line_touched_days", params, table=table, selection=selection).fetchall()]
    if days:
        lake.replace_days(con, table, days, sqlf.named(SQL, "kept_lines", table=table, selection=selection),
                          {**params, "days": sorted(days)})


def _restricted(con, sources: list[Source], subjects: list[requests.Subject], ids: list[str], tomb_key) -> None:
    """In the restricted zone: the rows, quarantined lines and mentions (Delta commits, :func:`_rows`,
    :func:`_lines`), then the rest in one transaction of the restricted database. Each is idempotent, so a
    run that dies between them is finished by the next."""
    for src in sources:
        _rows(con, src, ids)
        _lines(con, src, src.quarantine_table, "erasure_quarantine", ids)
        _lines(con, src, src.mentions_table, "erasure_rows", ids)
    with transaction(con):
        remember_erased_parents(con, sources, tomb_key, ids)  # their children may still arrive
        pids = pd.DataFrame(sorted({(s.kind, s.pseudonym) for s in subjects}), columns=["kind", "pseudonym"], dtype=object)
        with_frame(con, "_subject_pid_frame", pids, sqlf.named(SQL, "subject_pids_table"))
        sqlf.run(con, SQL, "delete_subject_ids")
        sqlf.run(con, SQL, "delete_subject_pseudonyms")
        collect_orphans(con, sources)


def _record(con, ids: list[str], landing_changed: dict[str, int], run_id: str | None) -> None:
    """In the ledger: evidence per request and table."""
    params = {"ids": ids}
    records = []
    for rid, source, n in sqlf.run(con, SQL, "removed_per_table", params).fetchall():
        records.append(dict(request_id=rid, event="removed", layer="restricted", location=f"raw_{source}", rows_removed=n))
    for rid, n in sqlf.run(con, SQL, "quarantined_per_request", params).fetchall():
        records.append(dict(request_id=rid, event="removed", layer="restricted", location="quarantine", rows_removed=n))
    for rid, source, n in sqlf.run(con, SQL, "redacted_per_table", params).fetchall():
        records.append(dict(request_id=rid, event="removed", layer="restricted", location=f"raw_{source} (redacted references)",
                            rows_removed=n))
    landing = {rid: (files, lines) for rid, files, lines in sqlf.run(con, SQL, "landing_per_request", params).fetchall()}
    for rid in ids:
        files, lines = landing.get(rid, (0, 0))
        records.append(dict(request_id=rid, event="removed", layer="landing", location=f"{files} files",
                            rows_removed=lines, detail="lines blanked or references redacted"))
    with transaction(con):
        evidence.append_many(con, sorted(records, key=lambda r: (r["request_id"], r["layer"], r["location"])))
        requests.advance(con, ids, "removed", run_id, propagated_at=requests.now())


def apply(con, ctx: Context, sources: list[Source], ids: list[str]) -> dict:
    """Carry out the recorded selection of ``ids``: ``con`` has the restricted zone and the ledger
    read-write (each transaction below writes one of them). The caller marked the zone's file for
    rewriting."""
    landing = ctx.paths.landing
    subjects = requests.subjects(con, ctx.key, ctx.tomb, ids)
    # Rows of the subject an ingest loaded since the selection (the restricted zone's write lock, held
    # from here to the end, keeps any more from arriving): the selection grows to hold them too. Whether
    # anything was ingested since is told by the ingest log's content as the selection saw it, not by
    # clocks (an ingest on another machine may stamp an earlier time than the selection's).
    ingests = sqlf.run(con, SQL, "ingested_since_selection", {"ids": ids}, ingest_state=_ingest_state(con)).fetchone()[0]
    topped_up = {"ingested_since_selection": ingests, "rows": 0, "redactions": 0, "quarantined": 0}
    if ingests:
        with transaction(con):
            topped_up.update(_record_selection(con, subjects, sources, landing))
    changed = _landing(con, landing, ids)
    _restricted(con, sources, subjects, ids, ctx.tomb)
    _record(con, ids, changed, ctx.run_id)
    return {"requests": len(ids), "landing_files_rewritten": len(changed), "selection_topped_up": topped_up}
