"""Resolution: a request's identifier expanded to every linked identifier of its subject, to a fixpoint,
through the columns the policy declares as a row's ``subject`` (an email finds the CRM customer, whose
LINE id finds the chats; an account finds its sessions and cookies, a cookie its ad interactions and
consent). A business account that merely *owns* someone else's record is not that record's subject.

Every identifier found is recorded in the ledger with its pseudonym, its blind index (so late arrivals
of any of them are suppressed) and its forms sealed (so verification can look for their bytes later).
"""

from __future__ import annotations

from plus_analytics.context import Context
from plus_analytics.erasure import requests
from plus_analytics.erasure.seal import seal
from plus_analytics.ledger import evidence
from plus_analytics.policy import Source
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import insert_rows, sql_string, transaction, update_rows
from plus_analytics.storage.sql import q

SQL = requests.SQL


def written_values(con, of: str = "subjects") -> set[str]:
    """``_<of>_values`` (request_id, kind, raw_value): the identifiers of the scratch table ``_<of>`` as the
    data writes them; returns their kinds."""
    return {r[0] for r in sqlf.run(con, SQL, "written_values", of=of).fetchall()}


def _with_kinds(src: Source, columns) -> list[tuple[str, str]]:
    """(quoted column, its identifier kind as a SQL literal) for the SQL templates that take them."""
    return [(q(c), sql_string(src.column(c).kind)) for c in columns]


def hits_sql(src: Source, columns, among: str = "subjects_values", fields=()) -> str:
    """(request_id, _file, _line, then ``fields`` and ``columns``) of the rows of ``src`` whose ``columns``
    hold an identifier of the scratch table ``_<among>`` (see :func:`written_values`), in one pass over its
    table."""
    return sqlf.named(SQL, "hits", table=src.raw_table, among=among, fields=[q(c) for c in dict.fromkeys([*fields, *columns])],
                      columns=_with_kinds(src, columns))


def expand(con, sources: list[Source]) -> int:
    """Grow ``_subjects`` to a fixpoint through the subject columns of every source; returns the rounds.

    Semi-naive: a round reads only the rows holding an identifier found in the round before (the
    frontier; at first the ones given), through the subject columns of the frontier's kinds only, each
    table once; a row holding none of them was read in an earlier round and gave everything it links
    then. It ends when a round finds nothing new, however long the chain (each round adds identifiers of
    a finite set)."""
    sqlf.run(con, SQL, "frontier_table")
    rounds = 0
    while True:
        rounds += 1
        kinds = written_values(con, "frontier")
        for src in sources:
            found_by = [c for c in src.subject if src.column(c).kind in kinds]
            if found_by:
                sqlf.run(con, SQL, "linked", hits=hits_sql(src, found_by, "frontier_values", src.subject),
                         columns=_with_kinds(src, src.subject))
        if not sqlf.run(con, SQL, "next_round").fetchone()[0]:
            return rounds


def resolve(con, ctx: Context, sources: list[Source], ids: list[str]) -> dict:
    """Resolve the pending requests ``ids``; ``con`` is the ledger (read-write) with the restricted zone
    attached read-only as ``raw``. One ledger transaction: the linked identifiers, sealed, and the step."""
    key, tomb_key = ctx.key, ctx.tomb
    seeds = requests.subjects(con, key, tomb_key, ids)
    requests.load_subjects_table(con, seeds)
    expand(con, sources)
    seed = {(s.request_id, s.kind, s.pseudonym): s for s in seeds}
    new, resealed, linked = [], [], dict.fromkeys(ids, 0)
    for rid, kind, pseudonym, normalized, written in sqlf.run(con, SQL, "forms").fetchall():
        linked[rid] += 1
        if normalized is None:
            continue
        given = seed.get((rid, kind, pseudonym))
        forms = [normalized, *written, *(w.strip() for w in written), *(given.forms if given else ())]
        sealed = seal(tomb_key, rid, kind, normalized, forms)
        if given:  # the identifier given at intake: its forms as written in the data join the ones typed
            resealed.append((sealed, key.version, pseudonym, rid, kind, given.blind))
        else:
            new.append((rid, kind, pseudonym, key.version, tomb_key.pseudonym(kind, normalized), sealed))
    with transaction(con):
        insert_rows(con, "ledger.tombstone_subjects", new)
        update_rows(con, sqlf.named(SQL, "reseal_subject"), resealed,
                    ["sealed", "key_version", "pseudonym", "request_id", "kind", "blind"])
        evidence.append_many(con, [dict(request_id=rid, event="resolved", layer="restricted", location="id_map",
                                        check_result=n, detail="identifiers of the subject found in the restricted zone "
                                                               "(the one given included)") for rid, n in linked.items()])
        requests.advance(con, ids, "resolved", ctx.run_id)
    return {"requests": len(ids), "identifiers_found": sum(linked.values())}
