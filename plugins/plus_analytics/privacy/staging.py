"""Staging compiled from the policy: the only way data leaves the restricted zone.

For each source the SELECT is generated from its declared rules, so a rule and its SQL can never drift
apart, and a column without a rule has no way out (ingest already refused it). The output columns are
exactly ``Source.staging_columns()``; a test asserts that none of them is a dropped or raw column.

Every function here runs on the staging database with the restricted one attached read-only as ``raw``
(and, for erasure, the privacy ledger as ``ledger``), inside one transaction that also bumps the
staging watermark (:data:`staging_version`), which builds and publishes compare against.
"""

from __future__ import annotations

import datetime as dt

from plus_analytics.policy import LENGTH_BUCKETS, Source
from plus_analytics.privacy.identifiers import KeyVersionMismatch
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import duck
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import table_columns, tables, transaction
from plus_analytics.storage.lake import SCHEMA as ROWS  # where a session sees the zone's rows
from plus_analytics.storage.sql import q as _q

RAW = "raw"  # alias the restricted database is attached under, read-only
STG = "stg"  # alias staging is attached under
SQL = "staging/staging.sql"


def _length_bucket(expr: str) -> str:
    whens = " ".join(f"when length({expr}) <= {hi} then '{label}'" for hi, label in LENGTH_BUCKETS)
    return f"case when {expr} is null then 'none' {whens} else '500+' end"


def _language(expr: str) -> str:
    return (f"case when {expr} is null then null when regexp_matches({expr}, '[\u0e00-\u0e7f]') then 'th' "
            f"when regexp_matches({expr}, '[A-Za-z]') then 'en' else 'other' end")


def compile_select(src: Source, changed_rows: bool = False) -> str:
    """The staging SELECT for ``src`` over ``raw.<raw_table>`` (alias r), with a landing-day range filter
    slot (``$day`` to ``$until``, both included; ``$day`` null for every day); with ``changed_rows``,
    only the raw rows listed in the temp table ``_changed_rows (_file, _line)``."""
    exprs: list[str] = ["r._dt"]
    joins: list[str] = []
    for c in src.columns:
        col = f"r.{_q(c.name)}"
        m = _q("m_" + c.name)
        if c.kind and c.rule in ("pseudonymize", "generalize"):
            joins.append(f"left join {RAW}.id_map {m} on {m}.kind = '{c.kind}' and {m}.raw_value = {col}")
        if c.rule == "keep":
            exprs.append(f"{col} as {_q(c.name)}")
        elif c.rule == "pseudonymize":
            exprs.append(f"{m}.pseudonym as {_q(c.pid_name)}")
        elif c.rule == "generalize" and c.how == "ip":
            exprs.append(f"coalesce({m}.country, 'unknown') as country")
            exprs.append(f"{m}.prefix_pid as ip_prefix_pid")
        elif c.rule == "generalize" and c.how == "user_agent":
            u = _q("u_" + c.name)
            joins.append(f"left join {RAW}.ua_map {u} on {u}.raw_value = {col}")
            for out in ("device_type", "os_family", "browser_family"):
                exprs.append(f"coalesce({u}.{out}, 'unknown') as {out}")
        elif c.rule == "derive" and c.how == "text":
            exprs.append(f"{_length_bucket(col)} as {_q(c.name + '_length_bucket')}")
            exprs.append(f"{_language(col)} as {_q(c.name + '_language')}")
        # drop: nothing leaves
    where = "($day is null or r._dt between $day and $until)" + (
        "\n  and (r._file, r._line) in (select _file, _line from _changed_rows)" if changed_rows else "")
    if src.visitor:
        joins += _visitor_hash_joins(src, where)
        exprs.append("coalesce(vh.visitor_hash, pv.visitor_hash) as visitor_hash")
    exprs.append("cast($key_version as integer) as key_version")
    return ("select\n    " + ",\n    ".join(exprs) + f"\nfrom {ROWS}.{src.raw_table} r\n" + "\n".join(joins)
            + "\nwhere " + where)


def _visitor_hash_joins(src: Source, where: str) -> list[str]:
    """The daily visitor hash: a keyed hash (that day's salt) of the normalized IP, the user agent and the
    account. Computed once per distinct (day, IP, user agent, account) of the rows ``where`` selects, not
    once per row: a visitor has many events a day, and the two SHA-256 of the HMAC were two thirds of
    staging them (usage events at 10M: 5.7M rows, 0.8M distinct). A missing IP, or a day without a salt,
    gives no hash; a row staged before keeps the hash computed back then (a day's salt lives two days)."""
    ip, ua, acct = (_q(src.visitor[k]) for k in ("ip", "user_agent", "account"))
    return [
        f"left join (\n    select d.day, d.ip, d.ua, d.acct, plus_pid(vs.ipad, vs.opad, m.normalized || chr(31) || d.ua || "
        f"chr(31) || d.acct) as visitor_hash\n"
        f"    from (select distinct cast(r.{_q(src.event_time)} as date) as day, r.{ip} as ip, coalesce(r.{ua}, '') as ua, "
        f"coalesce(r.{acct}, '') as acct\n          from {ROWS}.{src.raw_table} r where {where}) d\n"
        f"    left join {RAW}.id_map m on m.kind = 'ip' and m.raw_value = d.ip\n"
        f"    left join {RAW}.visitor_salt vs on vs.day = d.day\n"
        f") vh on vh.day = cast(r.{_q(src.event_time)} as date) and vh.ip = r.{ip} and vh.ua = coalesce(r.{ua}, '') "
        f"and vh.acct = coalesce(r.{acct}, '')",
        "left join _prev_visitor pv on " + " and ".join(f"pv.{_q(k)} = r.{_q(k)}" for k in src.key),
    ]


