"""Staging compiled from the policy: the only way data leaves the restricted zone.

For each source the SELECT is generated from its declared rules, so a rule and its SQL can never drift
apart, and a column without a rule has no way out (ingest already refused it). The output columns are
exactly ``Source.staging_columns()``; a test asserts that none of them is a dropped or raw column.
"""

from __future__ import annotations

import datetime as dt

from plus_analytics import sqlfiles
from plus_analytics.db import table_columns, tables, with_frame
from plus_analytics.policy import Source
from plus_analytics.privacy.identifiers import KeyVersionMismatch
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.sqlfiles import q as _q

RAW = "raw"  # alias the restricted database is attached under, read-only

LENGTH_BUCKETS = ((0, "empty"), (20, "1-20"), (100, "21-100"), (500, "101-500"))




def _length_bucket(expr: str) -> str:
    whens = " ".join(
        f"when length({expr}) <= {hi} then '{label}'" for hi, label in LENGTH_BUCKETS
    )
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
    if src.visitor:
        ip, ua, acct = (src.visitor[k] for k in ("ip", "user_agent", "account"))
        joins.append(f"left join {RAW}.visitor_salt vs on vs.day = cast(r.{_q(src.event_time)} as date)")
        # A day's salt lives two days (retention); restaging older rows keeps the hash computed back then.
        joins.append("left join _prev_visitor pv on " + " and ".join(f"pv.{_q(k)} = r.{_q(k)}" for k in src.key))
        exprs.append(
            f"coalesce(plus_pid(vs.ipad, vs.opad, {_q('m_' + ip)}.normalized || chr(31) || coalesce(r.{_q(ua)}, '') "
            f"|| chr(31) || coalesce(r.{_q(acct)}, '')), pv.visitor_hash) as visitor_hash"
        )
    exprs.append("cast($key_version as integer) as key_version")
    return ("select\n    " + ",\n    ".join(exprs) + f"\nfrom {RAW}.{src.raw_table} r\n" + "\n".join(joins)
            + "\nwhere ($day is null or r._dt between $day and $until)"
            + ("\n  and (r._file, r._line) in (select _file, _line from _changed_rows)" if changed_rows else ""))


def check_raw_key_version(con, key: MasterKey) -> None:
    other = con.execute(f"select distinct key_version from {RAW}.pseudonyms where key_version <> ?", [key.version]).fetchall()
    if other:
        raise KeyVersionMismatch(
            f"the restricted zone holds pseudonyms of key version(s) {sorted(v for (v,) in other)} but the active key "
            f"is version {key.version}: run the key rotation first"
        )


def stage_source(con, src: Source, key: MasterKey, day: dt.date | None = None, transaction: bool = True,
                 until: dt.date | None = None) -> int:
    """(Re)build the staging rows of ``src`` for one landing day (or the days from ``day`` to ``until``,
    a backfill), or all of them when ``day`` is None.

    ``con`` is the staging database with the restricted one attached read-only as ``raw``. Returns the
    number of rows staged. Idempotent: the day's rows are replaced in one transaction.
    """
    sqlfiles.run_file(con, "macros.sql")
    check_raw_key_version(con, key)
    select = compile_select(src)
    span = {"day": day, "until": until or day}
    params = {**span, "key_version": key.version}
    table = src.staging_table
    if transaction:
        con.execute("begin transaction")
    try:
        have = table_columns(con, table)
        if src.visitor:
            keys = ", ".join(_q(k) for k in src.key)
            if have and "visitor_hash" in have:
                con.execute(f"create or replace temp table _prev_visitor as select {keys}, visitor_hash from {table} "
                            f"where visitor_hash is not null and ($day is null or _dt between $day and $until)", span)
            else:
                con.execute(f"create or replace temp table _prev_visitor as select {keys}, null::varchar as visitor_hash "
                            f"from {RAW}.{src.raw_table} where false")
        if have and have != list(src.staging_columns()):
            con.execute(f"drop table {table}")  # the policy changed: rebuild the table from raw, all days
            have, span = [], {"day": None, "until": None}  # ... so every day is deleted, inserted and counted
            params.update(span)
        if not have:
            con.execute(f"create table {table} as select * from ({select}) where false", params)
        if span["day"] is None:
            con.execute(f"delete from {table}")
        else:
            con.execute(f"delete from {table} where _dt between $day and $until", span)
        con.execute(f"insert into {table} {select}", params)
        n = con.execute(f"select count(*) from {table} where ($day is null or _dt between $day and $until)",
                        span).fetchone()[0]
        if transaction:
            con.execute("commit")
    except Exception:
        if transaction:
            con.execute("rollback")
        raise
    return n


