"""Late arrivals of erased subjects: dropped at ingest, counted per request, blanked in landing.

Matching uses the tombstone blind index (HMAC under the separate tombstone key over the normalized
identifier), which does not change when the pseudonym key rotates.
"""

from __future__ import annotations

from plus_analytics.policy import Source


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def has_tombstones(con) -> bool:
    has = con.execute(
        "select count(*) from duckdb_tables() where table_name = 'tombstone_subjects' and database_name = current_database()"
    ).fetchone()[0]
    return bool(has) and bool(con.execute("select count(*) from tombstone_subjects").fetchone()[0])


def suppression_sql(con, src: Source) -> str | None:
    """SELECT (_file, _line, request_id) of rows in ``_checked`` about a tombstoned subject, or None.
    Needs ``_tomb_key`` registered (intake.register_tombstone_key)."""
    if not src.subject or not has_tombstones(con):
        return None
    return " union ".join(
        f"""select c._file, c._line, ts.request_id from _checked c
            join id_map m on m.kind = '{src.column(col).kind}' and m.raw_value = c.{_q(col)} and m.normalized is not null
            join _tomb_key t on t.kind = m.kind
            join tombstone_subjects ts on ts.kind = m.kind and ts.blind = plus_pid(t.ipad, t.opad, m.normalized)"""
        for col in src.subject
    )


def forget_suppressed_identifiers(con) -> None:
    """Ingest learned the late rows' identifiers before they were suppressed: drop them again."""
    con.execute("""delete from pseudonyms where (kind, normalized) in (
        select m.kind, m.normalized from id_map m join _tomb_key t on t.kind = m.kind
        join tombstone_subjects ts on ts.kind = m.kind and ts.blind = plus_pid(t.ipad, t.opad, m.normalized))""")
    con.execute("""delete from id_map where (kind, raw_value) in (
        select m.kind, m.raw_value from id_map m join _tomb_key t on t.kind = m.kind
        join tombstone_subjects ts on ts.kind = m.kind and ts.blind = plus_pid(t.ipad, t.opad, m.normalized))""")
