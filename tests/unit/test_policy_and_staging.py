"""The policy fails closed, and staging compiled from it lets nothing personal out."""

import datetime as dt
import json
from pathlib import Path

import pytest

from plus_analytics.ingest.loader import ingest_partition
from plus_analytics.policy import PolicyError, UndeclaredColumnError, _column, load_policy, policy_table_markdown, product_sources
from plus_analytics.privacy.staging import compile_select
from plus_analytics.storage import lake
from tests.helpers import opened


def test_every_source_declared_and_grouped():
    policy = load_policy()
    assert sorted(policy) == sorted(s for group in product_sources().values() for s in group)
    assert list(product_sources()) == ["platform", "connect", "crm", "adtech"]


def test_no_personal_column_reaches_staging():
    for src in load_policy().values():
        out = set(src.staging_columns())
        for c in src.columns:
            if c.rule in ("drop", "pseudonymize", "generalize", "derive"):
                assert c.name not in out, f"{src.name}.{c.name} ({c.rule}) must not reach staging under its own name"
        sql = compile_select(src)
        for c in src.columns:
            if c.rule == "drop":
                assert f'r."{c.name}"' not in sql, f"dropped column {src.name}.{c.name} is read by staging SQL"


def test_compiled_staging_columns_match_policy(tmp_path, key, landing):
    """Run the compiled SQL for real: its output columns are exactly the policy's staging columns."""
    from plus_analytics.privacy.staging import stage_source

    raw = tmp_path / "raw.duckdb"
    policy = load_policy()
    with opened(raw) as con:
        for src in policy.values():
            ingest_partition(con, src, dt.date(2026, 10, 1), landing, key)
    with opened(tmp_path / "stg.duckdb", raw=raw) as con:
        for src in policy.values():
            stage_source(con, src, key, dt.date(2026, 10, 1))
            cols = [r[0] for r in con.execute(f"describe {src.staging_table}").fetchall()]
            assert cols == list(src.staging_columns())


@pytest.mark.parametrize("spec,msg", [
    ({"type": "VARCHAR", "max_length": 5, "rule": "hash"}, "rule must be"),
    ({"type": "VARCHAR", "max_length": 5, "rule": "pseudonymize"}, "needs a kind"),
    ({"type": "VARCHAR", "max_length": 5, "rule": "keep", "kind": "email"}, "cannot be kept"),
    ({"type": "VARCHAR", "rule": "drop"}, "max_length"),
    ({"type": "VARCHAR", "max_length": 5, "rule": "generalize", "how": "zip"}, "generalize needs"),
])
def test_inconsistent_policy_refused(spec, msg):
    with pytest.raises(PolicyError, match=msg):
        _column("c", spec, "s")


def test_undeclared_ndjson_column_fails_closed(tmp_path, key):
    src = load_policy()["platform_consent"]
    day = dt.date(2026, 10, 1)
    part = tmp_path / "landing" / src.name / f"dt={day}"
    part.mkdir(parents=True)
    row = {"consent_id": "c1", "recorded_at": "2026-10-01T10:00:00Z", "cookie_id": "abc", "account_id": None,
           "purpose": "analytics", "granted": True, "source": "banner", "fingerprint": "x"}
    (part / "part-00000.ndjson").write_text(json.dumps(row) + "\n")
    with opened(tmp_path / "raw.duckdb") as con, pytest.raises(UndeclaredColumnError, match="fingerprint"):
        ingest_partition(con, src, day, tmp_path / "landing", key)
    # refused before anything was written: not even the source's table was made
    assert not lake.exists(lake.table_dir(lake.root_of(tmp_path / "raw.duckdb"), src.raw_table))


def test_undeclared_csv_column_fails_closed(tmp_path, key):
    src = load_policy()["adtech_performance"]
    day = dt.date(2026, 10, 1)
    part = tmp_path / "landing" / src.name / f"dt={day}"
    part.mkdir(parents=True)
    (part / "part-00000.csv").write_text("date,campaign_id,impressions,clicks,spend_thb,conversions,viewer_email\n"
                                         "2026-10-01,c1,10,1,2.50,0,a@b.co\n")
    with opened(tmp_path / "raw.duckdb") as con, pytest.raises(UndeclaredColumnError, match="viewer_email"):
        ingest_partition(con, src, day, tmp_path / "landing", key)


def test_policy_table_lists_every_column():
    md = policy_table_markdown()
    for src in load_policy().values():
        for c in src.columns:
            assert f"| {src.name} | {c.name} |" in md


