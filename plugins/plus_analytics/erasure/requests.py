"""Deletion requests as a state machine with durable steps, in the privacy ledger.

A request's ``status`` is the last step done; ``erasure_steps`` records when each was done and by which
run. Every step of the ``plus_erasure`` DAG takes the requests waiting for it, does its work, and
advances them in the same ledger transaction that records its evidence. So whatever kills a run, the
next one resumes each request at the first step not done, and a request is never reported further
along than it is.

    pending -> resolved -> selected -> removed -> restaged -> published -> rewritten -> verified | no_data
       ^                                                                                 |
       +---------------------- failed (propagated again by the next run) <---------------+
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from plus_analytics.erasure.seal import unseal
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import insert_rows, transaction, update_rows

SQL = "erasure/erasure.sql"
#: The status a request has when each step may take it.
WAITING_FOR = {"resolve": ("pending", "failed"), "select": ("resolved",), "remove": ("selected",), "restage": ("removed",),
               "confirm_published": ("restaged",), "rewrite": ("published",), "verify": ("rewritten",)}
DONE = ("verified", "no_data")
IN_PROGRESS = ("resolved", "selected", "removed", "restaged", "published", "rewritten")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def take(con, step: str) -> list[str]:
    """The requests waiting for ``step``, oldest first."""
    return [r[0] for r in sqlf.run(con, SQL, "take", {"statuses": list(WAITING_FOR[step])}).fetchall()]


def advance(con, ids: list[str], status: str, run_id: str | None, **stamps) -> None:
    """Inside the caller's ledger transaction: ``ids`` now have done ``status`` (and the timestamp
    columns ``stamps``, e.g. propagated_at)."""
    if not ids:
        return
    when = now()
    sqlf.run(con, SQL, "advance", {"status": status, "ids": ids})
    for col, value in stamps.items():  # propagated_at, verified_at, restaged_version
        sqlf.run(con, SQL, f"stamp_{col}", {"value": value, "ids": ids})
    insert_rows(con, "ledger.erasure_steps", [(rid, status, when, run_id) for rid in ids])


@dataclass(frozen=True)
class Subject:
    """One identifier of a request's subject: its pseudonym under the active key, and (unsealed, in
    memory only) its normalized and written forms."""

    request_id: str
    kind: str
    pseudonym: str
    normalized: str
    forms: tuple[str, ...]
    blind: str


def subjects(con, key: MasterKey, tomb_key: MasterKey, ids: list[str]) -> list[Subject]:
    """Every identifier recorded for ``ids`` (intake seeds and resolved links), unsealed, with pseudonyms
    recomputed under ``key`` when they were recorded under another version (a rotation since)."""
    out = []
    for rid, kind, pseudonym, version, blind, sealed in sqlf.run(con, SQL, "subjects_of", {"ids": ids}).fetchall():
        if sealed is None:  # verified: the forms were destroyed with the request's data
            continue
        normalized, forms = unseal(tomb_key, rid, kind, sealed)
        if version != key.version:
            pseudonym = key.pseudonym(kind, normalized)
        out.append(Subject(rid, kind, pseudonym, normalized, tuple(forms), blind))
    return out


def load_subjects_table(con, subjects_: list[Subject]) -> None:
    """``_subjects`` (request_id, kind, pseudonym): what the SQL of every step joins against."""
    sqlf.run(con, SQL, "subjects_table")
    if subjects_:
        insert_rows(con, "_subjects", sorted({(s.request_id, s.kind, s.pseudonym) for s in subjects_}))


def rekey_requests(con, key: MasterKey, tomb_key: MasterKey) -> int:
    """Key rotation, in the ledger (``con``): the cached pseudonyms of open requests' subjects recomputed
    under ``key`` from their sealed normalized forms. Returns how many were updated."""
    rows = sqlf.run(con, SQL, "subjects_to_rekey", [key.version]).fetchall()
    updates = [(key.pseudonym(kind, unseal(tomb_key, rid, kind, sealed)[0]), key.version, rid, kind, blind)
               for rid, kind, blind, sealed in rows]
    with transaction(con):
        update_rows(con, sqlf.named(SQL, "rekey_subject"), updates, ["pseudonym", "key_version", "request_id", "kind", "blind"])
    return len(updates)
