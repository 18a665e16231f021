"""Resolution's fixpoint (plus_analytics.erasure.resolve.expand) finds exactly what the definition says:
every identifier in a subject column of a row that holds one already found, to the end of the chain,
checked against a plain Python fixpoint over the same rows, on hostile and generated graphs, with no
Airflow and no files (DuckDB in memory standing in for the restricted zone)."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from plus_analytics.erasure.requests import SQL
from plus_analytics.erasure.resolve import expand
from plus_analytics.policy import load_policy
from plus_analytics.storage import sql as sqlf

SOURCES = [s for s in load_policy().values() if s.subject]


def pseudonym(kind: str, value: str) -> str:
    """Normalization stands in as case and space folding: several written forms, one pseudonym."""
    return f"{kind}:{value.strip().lower()}"


def zone(rows: dict[str, list[tuple]]):
    """A session like resolution's: ``raw.id_map`` and ``lake.<raw table>`` (where a row is, and the
    subject columns)."""
    con = duckdb.connect()
    con.execute("attach ':memory:' as raw")
    con.execute("attach ':memory:' as lake")
    con.execute("create table raw.id_map (kind varchar, raw_value varchar, pseudonym varchar)")
    ids = set()
    for src in SOURCES:
        cols = ", ".join(f'"{c}" varchar' for c in src.subject)
        con.execute(f"create table lake.{src.raw_table} (_file varchar, _line bigint, {cols})")
        for line, row in enumerate(rows.get(src.name, []), 1):
            con.execute(f"insert into lake.{src.raw_table} values (?, ?, {', '.join('?' * len(row))})", ["f", line, *row])
            ids |= {(src.column(c).kind, v) for c, v in zip(src.subject, row) if v is not None}
    for k, v in sorted(ids):
        con.execute("insert into raw.id_map values (?, ?, ?)", [k, v, pseudonym(k, v)])
    return con


def resolved(rows: dict[str, list[tuple]], seeds: dict[str, tuple[str, str]]) -> set[tuple[str, str, str]]:
    con = zone(rows)
    sqlf.run(con, SQL, "subjects_table")
    con.executemany("insert into _subjects values (?, ?, ?)", [(r, k, pseudonym(k, v)) for r, (k, v) in seeds.items()])
    expand(con, SOURCES)
    return set(con.execute("select * from _subjects").fetchall())


def definition(rows: dict[str, list[tuple]], seeds: dict[str, tuple[str, str]]) -> set[tuple[str, str, str]]:
    found = {(r, k, pseudonym(k, v)) for r, (k, v) in seeds.items()}
    while True:
        more = set(found)
        for src in SOURCES:
            for row in rows.get(src.name, []):
                held = {(src.column(c).kind, pseudonym(src.column(c).kind, v)) for c, v in zip(src.subject, row) if v is not None}
                for rid in {r for r, k, p in found if (k, p) in held}:
                    more |= {(rid, k, p) for k, p in held}
        if more == found:
            return found
        found = more


def test_a_chain_longer_than_any_round_limit_is_followed_to_its_end():
    """A cookie's consent names an account, whose usage names the next cookie, and so on for 20 hops;
    a second request's chain shares nothing with the first."""
    usage = [(f"acct-{i}", f"sess-{i}", f"cookie-{i + 1}") for i in range(20)]
    consent = [(f"cookie-{i}", f"acct-{i}") for i in range(20)] + [("other-cookie", "other-acct")]
    rows = {"platform_usage_events": usage, "platform_consent": consent}
    seeds = {"r1": ("cookie", "COOKIE-0 "), "r2": ("cookie", "other-cookie")}
    got = resolved(rows, seeds)
    assert got == definition(rows, seeds)
    assert ("r1", "cookie", pseudonym("cookie", "cookie-20")) in got
    assert {p for r, _, p in got if r == "r2"} == {pseudonym("cookie", "other-cookie"), pseudonym("account", "other-acct")}


def test_identifiers_link_across_sources_through_a_shared_kind():
    """An account's email, written differently, is a CRM customer's: the customer and its LINE id follow."""
    rows = {"crm_customers": [("cust-1", "081", "A@B.co ", "U1", None)], "platform_accounts": [("acct-9", "a@b.co", None)]}
    got = resolved(rows, {"r": ("account", "acct-9")})
    assert got == definition(rows, {"r": ("account", "acct-9")})
    assert {("r", "customer", pseudonym("customer", "cust-1")), ("r", "platform_user", pseudonym("platform_user", "U1"))} <= got


POOL = st.sampled_from(["a", "b", "c", "d", "A ", " b", "e", "f"])  # few values: rows collide, chains form


def _row(src):
    return st.tuples(*[st.one_of(st.none(), POOL) for _ in src.subject])


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({s.name: st.lists(_row(s), max_size=6) for s in SOURCES}),
       st.dictionaries(st.sampled_from(["r1", "r2", "r3"]),
                       st.tuples(st.sampled_from(sorted({s.column(c).kind for s in SOURCES for c in s.subject})), POOL),
                       min_size=1, max_size=3))
def test_agrees_with_the_definition(rows, seeds):
    assert resolved(rows, seeds) == definition(rows, seeds)