def _visitor_hash(ipad: bytes, opad: bytes, msg: str) -> str:
    """The daily visitor hash of one row, computed in Python (HMAC-SHA-256 from the day's pads, the first
    128 bits as letters), independently of the SQL that stages it."""
    import hashlib

    from plus_analytics.privacy.keys import to_pseudonym

    inner = hashlib.sha256(ipad + msg.encode()).digest()
    return to_pseudonym(hashlib.sha256(opad + inner).hexdigest())


@pytest.mark.parametrize("name", ["platform_usage_events", "adtech_interactions"])
def test_visitor_hash_is_each_rows_own_keyed_hash(tmp_path, key, landing, name):
    """Staging computes the daily visitor hash once per distinct (day, IP, user agent, account), not per
    row: every row must still get the HMAC of its own values under its own day's salt. Checked row by row
    in Python, with rows written straight into the zone that ingest would never produce the same way: no
    IP, an IP the zone never saw, no or an empty user agent, a user agent holding the separator character
    and Thai, no account, and an event on a day that has no salt. Then a restage after the day's salt is
    gone keeps every hash (a salt lives two days)."""
    from plus_analytics.privacy.staging import stage_source

    src = load_policy()[name]
    ip, ua, acct = (src.visitor[k] for k in ("ip", "user_agent", "account"))
    (keycol,) = src.key
    day = dt.date(2026, 10, 1)
    raw = tmp_path / "raw.duckdb"
    hostile = [(ip, None), (ip, "198.51.100.7"), (ua, None), (ua, ""), (ua, "Mozilla\x1f/5.0 ไทย"), (acct, None),
               ("event_ts", dt.datetime(2020, 1, 1, 12))]
    with opened(raw) as con:
        ingest_partition(con, src, day, landing, key)
        con.execute(f"create temp table one as select * from {src.raw_table} where {ip} is not null limit 1")
        con.execute("create temp table hostile as select * from one where false")
        for i, (col, value) in enumerate(hostile):
            con.execute(f'insert into hostile by name select * replace (? as "{col}", ? as "{keycol}", '
                        f'? as _line) from one', [value, f"hostile-{i}", 1_000_000 + i])
        lake.replace_days(con, src.raw_table, [day], f"select * from {src.raw_table} union all select * from hostile")
        pads = {d: (bytes(i_), bytes(o_)) for d, i_, o_ in con.execute("select day, ipad, opad from visitor_salt").fetchall()}
        rows = con.execute(f'select r."{keycol}", cast(r.event_ts as date), m.normalized, r."{ua}", r."{acct}" '
                           f"from {src.raw_table} r left join id_map m on m.kind = 'ip' and m.raw_value = r.\"{ip}\"").fetchall()
    assert dt.date(2020, 1, 1) not in pads and len(rows) > 50
    want = {k: (_visitor_hash(*pads[d], f"{norm}\x1f{u or ''}\x1f{a or ''}") if norm is not None and d in pads else None)
            for k, d, norm, u, a in rows}
    assert sum(v is None for v in want.values()) == 3  # no IP, an unknown IP, no salt
    with opened(tmp_path / "stg.duckdb", raw=raw) as con:
        stage_source(con, src, key, day)
        got = dict(con.execute(f'select "{keycol}", visitor_hash from {src.staging_table}').fetchall())
    assert got == want
    with opened(raw) as con:
        con.execute("delete from visitor_salt")
    with opened(tmp_path / "stg.duckdb", raw=raw) as con:
        stage_source(con, src, key, day)
        assert dict(con.execute(f'select "{keycol}", visitor_hash from {src.staging_table}').fetchall()) == want


@pytest.mark.parametrize("change", ["parent key not the parent's key", "parent key pseudonymized"])
def test_a_child_must_name_its_parent_by_the_parents_kept_key(tmp_path, change):
    """Late children of an erased parent row are recognised by the parent's key as staging knows it, so a
    policy whose child names its parent otherwise is refused when loaded (fail closed)."""
    import yaml

    from plus_analytics.policy import POLICY_FILE

    spec = yaml.safe_load(Path(POLICY_FILE).read_text())
    conversations = spec["sources"]["connect_conversations"]
    if change == "parent key not the parent's key":
        spec["sources"]["connect_messages"]["parent"]["key"] = "channel"
        spec["sources"]["connect_messages"]["columns"]["channel"] = conversations["columns"]["channel"]
    else:
        conversations["columns"]["conversation_id"].update(rule="pseudonymize", kind="account")
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(PolicyError, match="parent.key must be connect_conversations's whole key, kept as it is"):
        load_policy(str(tmp_path / "sources.yaml"))
