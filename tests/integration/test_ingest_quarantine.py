"""Every malformed row lands in quarantine with its reason; nothing is dropped silently."""

import datetime as dt
import json

import pytest

from plus_analytics import db
from plus_analytics.ingest.loader import ingest_partition
from plus_analytics.policy import load_policy

REASON = {
    "bad_json": "invalid JSON", "lone_surrogate": "invalid JSON", "invalid_utf8": "invalid UTF-8",
    "missing_field": "missing required field", "wrong_type": "wrong type for", "oversized": "value too long",
    "bad_enum": "value not allowed", "bad_ip": "invalid ip", "wrong_field_count": "wrong number of fields",
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, landing, key):
    raw = tmp_path_factory.mktemp("raw") / "raw.duckdb"
    man = json.loads((landing / "_manifest.json").read_text())
    with db.opened(raw) as con:
        for src in load_policy().values():
            for i in range(man["days"]):
                ingest_partition(con, src, dt.date.fromisoformat(man["start"]) + dt.timedelta(days=i), landing, key)
    return raw, man


def test_every_row_accounted_for(loaded):
    raw, man = loaded
    with db.opened(raw, read_only=True) as con:
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
    with db.opened(raw, read_only=True) as con:
        rows = con.execute("select reason, _file, _line from quarantine where reason like ?", [f"%{REASON[kind]}%"]).fetchall()
    assert rows, kind
    assert all(r[1].endswith((".ndjson", ".csv")) and r[2] >= 1 for r in rows)


def test_reasons_never_echo_values(loaded):
    raw, _ = loaded
    with db.opened(raw, read_only=True) as con:
        reasons = [r[0] for r in con.execute("select distinct reason from quarantine").fetchall()]
    assert all("@" not in r and "Mozilla" not in r for r in reasons)


def test_rerun_replaces_the_day_exactly(loaded, landing, key):
    raw, man = loaded
    src = load_policy()["platform_usage_events"]
    day = dt.date.fromisoformat(man["start"])
    with db.opened(raw) as con:
        before = con.execute(f"select count(*) from {src.raw_table}").fetchone()[0]
        q_before = con.execute("select count(*) from quarantine").fetchone()[0]
        ingest_partition(con, src, day, landing, key)
        assert con.execute(f"select count(*) from {src.raw_table}").fetchone()[0] == before
        assert con.execute("select count(*) from quarantine").fetchone()[0] == q_before
