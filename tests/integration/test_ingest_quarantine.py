"""Every malformed row lands in quarantine with its reason; nothing is dropped silently."""

import datetime as dt
import json

import pytest

from plus_analytics.ingest.loader import ingest_partition
from plus_analytics.policy import load_policy
from tests.helpers import opened

pytestmark = pytest.mark.integration

REASON = {
    "bad_json": "invalid JSON", "lone_surrogate": "invalid JSON", "invalid_utf8": "invalid UTF-8",
    "missing_field": "missing required field", "wrong_type": "wrong type for", "oversized": "value too long",
    "bad_enum": "value not allowed", "bad_ip": "invalid ip", "wrong_field_count": "wrong number of fields",
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, landing, key):
    raw = tmp_path_factory.mktemp("raw") / "raw.duckdb"
    man = json.loads((landing / "_manifest.json").read_text())
    with opened(raw) as con:
        for src in load_policy().values():
            for i in range(man["days"]):
                ingest_partition(con, src, dt.date.fromisoformat(man["start"]) + dt.timedelta(days=i), landing, key)
    return raw, man


def test_every_row_accounted_for(loaded):
    raw, man = loaded
    with opened(raw, read_only=True) as con:
        for name, entry in man["sources"].items():
            good = con.execute(f"select count(*) from raw_{name}").fetchone()[0]
            bad = con.execute("select count(*) from quarantine where source = ?", [name]).fetchone()[0]
            assert bad == sum(entry["malformed"].values()), name
            assert good + bad == entry["rows"], name


@pytest.mark.parametrize("kind", sorted(REASON))
def test_each_malformed_kind_quarantined_with_reason(loaded, kind):
    raw, man = loaded
    expected = sum(e["malformed"].get(kind, 0) for e in man["sources"].values())
    assert expected > 0, f"the generator must produce {kind} rows"
    with opened(raw, read_only=True) as con:
        rows = con.execute("select reason, _file, _line from quarantine where reason like ?", [f"%{REASON[kind]}%"]).fetchall()
    assert rows, kind
    assert all(r[1].endswith((".ndjson", ".csv")) and r[2] >= 1 for r in rows)


def test_reasons_never_echo_values(loaded):
    raw, _ = loaded
    with opened(raw, read_only=True) as con:
        reasons = [r[0] for r in con.execute("select distinct reason from quarantine").fetchall()]
    assert all("@" not in r and "Mozilla" not in r for r in reasons)


def test_rerun_replaces_the_day_exactly(loaded, landing, key):
    raw, man = loaded
    src = load_policy()["platform_usage_events"]
    day = dt.date.fromisoformat(man["start"])
    with opened(raw) as con:
        before = con.execute(f"select count(*) from {src.raw_table}").fetchone()[0]
        q_before = con.execute("select count(*) from quarantine").fetchone()[0]
        ingest_partition(con, src, day, landing, key)
        assert con.execute(f"select count(*) from {src.raw_table}").fetchone()[0] == before
        assert con.execute("select count(*) from quarantine").fetchone()[0] == q_before


def _table(con, sql):
    return sorted(map(tuple, con.execute(sql).fetchall()), key=repr)


def _snapshot(raw) -> dict:
    """Everything ingest writes, minus the wall-clock columns."""
    with opened(raw, read_only=True, alias="raw") as con:
        out = {name: _table(con, f"select * exclude (_ingested_at) from raw_{name}") for name in load_policy()}
        out["quarantine"] = _table(con, "select * exclude (quarantined_at) from quarantine")
        out["ingest_log"] = _table(con, "select * exclude (ingested_at) from ingest_log")
        out["text_mentions"] = _table(con, "select * from text_mentions")
        out["id_map"] = _table(con, "select * from id_map")
    return out


@pytest.mark.parametrize("batch_mb", ["192", "0.05"], ids=["one-batch", "batches-of-a-day-or-two"])
def test_batch_of_days_equals_day_by_day(loaded, landing, key, tmp_path, monkeypatch, batch_mb):
    """A backfill (many days, cut into batches that fit memory) writes exactly what ingesting the days
    one by one wrote, including when it starts after days already loaded."""
    from plus_analytics.ingest.loader import ingest_days

    monkeypatch.setenv("PLUS_INGEST_BATCH_MB", batch_mb)

    raw, man = loaded
    days = [dt.date.fromisoformat(man["start"]) + dt.timedelta(days=i) for i in range(man["days"])]
    whole, split = tmp_path / "whole.duckdb", tmp_path / "split.duckdb"
    with opened(whole, alias="raw") as con:
        for src in load_policy().values():
            results = ingest_days(con, src, days, landing, key)
            assert [r.day for r in results] == [d.isoformat() for d in days]
    with opened(split, alias="raw") as con:
        for src in load_policy().values():
            ingest_partition(con, src, days[0], landing, key)
            ingest_days(con, src, days[1:], landing, key)
    expected = _snapshot(raw)
    assert _snapshot(whole) == expected
    assert _snapshot(split) == expected


def _write(landing, day, lines):
    d = landing / "platform_usage_events" / f"dt={day.isoformat()}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "part-00000.ndjson").write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.mark.parametrize("batch", [False, True], ids=["day-by-day", "one-batch"])
def test_duplicate_keys_within_a_delivery_and_across_days(landing, key, tmp_path, batch):
    from plus_analytics.ingest.loader import ingest_days

    src = load_policy()["platform_usage_events"]
    day0 = dt.date.fromisoformat(json.loads((landing / "_manifest.json").read_text())["start"])
    good = []
    for line in (landing / src.name / f"dt={day0.isoformat()}" / "part-00000.ndjson").read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and len(good) < 4:
            good.append(row)
    a, b, c, d = good
    days = [day0 + dt.timedelta(days=i) for i in range(3)]
    mine = tmp_path / "landing"
    _write(mine, days[0], [a, b, a])          # a twice in one delivery
    _write(mine, days[1], [c, b])             # b again on a later day
    _write(mine, days[2], [d, c, c])          # c again, twice, on a later day
    with opened(tmp_path / "raw.duckdb") as con:
        if batch:
            ingest_days(con, src, days, mine, key)
        else:
            for day in days:
                ingest_partition(con, src, day, mine, key)
        loaded = _table(con, "select _dt, _line from raw_platform_usage_events")
        reasons = _table(con, "select _dt, _line, reason from quarantine")
    assert loaded == [(days[0], 1), (days[0], 2), (days[1], 1), (days[2], 1)]
    assert reasons == sorted([
        (days[0], 3, "duplicate key (event_id) within the delivery"),
        (days[1], 2, "duplicate key (event_id): delivered on an earlier day"),
        (days[2], 2, "duplicate key (event_id): delivered on an earlier day"),
        (days[2], 3, "duplicate key (event_id) within the delivery"),
    ], key=repr)
