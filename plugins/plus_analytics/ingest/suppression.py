"""Late arrivals of erased subjects, kept from the zone as their erasure would have kept them: an erased
person's rows and anyone's free text that mentions them dropped at ingest and blanked in landing, their
references in other people's rows redacted there and in landing; counted per request.

Matching uses the tombstone blind index (HMAC under the separate tombstone key over the normalized
identifier, in the privacy ledger attached as ``ledger``), which does not change when the pseudonym key
rotates. Only the identifiers of the rows being ingested are hashed, once per distinct value: the cost
follows the batch, not the zone.
"""

from __future__ import annotations

import uuid

from plus_analytics.policy import KINDS, REFERENCES_REDACTED, Source, has_children
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import sql_string, tables
from plus_analytics.storage.sql import q

SQL = "ingest/suppression.sql"
ROW_KEY = "erased row key"  # the tombstone subkey of erased parent rows' keys (no identifier kind)


def has_tombstones(con) -> bool:
    """Any deletion request in the attached ledger (then the tombstone key is required: no key, no run)."""
    return "tombstone_subjects" in tables(con, "ledger") and bool(
        sqlf.run(con, SQL, "tombstones_exist").fetchone()[0])


def register_tombstone_key(con, tomb_key: MasterKey) -> None:
    """HMAC pads of the tombstone key (blind index of erased subjects, and of erased parent rows' keys),
    TEMP only."""
    sqlf.run_file(con, "macros.sql")
    sqlf.run(con, SQL, "tomb_key_table")
    con.executemany(sqlf.named(SQL, "tomb_key_insert"), [(kind, *tomb_key.pads(kind)) for kind in (*KINDS, ROW_KEY)])


def remember_dropped_parents(con, src: Source) -> None:
    """Keys of the batch's dropped rows (``_suppressed``), when other sources' rows belong to them."""
    if has_children(src):
        sqlf.run(con, SQL, "remember_dropped_parents", {"source": src.name, "row_key": ROW_KEY}, key=q(src.key[0]))


def remember_erased_parents(con, sources, tomb_key: MasterKey, ids: list[str]) -> None:
    """In the removal's transaction (the restricted zone read-write, the ledger attached): the keys of the
    parent rows the selection of ``ids`` holds (the policy makes a parent's key its one kept column)."""
    parents = [s for s in sources if has_children(s)]
    if not parents:
        return
    register_tombstone_key(con, tomb_key)
    for src in parents:
        sqlf.run(con, SQL, "remember_erased_parents", {"source": src.name, "row_key": ROW_KEY, "ids": ids})


def log_late(con, src: Source, now) -> None:
    """In the batch's transaction: rows dropped and rows with references redacted, per request and day,
    into the outbox the ledger's evidence copies."""
    batch = uuid.uuid4().hex[:12]
    sqlf.run(con, SQL, "log_suppressed", {"batch": batch, "source": src.name, "now": now})
    sqlf.run(con, SQL, "log_redacted", {"batch": batch, "source": f"{src.name} {REFERENCES_REDACTED}", "now": now})


def find_late(con, src: Source) -> tuple[int, int]:
    """What the batch (``_checked``, its mentions ``_mentions``) holds of erased people, as erasure would
    have removed it: ``_suppressed`` (_file, _line, request_id, kind, raw_value, normalized, role), rows
    to drop (a subject column names them, free text mentions them, or their parent row was erased or
    dropped: ``raw.erased_row_keys``); ``_late_references`` (_file,
    _line, request_id, col), fields of kept rows to redact. Returns (rows to drop, rows to redact)."""
    parts = [sqlf.named(SQL, "batch_ids_of_column", kind=sql_string(src.column(col).kind), column=q(col),
                        role=sql_string("subject"), col=sql_string(col)) for col in src.subject]
    parts += [sqlf.named(SQL, "batch_ids_of_column", kind=sql_string(c.kind), column=q(c.name),
                         role=sql_string("reference"), col=sql_string(c.name)) for c in src.reference_columns]
    if src.free_text_columns:
        parts.append(sqlf.named(SQL, "batch_ids_of_mentions"))
    if parts:
        sqlf.run(con, SQL, "batch_ids", ids=" union all ".join(parts))
        sqlf.run(con, SQL, "batch_blind")
        sqlf.run(con, SQL, "late")
    else:
        sqlf.run(con, SQL, "late_empty")
    if src.parent:
        sqlf.run(con, SQL, "late_children", {"parent": src.parent["source"], "row_key": ROW_KEY},
                 parent_key=q(src.parent["key"]))
    sqlf.run(con, SQL, "suppressed")
    sqlf.run(con, SQL, "late_references")
    dropped, redacted = sqlf.run(con, SQL, "late_count").fetchone()
    return dropped, redacted


def redact_references(con, src: Source, marker: str) -> None:
    """The late references set to ``marker`` in the batch's rows, before they are written."""
    for c in src.reference_columns:
        sqlf.run(con, SQL, "redact_references", {"redacted": marker, "col": c.name}, column=q(c.name))


def forget_late_identifiers(con, src: Source) -> None:
    """Ingest learned the erased people's values before it found them late: drop them from the maps again
    (the values the batch named of them, and every subject value of their dropped rows), unless a row the
    batch keeps still names the value in an identifier column (references are redacted by now)."""
    subject = [c for c in src.identifier_columns if c.name in src.subject]
    mine = " union ".join([sqlf.named(SQL, "values_of_late")] + [
        sqlf.named(SQL, "values_of_suppressed", kind=sql_string(c.kind), column=q(c.name)) for c in subject])
    kept = " union ".join(sqlf.named(SQL, "values_of_kept", kind=sql_string(c.kind), column=q(c.name))
                          for c in (*subject, *src.reference_columns)) or "select null, null where false"
    sqlf.run(con, SQL, "forget", mine=mine, kept=kept)
    for name in ("forget_normalized", "forget_ids", "forget_pseudonyms"):
        sqlf.run(con, SQL, name)
