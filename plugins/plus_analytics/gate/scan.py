"""Set-based PII scans over DuckDB tables: the detectors on every distinct text value, and the canary.

Findings carry table, column, detector, how many rows and the first row numbers, never a value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from plus_analytics.gate.detectors import MAX_TEXT_LENGTH, detect
from plus_analytics.policy import load_policy
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import CATALOG, sql_string, tables
from plus_analytics.storage.sql import q

SQL = "gate/canary.sql"
#: Identifiers shorter than this are not used for the "contains" canary (too many accidental matches).
CANARY_MIN_LENGTH = 6
#: Token separators for the canary: whitespace and punctuation identifiers are not made of. Log lines
#: also split on ':' ("user:someone@x.com"); mart values keep it, so a whole IPv6 address stays one token.
VALUE_SPLIT = "[\\s,;/()\\[\\]{}<>\"'|=]+"
LOG_SPLIT = "[\\s,;/()\\[\\]{}<>\"'|=:]+"


class RestrictedZoneMissing(RuntimeError):
    """The canary has nothing to compare against: a gate that cannot look must not pass."""


@dataclass(frozen=True)
class Finding:
    location: str      # e.g. "build:mart_daily_active_usage.dimension_value" or a log file path
    detector: str      # email, ipv4, ..., too_long, canary:<kind>, outside domain
    rows: int
    first_rows: tuple[int, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def text_columns(con, catalog: str) -> list[tuple[str, str]]:
    return sqlf.run(con, CATALOG, "text_columns", {"database": catalog}).fetchall()


def scan_column(con, catalog: str, table: str, column: str, max_len: int | None = MAX_TEXT_LENGTH) -> list[Finding]:
    """Detectors over each distinct value of one column (mart columns hold a few hundred distinct labels
    at most), then the rows holding the values that hit."""
    values = [r[0] for r in con.execute(f"select distinct {q(column)} from {catalog}.{q(table)} where {q(column)} is not null").fetchall()]
    by_kind: dict[str, list[str]] = {}
    for v in values:
        for kind in detect(v, max_len):
            by_kind.setdefault(kind, []).append(v)
    out = []
    for kind, hit in sorted(by_kind.items()):
        n, first = con.execute(
            f"""select count(*), list(rn order by rn)[1:5] from (
                    select row_number() over () as rn, {q(column)} as v from {catalog}.{q(table)})
                where list_contains($hit, v)""", {"hit": hit}).fetchone()
        out.append(Finding(f"{catalog}:{table}.{column}", kind, int(n), tuple(int(x) for x in first)))
    return out


def scan_catalog(con, catalog: str, max_len: int | None = MAX_TEXT_LENGTH) -> list[Finding]:
    findings: list[Finding] = []
    for table, column in text_columns(con, catalog):
        findings.extend(scan_column(con, catalog, table, column, max_len))
    return findings


def load_canary_ids(con, raw: str = "raw") -> None:
    """``_canary_ids`` (kind, val): every raw and normalized identifier, lowercased once per run. Refuses
    to run without the restricted zone's identifier dictionary."""
    if "id_map" not in tables(con, raw):
        raise RestrictedZoneMissing("the restricted zone (its identifier dictionary) is not available: the canary "
                                    "cannot check anything, so nothing may pass")
    sqlf.run(con, SQL, "identifiers", {"min": CANARY_MIN_LENGTH}, raw=raw)


def token_hits_sql(source_sql: str) -> str:
    """SQL giving (key, kind) for every text of ``source_sql`` (columns key, v) that equals, or contains
    as a token, an identifier of ``_canary_ids``. Bind ``$split`` (VALUE_SPLIT or LOG_SPLIT)."""
    return sqlf.named(SQL, "token_hits", source_sql=source_sql)


def canary(con, catalog: str, raw: str = "raw") -> list[Finding]:
    """Does any text value of ``catalog`` equal or contain a raw identifier known to the restricted zone,
    or equal a value the zone keeps to itself? Runs on the restricted side (``raw`` attached)."""
    load_canary_ids(con, raw)
    findings = _canary_dropped_values(con, catalog)
    for table, column in text_columns(con, catalog):
        rows_sql = f"select row_number() over () as key, {q(column)} as v from {catalog}.{q(table)} where {q(column)} is not null"
        rows = sqlf.run(con, SQL, "column_hits", {"split": VALUE_SPLIT}, hits=token_hits_sql(rows_sql)).fetchall()
        findings.extend(Finding(f"{catalog}:{table}.{column}", f"canary:{kind}", int(n), tuple(int(x) for x in first))
                        for kind, n, first in rows)
    con.execute("drop table _canary_ids")
    return findings


def _canary_dropped_values(con, catalog: str) -> list[Finding]:
    from plus_analytics.storage.lake import SCHEMA, present

    have = present(con)  # the zone's rows (lake.raw_<source>), seen with the restricted zone attached
    parts = [sqlf.named(SQL, "dropped_value_of_column", pii=sql_string(c.pii), column=q(c.name), raw=SCHEMA, table=src.raw_table)
             for src in load_policy().values() if src.raw_table in have for c in src.columns if c.pii]
    if not parts:
        return []
    sqlf.run(con, SQL, "dropped_values", {"min": CANARY_MIN_LENGTH}, parts=" union all ".join(parts))
    findings = []
    for table, column in text_columns(con, catalog):
        rows = sqlf.run(con, SQL, "dropped_hits", catalog=catalog, table=q(table), column=q(column)).fetchall()
        findings.extend(Finding(f"{catalog}:{table}.{column}", f"canary:{kind}", int(n), tuple(int(x) for x in first))
                        for kind, n, first in rows)
    con.execute("drop table _canary_dropped")
    return findings
