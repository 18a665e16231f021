"""Set-based PII scans over DuckDB tables: the detectors of ``sql/gate/detectors.sql`` and the canary.

Findings carry table, column, detector, how many rows and the first row numbers, never a value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from plus_analytics import sqlfiles
from plus_analytics.sqlfiles import q as _q

#: Longest text value a published mart may hold; mart text columns are short dimension labels.
MAX_TEXT_LENGTH = 64
#: Identifiers shorter than this are not used for the "contains" canary (too many accidental matches).
CANARY_MIN_LENGTH = 6
TEXT_TYPES = ("VARCHAR",)


@dataclass(frozen=True)
class Finding:
    location: str      # e.g. "build:mart_daily_active_usage.dimension_value" or a log file path
    detector: str      # email, ipv4, ..., too_long, canary:<kind>
    rows: int
    first_rows: tuple[int, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def load_detectors(con) -> None:
    sqlfiles.run_file(con, "gate/detectors.sql")


def text_columns(con, catalog: str) -> list[tuple[str, str]]:
    return con.execute(
        """select table_name, column_name from duckdb_columns()
           where database_name = ? and data_type in ('VARCHAR') order by table_name, column_index""",
        [catalog],
    ).fetchall()




def scan_table_column(con, catalog: str, table: str, column: str, max_len: int = MAX_TEXT_LENGTH) -> list[Finding]:
    rows = con.execute(
        f"""with t as (select row_number() over () as rn, {_q(column)} as v from {catalog}.{_q(table)}),
                 k as (select rn, unnest(pii_kinds(v, $max_len)) as kind from t where v is not null)
            select kind, count(*), list(rn order by rn)[1:5] from k group by kind order by kind""",
        {"max_len": max_len},
    ).fetchall()
    return [Finding(f"{catalog}:{table}.{column}", kind, int(n), tuple(int(x) for x in first)) for kind, n, first in rows]


def scan_catalog(con, catalog: str, max_len: int = MAX_TEXT_LENGTH) -> list[Finding]:
    load_detectors(con)
    findings: list[Finding] = []
    for table, column in text_columns(con, catalog):
        findings.extend(scan_table_column(con, catalog, table, column, max_len))
    return findings


#: Token separators for the canary: whitespace and punctuation identifiers are not made of. Log lines
#: also split on ':' ("user:someone@x.com"); mart values keep it, so a whole IPv6 address stays one token.
VALUE_SPLIT = "[\\s,;/()\\[\\]{}<>\"'|=]+"
LOG_SPLIT = "[\\s,;/()\\[\\]{}<>\"'|=:]+"


def canary_ids_sql(raw: str) -> str:
    """(kind, val): the lowercased raw and normalized forms of every identifier of ``raw``.id_map."""
    return f"""select kind, lower(raw_value) as val from {raw}.id_map where length(raw_value) >= {CANARY_MIN_LENGTH}
               union
               select kind, lower(normalized) from {raw}.id_map where length(normalized) >= {CANARY_MIN_LENGTH}"""


def token_hits_sql(source_sql: str, ids: str) -> str:
    """SQL giving (key, kind) for every text of ``source_sql`` (columns key, v) that equals, or contains
    as a token, an identifier of ``ids`` (a relation of :func:`canary_ids_sql` rows). Bind ``$split``
    (VALUE_SPLIT or LOG_SPLIT)."""
    return f"""with t as ({source_sql}),
                tokens as (
                    select key, lower(v) as tok from t
                    union all
                    select key, lower(unnest(regexp_split_to_array(v, $split))) from t)
           select distinct t.key, i.kind from tokens t join {ids} i on t.tok = i.val"""


def canary(con, catalog: str, raw: str = "raw") -> list[Finding]:
    """Does any text value of ``catalog`` equal or contain a raw identifier known to the restricted zone?

    Runs on the restricted side (``raw`` attached). Containment is checked token-wise: each value is split
    on whitespace and punctuation other than the characters identifiers are made of, and every token, as
    well as the whole value, is joined against the raw and normalized forms of every identifier.
    """
    findings: list[Finding] = []
    findings += _canary_dropped_values(con, catalog, raw)
    # The dictionary is lowercased once per gate run, not once per column (millions of rows at scale).
    con.execute(f"create or replace temp table _canary_ids as {canary_ids_sql(raw)}")
    for table, column in text_columns(con, catalog):
        rows_sql = (f"select row_number() over () as key, {_q(column)} as v from {catalog}.{_q(table)} "
                    f"where {_q(column)} is not null")
        rows = con.execute(
            f"""select kind, count(*), list(key order by key)[1:5]
                from ({token_hits_sql(rows_sql, "_canary_ids")}) group by kind""",
            {"split": VALUE_SPLIT},
        ).fetchall()
        findings.extend(Finding(f"{catalog}:{table}.{column}", f"canary:{kind}", int(n), tuple(int(x) for x in first))
                        for kind, n, first in rows)
    con.execute("drop table _canary_ids")
    return findings


def _canary_dropped_values(con, catalog: str, raw: str) -> list[Finding]:
    """Whole-value matches against every column the policy keeps in the restricted zone only (names,
    message text, notes, addresses, password hashes): a mart that copies one of them is caught even
    when no pattern detector would recognise it."""
    from plus_analytics.policy import load_policy

    present = {r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = ?", [raw]).fetchall()}
    parts = [
        f"select '{c.pii}' as kind, lower({_q(c.name)}) as val from {raw}.{src.raw_table} where length({_q(c.name)}) >= {CANARY_MIN_LENGTH}"
        for src in load_policy().values() if src.raw_table in present for c in src.columns if c.pii
    ]
    if not parts:
        return []
    con.execute("create or replace temp table _canary_dropped as select distinct kind, val from (" + " union all ".join(parts) + ")")
    findings = []
    for table, column in text_columns(con, catalog):
        rows = con.execute(
            f"""with t as (select row_number() over () as rn, lower({_q(column)}) as v from {catalog}.{_q(table)} where {_q(column)} is not null)
                select d.kind, count(distinct t.rn), list(distinct t.rn order by t.rn)[1:5]
                from t join _canary_dropped d on t.v = d.val group by d.kind"""
        ).fetchall()
        findings.extend(Finding(f"{catalog}:{table}.{column}", f"canary:{kind}", int(n), tuple(int(x) for x in first))
                        for kind, n, first in rows)
    con.execute("drop table _canary_dropped")
    return findings


def detect_values(values: list[str | None], max_len: int = MAX_TEXT_LENGTH) -> list[list[str]]:
    """The detector kinds found in each value (for tests and the audit of non-table text)."""
    import duckdb

    con = duckdb.connect()
    load_detectors(con)
    out = con.execute(
        "select pii_kinds(v, $m) from (select unnest($vals) as v, generate_subscripts($vals, 1) as i) order by i",
        {"vals": list(values), "m": max_len},
    ).fetchall()
    con.close()
    return [sorted(r[0]) if r[0] is not None else [] for r in out]
