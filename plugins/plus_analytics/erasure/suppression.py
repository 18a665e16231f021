"""Late arrivals of erased subjects: dropped at ingest, counted per request, blanked in landing.

Matching uses the tombstone blind index (HMAC under the separate tombstone key over the normalized
identifier), which does not change when the pseudonym key rotates. Only the identifiers of the rows
being ingested are hashed, once per distinct value: the cost follows the batch, not the zone.
"""

from __future__ import annotations

from plus_analytics.policy import Source
from plus_analytics.sqlfiles import q as _q




def has_tombstones(con) -> bool:
    has = con.execute(
        "select count(*) from duckdb_tables() where table_name = 'tombstone_subjects' and database_name = current_database()"
    ).fetchone()[0]
    return bool(has) and bool(con.execute("select count(*) from tombstone_subjects").fetchone()[0])


def find_suppressed(con, src: Source) -> int:
    """Fill ``_suppressed`` (_file, _line, request_id, kind, raw_value, normalized) with the valid rows of
    ``_checked`` whose subject is tombstoned. Needs ``_tomb_key`` (intake.register_tombstone_key).
    Returns the number of rows."""
    if not src.subject:
        con.execute("create or replace temp table _suppressed (_file varchar, _line bigint, request_id varchar, "
                    "kind varchar, raw_value varchar, normalized varchar)")
        return 0
    ids = " union all ".join(
        f"""select c._file, c._line, m.kind, m.raw_value, m.normalized from _checked c
            join id_map m on m.kind = '{src.column(col).kind}' and m.raw_value = c.{_q(col)}
            where c.reason is null and m.normalized is not null"""
        for col in src.subject
    )
    con.execute(f"create or replace temp table _batch_ids as {ids}")
    con.execute("""create or replace temp table _batch_blind as
                   select b.kind, b.normalized, plus_pid(t.ipad, t.opad, b.normalized) as blind
                   from (select distinct kind, normalized from _batch_ids) b join _tomb_key t using (kind)""")
    con.execute("""create or replace temp table _suppressed as
                   select distinct b._file, b._line, ts.request_id, b.kind, b.raw_value, b.normalized
                   from _batch_ids b join _batch_blind bb using (kind, normalized)
                   join tombstone_subjects ts on ts.kind = bb.kind and ts.blind = bb.blind""")
    return con.execute("select count(distinct (_file, _line)) from _suppressed").fetchone()[0]


def forget_suppressed_identifiers(con, src: Source) -> None:
    """Ingest learned the late rows' identifiers before they were suppressed: drop the subject's ones
    again (every subject-kind value of those rows that no kept row of the batch uses)."""
    cols = [c for c in src.identifier_columns if c.name in src.subject]
    mine = " union ".join(f"select '{c.kind}' as kind, {_q(c.name)} as v from _checked where (_file, _line) in "
                          f"(select _file, _line from _suppressed)" for c in cols)
    kept = " union ".join(f"select '{c.kind}', {_q(c.name)} from _checked where reason is null and (_file, _line) not in "
                          f"(select _file, _line from _suppressed)" for c in cols)
    con.execute(f"create or replace temp table _forget as select kind, v from ({mine}) where v is not null except ({kept})")
    con.execute("""create or replace temp table _forget_norm as select distinct m.kind, m.normalized from id_map m
                   join _forget f on m.kind = f.kind and m.raw_value = f.v where m.normalized is not null""")
    con.execute("delete from id_map where (kind, raw_value) in (select kind, v from _forget)")
    con.execute("""delete from pseudonyms where (kind, normalized) in (select kind, normalized from _forget_norm)
                   and (kind, normalized) not in (select kind, normalized from id_map where normalized is not null)""")
