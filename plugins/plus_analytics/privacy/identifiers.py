"""The restricted zone's identifier maps, kept up to date set-wise.

``learn_identifiers`` takes a SELECT of candidate raw values, finds the ones never seen before (an anti
join inside DuckDB), normalizes only those (once per distinct value: canonical platform ids by a pattern
in SQL, everything else in Python), and computes pseudonyms inside DuckDB with the in-SQL HMAC, once per
distinct *normalized* value. Rows of data are never touched
by Python: staging joins these maps.
"""

from __future__ import annotations

import datetime as dt
import secrets

import pandas as pd

from plus_analytics import db, sqlfiles
from plus_analytics.policy import KINDS, REDACTED
from plus_analytics.privacy.keys import MasterKey, hmac_pads
from plus_analytics.privacy.lookups import ip_country, parse_user_agent
from plus_analytics.privacy.normalize import (CANONICAL_PLATFORM_ID, InvalidIdentifier, ip_prefix, normalize,
                                              normalized_elsewhere)


class KeyVersionMismatch(RuntimeError):
    """The restricted zone holds pseudonyms of another key version: run the key rotation first."""


def ensure_schema(con) -> None:
    sqlfiles.run_file(con, "restricted/schema.sql")


def register_key(con, key: MasterKey) -> None:
    """Bind the per-kind HMAC pads into a TEMP table (never persisted) and define the HMAC macros."""
    sqlfiles.run_file(con, "macros.sql")
    con.execute("create or replace temp table _pseudonym_key (kind varchar, key_version integer, ipad blob, opad blob)")
    for kind in KINDS:
        ipad, opad = key.pads(kind)
        con.execute("insert into _pseudonym_key values (?, ?, ?, ?)", [kind, key.version, ipad, opad])


def check_key_version(con, key: MasterKey) -> None:
    other = con.execute(
        "select distinct key_version from pseudonyms where key_version <> ? order by 1", [key.version]
    ).fetchall()
    if other:
        raise KeyVersionMismatch(
            f"the restricted zone holds pseudonyms of key version(s) {[v for (v,) in other]} but the active key "
            f"is version {key.version}: run the key rotation (plus-analytics rotate-keys, or the "
            f"plus_rotate_keys DAG) before ingesting more data"
        )


def _normalize_frame(kind: str, values: list[str]) -> pd.DataFrame:
    rows = []
    for v in values:
        norm = err = country = prefix = None
        try:
            norm = normalize(kind, v)
            if kind == "ip":
                country, prefix = ip_country(norm), ip_prefix(norm)
        except InvalidIdentifier as exc:
            err = str(exc)
        rows.append((kind, v, norm, err, country, prefix))
    return pd.DataFrame(rows, columns=["kind", "raw_value", "normalized", "error", "country", "prefix"], dtype=object)


def learn_identifiers(con, kind: str, values_sql: str) -> int:
    """Add every new raw value of ``values_sql`` (one column ``v``) to id_map. Returns how many were new.

    Platform ids already in canonical form (nearly all of them) are settled in SQL; the rest go through
    :func:`~plus_analytics.privacy.normalize.normalize` in Python, once per distinct value."""
    con.execute(
        f"""create or replace temp table _new_values as
            select distinct s.v from ({values_sql}) s
            anti join (select raw_value from id_map where kind = $kind) m on s.v = m.raw_value
            where s.v is not null and s.v <> $redacted""",
        {"kind": kind, "redacted": REDACTED},
    )
    con.execute("""create or replace temp table _new_ids (kind varchar, raw_value varchar, normalized varchar,
                   error varchar, country varchar, prefix varchar)""")
    canonical = "$in_sql and regexp_full_match(v, $canonical)"
    params = {"in_sql": not normalized_elsewhere(kind), "canonical": CANONICAL_PLATFORM_ID}
    con.execute(f"insert into _new_ids select $kind, v, v, null, null, null from _new_values where {canonical}",
                {"kind": kind, **params})
    rest = [r[0] for r in con.execute(f"select v from _new_values where not ({canonical})", params).fetchall()]
    if rest:
        db.with_frame(con, "_new_ids_frame", _normalize_frame(kind, rest), "insert into _new_ids select * from _new_ids_frame")
    new = con.execute("select count(*) from _new_ids").fetchall()[0][0]
    if new:
        if kind == "ip":
            _pseudonymize(con, "ip_prefix", "select distinct prefix as normalized from _new_ids where prefix is not null")
        _pseudonymize(con, kind, "select distinct normalized from _new_ids where normalized is not null")
        con.execute(
            """insert into id_map
               select n.kind, n.raw_value, n.normalized, n.error, p.pseudonym, p.key_version, n.country, n.prefix, pp.pseudonym
               from _new_ids n
               left join pseudonyms p on p.kind = n.kind and p.normalized = n.normalized
               left join pseudonyms pp on pp.kind = 'ip_prefix' and pp.normalized = n.prefix"""
        )
    con.execute("drop table _new_values")
    con.execute("drop table _new_ids")
    return new


