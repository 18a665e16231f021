"""Retention destroys expired data in every layer and in the bytes; consent decides what feeds the marts."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.policy import load_policy
from plus_analytics.policy.retention import load_retention
from plus_analytics.storage.files import scan_bytes
from tests.conftest import START
from tests.helpers import between_reading_and_writing, build, copy_home, ctx, opened

pytestmark = pytest.mark.integration



def _spec(rows_days: int, column_days: int):
    spec = load_retention()
    days = lambda p, n: p.model_copy(update={"days": n})  # noqa: E731
    return spec.model_copy(update={
        "landing": days(spec.landing, 1), "raw": {k: days(v, rows_days) for k, v in spec.raw.items()},
        "raw_columns": tuple(days(r, column_days) for r in spec.raw_columns),
        **{k: days(getattr(spec, k), rows_days) for k in ("quarantine", "visitor_salt", "staging")}})


def enforce(home: Paths, as_of, spec) -> dict:
    return steps.retention.enforce(as_of, ctx(home), spec=spec)


def test_expired_partitions_leave_every_layer_and_the_bytes(pipeline, tmp_path):
    home = copy_home(pipeline, tmp_path / "home")
    policy = load_policy()
    with opened(home.raw_db, read_only=True) as con:
        before = {s.raw_table: dict(con.execute(f"select _dt, count(*) from {s.raw_table} group by 1").fetchall()) for s in policy.values()}
        q_before = {s.quarantine_table: dict(con.execute("select _dt, count(*) from quarantine where source = ? group by 1",
                                                         [s.name]).fetchall()) for s in policy.values()}
        day0_ids = [r[0] for r in con.execute("select event_id from raw_platform_usage_events where _dt = ? limit 50", [START]).fetchall()]
        day0_ids += [r[0] for r in con.execute("select message_id from raw_connect_messages where _dt = ? limit 50", [START]).fetchall()]
        later = con.execute("select count(*) from raw_platform_usage_events where _dt > ?", [START]).fetchone()[0]
    assert day0_ids and scan_bytes(home.home, [i.encode() for i in day0_ids])  # present before

    out = enforce(home, as_of=START + dt.timedelta(days=2), spec=_spec(1, 1))

    assert not any(home.landing.glob(f"*/dt={START}"))
    assert any(home.landing.glob(f"*/dt={START + dt.timedelta(days=1)}"))
    with opened(home.raw_db, read_only=True) as con:
        for s in policy.values():
            assert con.execute(f"select count(*) from {s.raw_table} where _dt <= ?", [START]).fetchone()[0] == 0, s.name
        assert con.execute("select count(*) from raw_platform_usage_events").fetchone()[0] == later
        assert con.execute("select count(*) from quarantine where _dt = ?", [START]).fetchone()[0] == 0
    with opened(home.privacy_db, read_only=True) as con:
        evidence = {(loc, day): n for loc, day, n in con.execute(
            "select location, day, rows_destroyed from retention_evidence where layer = 'restricted'").fetchall()}
    for s in policy.values():  # evidence rows match what was removed, table by table
        if before[s.raw_table].get(START):
            assert evidence[(s.raw_table, START)] == before[s.raw_table][START], s.name
    for table, per_day in q_before.items():  # and each source's quarantined lines, in its own table
        assert evidence.get((table, START), 0) == per_day.get(START, 0), table
    assert sum(per_day.get(START, 0) for per_day in q_before.values()) > 0  # the case is exercised
    with opened(home.staging_db, read_only=True) as con:
        assert con.execute("select count(*) from stg_platform_usage_events where cast(event_ts as date) <= ?", [START]).fetchone()[0] == 0
    assert scan_bytes(home.home, [i.encode() for i in day0_ids]) == {}
    assert out["rows_destroyed"] > 0 and out["landing_partitions_removed"] >= len(policy)


def test_column_retention_destroys_message_text_but_keeps_the_rows(pipeline, tmp_path):
    home = copy_home(pipeline, tmp_path / "home")
    with opened(home.raw_db, read_only=True) as con:
        n_msgs = con.execute("select count(*) from raw_connect_messages").fetchone()[0]
        only_day0 = [r[0] for r in con.execute("""select text from raw_connect_messages where _dt = ? and length(text) > 12
            except select text from raw_connect_messages where _dt > ?""", [START, START]).fetchall()]
    assert only_day0, "the generator writes some texts that appear on one day only"
    enforce(home, as_of=START + dt.timedelta(days=2), spec=_spec(1000, 1))
    with opened(home.raw_db, read_only=True) as con:
        assert con.execute("select count(*) from raw_connect_messages").fetchone()[0] == n_msgs
        assert con.execute("select count(*) from raw_connect_messages where _dt = ? and text is not null", [START]).fetchone()[0] == 0
        assert con.execute("select count(*) from raw_platform_usage_events where _dt = ? and ip is not null", [START]).fetchone()[0] == 0
    assert scan_bytes(home.home, [t.encode() for t in only_day0]) == {}


def test_withdrawal_removes_later_events_from_marts(pipeline, tmp_path, key):
    home = copy_home(pipeline, tmp_path / "home")
    day = START + dt.timedelta(days=1)
    withdrawn_at = dt.datetime.combine(day, dt.time(12, 0))
    # The cookie with the most events that counted (consented) after the moment it will withdraw.
    con = duckdb.connect()
    con.execute(f"attach '{home.staging_db}' as stg (read_only)")
    con.execute(f"attach '{home.raw_db}' as raw (read_only)")
    pid, affected = con.execute("""
        with c as (select cookie_pid, recorded_at, granted from stg.stg_platform_consent where purpose = 'analytics')
        select e.cookie_pid, count(*) from stg.stg_platform_usage_events e
        asof left join c on c.cookie_pid = e.cookie_pid and c.recorded_at <= e.event_ts
        where e.cookie_pid is not null and e.event_ts >= ? and coalesce(c.granted, true)
        group by 1 order by 2 desc, 1 limit 1""", [withdrawn_at]).fetchone()
    cookie = con.execute("select raw_value from raw.id_map where kind = 'cookie' and pseudonym = ? limit 1", [pid]).fetchone()[0]
    con.close()
    assert affected > 0

    def totals(path):
        c = duckdb.connect(str(path), read_only=True)
        out = (c.execute("select sum(events) from mart_daily_active_usage where dimension = 'all'").fetchone()[0],
               c.execute("select sum(events_excluded) from meta_consent_exclusions where purpose = 'analytics'").fetchone()[0])
        c.close()
        return out

    before_events, before_excl = totals(build(home).path)
    part = home.landing / "platform_consent" / f"dt={day}"
    (part / "part-99999.ndjson").write_text(json.dumps({
        "consent_id": "cns_withdrawal_test", "recorded_at": withdrawn_at.isoformat() + "Z", "cookie_id": cookie,
        "account_id": None, "purpose": "analytics", "granted": False, "source": "settings"}) + "\n")
    steps.ingest.ingest("platform_consent", day, ctx(home, key))
    steps.ingest.stage("platform_consent", day, ctx(home, key))
    after_events, after_excl = totals(build(home).path)
    assert after_excl - before_excl == affected
    assert before_events - after_events == affected


def test_an_ingest_that_read_expired_days_before_retention_ran_does_not_bring_them_back(pipeline, tmp_path, monkeypatch):
    """Ingest reads a batch without the zone's lock and writes it under the lock: retention that destroyed
    the batch's first day in between (its landing files and rows) must stay done: the batch is read again
    under the lock, and finds that day gone."""
    home = copy_home(pipeline, tmp_path / "home")
    source = "platform_usage_events"
    with opened(home.raw_db, read_only=True) as con:
        day0 = [r[0] for r in con.execute(f"select event_id from raw_{source} where _dt = ? limit 50", [START]).fetchall()]
    enforced = between_reading_and_writing(
        monkeypatch, lambda: enforce(home, as_of=START + dt.timedelta(days=2), spec=_spec(1, 1)))
    out = steps.ingest.ingest(source, START, ctx(home), until=START + dt.timedelta(days=2))
    monkeypatch.undo()
    assert enforced["rows_destroyed"] > 0
    assert out["rows_read"] == out["rows_loaded"] + out["rows_quarantined"] + out["rows_suppressed"]
    with opened(home.raw_db, read_only=True) as con:
        assert con.execute(f"select count(*) from raw_{source} where _dt <= ?", [START]).fetchone()[0] == 0
        assert con.execute(f"select count(*) from raw_{source} where _dt > ?", [START]).fetchone()[0] > 0
    assert scan_bytes(home.home, [i.encode() for i in day0]) == {}
