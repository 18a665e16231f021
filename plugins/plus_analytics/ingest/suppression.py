"""Late arrivals of erased subjects: dropped at ingest, counted per request, blanked in landing.

Matching uses the tombstone blind index (HMAC under the separate tombstone key over the normalized
identifier, in the privacy ledger attached as ``ledger``), which does not change when the pseudonym key
rotates. Only the identifiers of the rows being ingested are hashed, once per distinct value: the cost
follows the batch, not the zone.
"""

from __future__ import annotations

from plus_analytics.policy import KINDS, Source
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import sql_string, tables
from plus_analytics.storage.sql import q

SQL = "ingest/suppression.sql"


def has_tombstones(con) -> bool:
    """Any deletion request in the attached ledger (then the tombstone key is required: no key, no run)."""
    return "tombstone_subjects" in tables(con, "ledger") and bool(
        sqlf.run(con, SQL, "tombstones_exist").fetchone()[0])


def register_tombstone_key(con, tomb_key: MasterKey) -> None:
    """HMAC pads of the tombstone key (blind index of erased subjects), TEMP only."""
    sqlf.run_file(con, "macros.sql")
    sqlf.run(con, SQL, "tomb_key_table")
    con.executemany(sqlf.named(SQL, "tomb_key_insert"), [(kind, *tomb_key.pads(kind)) for kind in KINDS])


def find_suppressed(con, src: Source) -> int:
    """Fill ``_suppressed`` (_file, _line, request_id, kind, raw_value, normalized) with the valid rows of
    ``_checked`` whose subject is tombstoned. Returns the number of rows."""
    if not src.subject:
        sqlf.run(con, SQL, "suppressed_empty")
        return 0
    ids = " union all ".join(sqlf.named(SQL, "batch_ids_of_column", kind=sql_string(src.column(col).kind), column=q(col))
                             for col in src.subject)
    sqlf.run(con, SQL, "batch_ids", ids=ids)
    sqlf.run(con, SQL, "batch_blind")
    sqlf.run(con, SQL, "suppressed")
    return sqlf.run(con, SQL, "suppressed_count").fetchone()[0]


def forget_suppressed_identifiers(con, src: Source) -> None:
    """Ingest learned the late rows' identifiers before they were suppressed: drop the subject's ones
    again (every subject-kind value of those rows that no kept row of the batch uses)."""
    cols = [c for c in src.identifier_columns if c.name in src.subject]
    mine = " union ".join(sqlf.named(SQL, "values_of_suppressed", kind=sql_string(c.kind), column=q(c.name)) for c in cols)
    kept = " union ".join(sqlf.named(SQL, "values_of_kept", kind=sql_string(c.kind), column=q(c.name)) for c in cols)
    sqlf.run(con, SQL, "forget", mine=mine, kept=kept)
    for name in ("forget_normalized", "forget_ids", "forget_pseudonyms"):
        sqlf.run(con, SQL, name)