def check_raw_key_version(con, key: MasterKey) -> None:
    other = con.execute(f"select distinct key_version from {RAW}.pseudonyms where key_version <> ?", [key.version]).fetchall()
    if other:
        raise KeyVersionMismatch(
            f"the restricted zone holds pseudonyms of key version(s) {sorted(v for (v,) in other)} but the active key "
            f"is version {key.version}: run the key rotation first"
        )


#: How many staging versions the change log covers (a daily run makes about a dozen): a build whose
#: published marts are older than that rebuilds everything.
CHANGE_LOG_VERSIONS = 5000


def prepare(con, key: MasterKey | None = None) -> None:
    """Macros, the watermark and change-log tables and the key check, before any staging transaction."""
    sqlf.run_file(con, "macros.sql")
    ensure_tables(con)
    if key is not None:
        check_raw_key_version(con, key)


def ensure_tables(con) -> None:
    for name in ("version_table", "changes_table", "changes_trimmed_table"):
        sqlf.run(con, SQL, name)


def next_version(con) -> int:
    """The version the caller's transaction will commit (writers of staging are serialized by its lock)."""
    return current_version(con) + 1


def bump_version(con, what: str) -> int:
    """Inside the caller's transaction: staging changed; returns the new watermark (:func:`next_version`)."""
    sqlf.run(con, SQL, "bump_version", {"now": dt.datetime.now(dt.UTC).replace(tzinfo=None), "what": what})
    sqlf.run(con, SQL, "trim_versions")
    version = current_version(con)
    cut = version - CHANGE_LOG_VERSIONS
    if cut > 0 and cut % 100 == 0:  # now and then: the log is a few rows per version
        sqlf.run(con, SQL, "trim_changes", {"cut": cut})
        sqlf.run(con, SQL, "forget_trimmed")
        sqlf.run(con, SQL, "mark_trimmed", {"cut": cut})
    return version


def log_changes(con, src: Source, version: int, where: str, params: dict | None = None) -> None:
    """Record in the change log the day and change_ref of the rows of ``src``'s staging table (alias ``s``)
    matching ``where`` (called before deleting them and after inserting them)."""
    ref = f"cast({_q(src.change_ref_column)} as varchar)" if src.change_ref else "null"
    sqlf.run(con, SQL, "log_changes", {**(params or {}), "version": version, "table": src.staging_table},
             event_time=_q(src.event_time), ref=ref, table=src.staging_table, where=where)


def log_everything(con, version: int) -> None:
    """Everything in staging may have changed (key rotation, policy change): the next build is a full one."""
    sqlf.run(con, SQL, "log_everything", {"version": version})


def current_version(con) -> int:
    """The staging watermark (0 before the first staging)."""
    if "staging_version" not in tables(con, STG):
        return 0
    return duck.scalar(con, sqlf.named(SQL, "current_version"))


def _prev_visitor(con, src: Source, have: list[str], span: dict) -> None:
    keys = ", ".join(_q(k) for k in src.key)
    if have and "visitor_hash" in have:
        sqlf.run(con, SQL, "prev_visitor_from_staging", span, keys=keys, table=src.staging_table)
    else:
        sqlf.run(con, SQL, "prev_visitor_empty", keys=keys, raw_table=src.raw_table)


def stage_rows(con, src: Source, key: MasterKey, day: dt.date | None = None, until: dt.date | None = None) -> int:
    """(Re)build the staging rows of ``src`` for the landing days ``day`` to ``until`` (``day`` alone:
    one day; None: every day), inside the caller's transaction. Returns the rows staged."""
    select = compile_select(src)
    span = {"day": day, "until": until or day}
    table = src.staging_table
    have = table_columns(con, STG, table)
    if src.visitor:
        _prev_visitor(con, src, have, span)
    if have and have != list(src.staging_columns()):
        con.execute(f"drop table {STG}.{table}")  # the policy changed: rebuild the table from raw, all days
        have, span = [], {"day": None, "until": None}  # ... so every day is deleted, inserted and counted
    params = {**span, "key_version": key.version}
    version = next_version(con)
    if not have:
        con.execute(f"create table {STG}.{table} as select * from ({select}) where false", params)
        if span["day"] is None:
            log_everything(con, version)
    in_span = "($day is null or _dt between $day and $until)"
    log_changes(con, src, version, in_span, span)  # the rows replaced ...
    con.execute(f"delete from {STG}.{table} where {in_span}", span)
    con.execute(f"insert into {STG}.{table} {select}", params)
    log_changes(con, src, version, in_span, span)  # ... and their replacements
    return duck.scalar(con, f"select count(*) from {STG}.{table} where {in_span}", span)


