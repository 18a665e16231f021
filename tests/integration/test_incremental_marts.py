"""Incremental builds: a build recomputes only the mart days staging changed since the published marts and
merges them in; the result equals a full build from the same staging, through every kind of change the
pipeline makes (a new day, a day delivered again with changes, late consent, erasure, retention), and it
rebuilds only the days the change touched."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.erasure.intake import Request
from plus_analytics.generate import generate
from plus_analytics.policy import load_policy
from tests.conftest import START
from tests.helpers import ctx, opened, table_rows

pytestmark = pytest.mark.integration
DAYS = 4


def _marts(path) -> dict:
    return table_rows(path)


def _meta(path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        mode, rebuilt = con.execute("select build_mode, days_rebuilt from meta_build_info").fetchone()
        return {"mode": mode, "rebuilt": dict(rebuilt)}
    finally:
        con.close()


def _stage(home: Paths, c, first: dt.date, last: dt.date) -> None:
    for src in load_policy():
        steps.ingest.ingest(src, first, c, until=last)
        steps.ingest.stage(src, first, c, until=last)


def _publish_incremental_and_compare(home: Paths, c) -> dict:
    """Build incrementally and publish; then a full build from the same staging must be equal."""
    inc = steps.marts.build(c)
    assert inc["mode"] == "incremental", inc
    steps.marts.publish(inc, steps.marts.gate(inc, c), c)
    full = steps.marts.build(c, full=True)
    assert full["mode"] == "full"
    assert _marts(home.analytics_db) == _marts(full["build_file"]), "incremental build differs from a full build"
    Path(full["build_file"]).unlink()
    return _meta(home.analytics_db)


@pytest.fixture(scope="module")
def home(tmp_path_factory, key):
    home = Paths(tmp_path_factory.mktemp("incremental")).ensure()
    generate(home.landing, days=DAYS, scale=0.3, seed=23, start=START)
    c = ctx(home, key)
    _stage(home, c, START, START + dt.timedelta(days=DAYS - 2))
    b = steps.marts.build(c)
    assert b["mode"] == "full"  # nothing published yet
    steps.marts.publish(b, steps.marts.gate(b, c), c)
    return home


def test_a_new_day_rebuilds_that_day(home, key):
    c = ctx(home, key)
    last = START + dt.timedelta(days=DAYS - 1)
    _stage(home, c, last, last)
    meta = _publish_incremental_and_compare(home, c)
    assert meta["mode"] == "incremental"
    assert 1 <= meta["rebuilt"]["mart_daily_active_usage"] <= 2, meta  # the day (and late events of the one before)
    assert meta["rebuilt"]["mart_chat_volume"] <= 3, meta


def test_a_day_delivered_again_with_changes(home, key):
    """Day 2 re-delivered with a third of its messages and consent records gone: its chat days, and the
    later usage of the cookies whose consent changed, are rebuilt."""
    c = ctx(home, key)
    day = START + dt.timedelta(days=1)
    for name in ("connect_messages", "platform_consent"):
        for f in (home.landing / name / f"dt={day}").glob("part-*"):
            lines = f.read_bytes().split(b"\n")
            f.write_bytes(b"\n".join(line for i, line in enumerate(lines) if i % 3))
    for src in ("connect_messages", "platform_consent"):
        steps.ingest.ingest(src, day, c)
        steps.ingest.stage(src, day, c)
    meta = _publish_incremental_and_compare(home, c)
    assert meta["rebuilt"]["mart_chat_volume"] >= 1 and meta["rebuilt"]["mart_crm_activity"] == 0, meta


def test_erasure_rebuilds_the_subjects_days(home, key):
    c = ctx(home, key)
    with opened(home.raw_db, read_only=True) as con:
        email = con.execute("""select a.email from raw_platform_accounts a join raw_platform_usage_events u using (account_id)
                               where a.email is not null group by 1 order by count(*) desc limit 1""").fetchone()[0]
    steps.erasure.register([Request("email", email, "incremental test")], c)
    for step in ("resolve", "select", "remove", "restage"):
        steps.erasure.STEPS[step](c)
    meta = _publish_incremental_and_compare(home, c)
    assert meta["mode"] == "incremental" and meta["rebuilt"]["mart_daily_active_usage"] >= 1, meta


def test_retention_and_a_key_rotation(home, key, tmp_path):
    """Retention deletes old staging days (rebuilt: gone from the marts too); a key rotation changes every
    pseudonym, which the change log cannot follow day by day: the next build is a full one."""
    c = ctx(home, key)
    steps.retention.enforce(START + dt.timedelta(days=395 + 2), c)
    meta = _publish_incremental_and_compare(home, c)
    assert meta["mode"] == "incremental"
    with opened(home.staging_db) as con:
        from plus_analytics.privacy.staging import log_everything, next_version
        from plus_analytics.storage.duck import transaction

        with transaction(con):
            log_everything(con, next_version(con))
            con.execute("insert into staging_version select max(version) + 1, now(), 'test' from staging_version")
    b = steps.marts.build(c)
    assert b["mode"] == "full"
    steps.marts.publish(b, steps.marts.gate(b, c), c)


def test_changed_mart_sql_means_a_full_build(home, key, monkeypatch):
    from plus_analytics.marts import build as build_module

    c = ctx(home, key)
    monkeypatch.setattr(build_module, "marts_sql_hash", lambda: "abcdefghijklmnop")
    b = steps.marts.build(c, force=True)
    assert b["mode"] == "full"
    shutil.rmtree(home.builds, ignore_errors=True)
    home.builds.mkdir(parents=True, exist_ok=True)
    assert json.dumps(b["tables"])  # counts only
