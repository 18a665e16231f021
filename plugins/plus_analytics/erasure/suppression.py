"""Late arrivals of erased subjects: rows whose identifiers match a tombstone are dropped at ingest."""

from __future__ import annotations

from plus_analytics.policy import Source


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def suppression_sql(con, src: Source) -> str | None:
    """A SELECT of (_file, _line) in ``_checked`` whose subject has a tombstone, or None if none can match.

    Matching is by pseudonym (tombstones never hold raw identifiers): each identifier column of the
    source is looked up in id_map and compared with the tombstoned pseudonyms of its kind.
    """
    has = con.execute(
        "select count(*) from duckdb_tables() where table_name = 'tombstone_subjects' and database_name = current_database()"
    ).fetchone()[0]
    if not has or not src.identifier_columns:
        return None
    if not con.execute("select count(*) from tombstone_subjects").fetchone()[0]:
        return None
    parts = [
        f"""select c._file, c._line from _checked c
            join id_map m on m.kind = '{col.kind}' and m.raw_value = c.{_q(col.name)}
            join tombstone_subjects t on t.kind = m.kind and t.pseudonym = m.pseudonym"""
        for col in src.identifier_columns
    ]
    return " union ".join(parts)