def stage_source(con, src: Source, key: MasterKey, day: dt.date | None = None, until: dt.date | None = None) -> int:
    """Stage ``src`` for a day or a range of days (see :func:`stage_rows`) in one transaction.
    Idempotent: the days' rows are replaced."""
    prepare(con, key)
    with transaction(con):
        n = stage_rows(con, src, key, day, until)
        bump_version(con, f"stage {src.name}")
    return n


def restage_all(con, sources, key: MasterKey, what: str = "restage") -> dict[str, int]:
    """Rebuild every staging table from the restricted zone in ONE transaction (key rotation, policy
    change): readers of staging see either all old rows or all new ones."""
    prepare(con, key)
    with transaction(con):
        log_everything(con, next_version(con))
        counts = {src.name: stage_rows(con, src, key) for src in sources}
        bump_version(con, what)
    return counts


def _staging_key(src: Source) -> tuple[list[tuple[str, str]], list[str]] | None:
    """[(staging column, expression over raw row r)] identifying a staging row by its source key, and
    the joins the expressions need; None when a key column does not reach staging as itself or a
    pseudonym."""
    pairs, joins = [], []
    for k in src.key:
        c = src.column(k)
        if c.rule == "keep":
            pairs.append((k, f"r.{_q(k)}"))
        elif c.rule == "pseudonymize":
            m = _q("k_" + k)
            joins.append(f"left join {RAW}.id_map {m} on {m}.kind = '{c.kind}' and {m}.raw_value = r.{_q(k)}")
            pairs.append((c.pid_name, f"{m}.pseudonym"))
        else:
            return None
    return pairs, joins


def staging_key_sql(src: Source) -> tuple[str, list[str]]:
    """(expression over raw row r, joins) giving the text key by which staging knows a raw row: its key
    columns as staging holds them, joined by U+001F. Erasure records it before deleting the row."""
    sk = _staging_key(src)
    if sk is None:
        raise ValueError(f"{src.name}: its key does not reach staging, erasure cannot follow its rows")
    pairs, joins = sk
    return "concat_ws(chr(31), " + ", ".join(f"cast({e} as varchar)" for _, e in pairs) + ")", joins


def restage_erased(con, sources, key: MasterKey, requests: list[str]) -> dict[str, int]:
    """Bring staging in line with the restricted zone after erasure removed the rows of ``requests``: the
    staging rows of the erased rows are deleted (by the keys the remove step recorded in the ledger,
    attached as ``ledger``) and the redacted rows restaged. One transaction; equals a full restage (tested)
    without recomputing every row. Returns the staging watermark it committed."""
    prepare(con, key)
    present = tables(con, STG)
    with transaction(con):
        version = next_version(con)
        for src in sources:
            if src.staging_table not in present:
                continue
            pairs, _ = _staging_key(src)
            key_exprs = ", ".join(f"cast({_q(c)} as varchar)" for c, _ in pairs)
            erased = sqlf.named(SQL, "erased_keys", key_exprs=key_exprs)
            params = {"source": src.name, "requests": requests}
            log_changes(con, src, version, erased, params)
            con.execute(f"delete from {STG}.{src.staging_table} where {erased}", params)
            _restage_changed(con, src, key, requests, version)
        return bump_version(con, f"erasure of {len(requests)} request(s)")


def _restage_changed(con, src: Source, key: MasterKey, requests: list[str], version: int) -> None:
    sqlf.run(con, SQL, "changed_rows", {"source": src.name, "requests": requests})
    if not sqlf.run(con, SQL, "changed_rows_count").fetchone()[0]:
        return
    pairs, joins = _staging_key(src)
    changed_keys = (f"select {', '.join(f'{e} as {_q(c)}' for c, e in pairs)} from {ROWS}.{src.raw_table} r "
                    + " ".join(joins) + " where (r._file, r._line) in (select _file, _line from _changed_rows)")
    match = " and ".join(f"k.{_q(c)} is not distinct from s.{_q(c)}" for c, _ in pairs)
    ctx = dict(table=src.staging_table, changed_keys=changed_keys, match=match)
    if src.visitor:
        sqlf.run(con, SQL, "prev_visitor_of_changed", s_keys=", ".join(f"s.{_q(k)}" for k in src.key), **ctx)
    changed = sqlf.named(SQL, "changed", **ctx)
    log_changes(con, src, version, changed)
    con.execute(f"delete from {STG}.{src.staging_table} s where {changed}")
    con.execute(f"insert into {STG}.{src.staging_table} {compile_select(src, changed_rows=True)}",
                {"day": None, "until": None, "key_version": key.version})
    log_changes(con, src, version, changed)