def restage_all(con, sources, key: MasterKey) -> dict[str, int]:
    """Rebuild every staging table from the restricted zone in ONE transaction (key rotation, policy
    change, erasure): readers of staging see either all old rows or all new ones."""
    sqlfiles.run_file(con, "macros.sql")
    con.execute("begin transaction")
    try:
        counts = {src.name: stage_source(con, src, key, None, transaction=False) for src in sources}
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
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


def restage_changed(con, src: Source, key: MasterKey, changed: list[tuple[str, int]]) -> int:
    """Bring ``src``'s staging back in line with the restricted zone after erasure deleted rows from it
    and changed (redacted) the rows ``changed`` [(_file, _line)]: staging rows whose key is gone from raw
    are deleted, the changed rows restaged. Equals a full restage (tested) for one pass over the keys
    instead of recomputing every row. Falls back to restaging the whole source when its key does not
    reach staging. Returns the rows deleted plus restaged. Runs inside the caller's transaction."""
    import pandas as pd

    sk = _staging_key(src)
    have = table_columns(con, src.staging_table)
    if sk is None or have != list(src.staging_columns()):
        return stage_source(con, src, key, None, transaction=False)
    pairs, joins = sk
    table = src.staging_table
    raw_keys = f"select {', '.join(f'{e} as {_q(c)}' for c, e in pairs)} from {RAW}.{src.raw_table} r " + " ".join(joins)
    match = " and ".join(f"k.{_q(c)} is not distinct from s.{_q(c)}" for c, _ in pairs)
    with_frame(con, "_changed_frame", pd.DataFrame(changed, columns=["_file", "_line"], dtype=object),
               "create or replace temp table _changed_rows as "
               "select cast(_file as varchar) as _file, cast(_line as bigint) as _line from _changed_frame")
    gone = con.execute(f"delete from {table} s where not exists (select 1 from ({raw_keys}) k where {match})").fetchall()[0][0]
    if not changed:
        return gone
    changed_keys = raw_keys + " where (r._file, r._line) in (select _file, _line from _changed_rows)"
    if src.visitor:
        keys = ", ".join(_q(k) for k in src.key)
        con.execute(f"""create or replace temp table _prev_visitor as select {keys}, visitor_hash from {table} s
                        where visitor_hash is not null and exists (select 1 from ({changed_keys}) k where {match})""")
    con.execute(f"delete from {table} s where exists (select 1 from ({changed_keys}) k where {match})")
    con.execute(f"insert into {table} {compile_select(src, changed_rows=True)}",
                {"day": None, "until": None, "key_version": key.version})
    return gone + len(changed)


def restage_after_erasure(con, sources, key: MasterKey, changed: dict[str, list[tuple[str, int]]]) -> dict[str, int]:
    """:func:`restage_changed` for every source erasure touched (``changed``: source -> redacted rows,
    empty when rows were only deleted), in ONE transaction. ``con`` is staging with raw attached."""
    sqlfiles.run_file(con, "macros.sql")
    check_raw_key_version(con, key)
    present = tables(con)
    con.execute("begin transaction")
    try:
        counts = {src.name: restage_changed(con, src, key, changed[src.name])
                  for src in sources if src.name in changed and src.staging_table in present}
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return counts