def _pseudonymize(con, kind: str, normalized_sql: str) -> None:
    """HMAC each new distinct normalized value once, inside DuckDB."""
    con.execute(
        f"""insert into pseudonyms
            select $kind, s.normalized, plus_pid(k.ipad, k.opad, s.normalized), k.key_version
            from ({normalized_sql}) s
            cross join (select * from _pseudonym_key where kind = $kind) k
            anti join (select normalized from pseudonyms where kind = $kind) p on p.normalized = s.normalized""",
        {"kind": kind},
    )


def learn_user_agents(con, values_sql: str) -> int:
    new = [r[0] for r in con.execute(
        f"""select distinct s.v from ({values_sql}) s
            anti join ua_map m on s.v = m.raw_value where s.v is not null"""
    ).fetchall()]
    if not new:
        return 0
    frame = pd.DataFrame(
        [(v, *parse_user_agent(v)) for v in new], columns=["raw_value", "device_type", "os_family", "browser_family"]
    )
    db.with_frame(con, "_new_uas", frame, "insert into ua_map select * from _new_uas")
    return len(new)


def ensure_visitor_salts(con, days: list[dt.date]) -> None:
    """A fresh random salt for each event day that has none (never derived from the master key)."""
    have = {r[0] for r in con.execute("select day from visitor_salt").fetchall()}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for day in sorted(set(days) - have):
        ipad, opad = hmac_pads(secrets.token_bytes(32))
        con.execute("insert into visitor_salt values (?, ?, ?, ?)", [day, ipad, opad, now])


def rekey(con, key: MasterKey) -> dict:
    """Re-pseudonymize the whole dictionary under ``key`` (rotation), in one transaction.

    Only normalized values are needed, never the old key: the old pseudonyms are replaced, so staging and
    marts rebuilt afterwards carry the new version only.
    """
    register_key(con, key)
    con.execute("begin transaction")
    try:
        before = con.execute("select key_version, count(*) from pseudonyms group by 1 order by 1").fetchall()
        con.execute(
            """create or replace temp table _rekeyed as
               select p.kind, p.normalized, plus_pid(k.ipad, k.opad, p.normalized) as pseudonym, k.key_version
               from pseudonyms p join _pseudonym_key k using (kind)"""
        )
        # Pending deletion requests hold pseudonyms of the old version: carry them over while the
        # dictionary still knows their values (erased subjects have none left; their blind index, under
        # the separate tombstone key, keeps working).
        con.execute("""update tombstone_subjects set pseudonym = r.pseudonym, key_version = r.key_version
                       from pseudonyms p join _rekeyed r using (kind, normalized)
                       where p.kind = tombstone_subjects.kind and p.pseudonym = tombstone_subjects.pseudonym""")
        con.execute("delete from pseudonyms")
        con.execute("insert into pseudonyms select * from _rekeyed")
        con.execute(
            """update id_map set pseudonym = p.pseudonym, key_version = p.key_version
               from pseudonyms p where p.kind = id_map.kind and p.normalized = id_map.normalized"""
        )
        con.execute(
            """update id_map set prefix_pid = p.pseudonym
               from pseudonyms p where id_map.kind = 'ip' and p.kind = 'ip_prefix' and p.normalized = id_map.prefix"""
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return {"before": before, "after_version": key.version}
