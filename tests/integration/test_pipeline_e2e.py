"""End to end through real Airflow (dag.test) on generated data."""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import json
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from plus_analytics.gate import scan
from plus_analytics.gate.run import GateFailed
from tests.helpers import attach_restricted, build, gate, opened, publish

pytestmark = pytest.mark.integration
IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")


def _valid_ip(v) -> bool:
    if not isinstance(v, str):
        return False
    v = v.strip()
    if ":" in v:
        try:
            addr = ipaddress.IPv6Address(v.split("%")[0])
        except ValueError:
            return False
        tail = v.rsplit(":", 1)[-1]
        return "." not in tail or bool(IPV4.match(tail)) or addr is None
    return bool(IPV4.match(v))


def _usage_rows(landing: Path):
    """An independent reading of the usage-event exports: strict JSON, required fields, types, limits."""
    req = ("event_id", "event_ts", "account_id", "session_id", "product", "event_type", "ip")
    for f in sorted((landing / "platform_usage_events").glob("dt=*/*.ndjson")):
        for raw in f.read_bytes().split(b"\n"):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
                json.dumps(row, ensure_ascii=False).encode("utf-8")  # lone surrogates fail here
            except (UnicodeError, ValueError):
                continue
            if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in req):
                continue
            if row["product"] not in ("connect", "crm", "adtech", "platform") or not _valid_ip(row["ip"]):
                continue
            if any(isinstance(row.get(k), str) and len(row[k]) > n for k, n in (("user_agent", 1024), ("event_type", 40), ("feature", 60))):
                continue
            if any(row.get(k) is not None and not isinstance(row.get(k), str) for k in ("feature", "user_agent", "cookie_id")):
                continue
            try:
                ts = dt.datetime.fromisoformat(row["event_ts"])
            except ValueError:
                continue
            yield ts.date(), row


def test_published_database_holds_only_documented_marts(pipeline):
    with opened(pipeline.analytics_db, read_only=True) as con:
        tables = dict(con.execute("select table_name, estimated_size from duckdb_tables()").fetchall())
        for t in tables:
            assert t.startswith("mart_") or t in ("meta_build_info", "meta_consent_exclusions")
            assert con.execute(f"select count(*) from {t}").fetchone()[0] > 0, f"{t} is empty"
    assert {"mart_daily_active_usage", "mart_feature_usage", "mart_chat_volume", "mart_crm_activity",
            "mart_crm_pipeline", "mart_ad_performance"} <= set(tables)


def test_every_published_table_and_column_carries_its_definition(pipeline):
    """The data dictionary is in the database itself, for `describe` and any SQL client."""
    from plus_analytics.marts.dictionary import load_dictionary

    spec = load_dictionary()
    with opened(pipeline.analytics_db, read_only=True) as con:
        tables = dict(con.execute("select table_name, comment from duckdb_tables() where not internal").fetchall())
        columns = con.execute("select table_name, column_name, comment from duckdb_columns() where not internal "
                              "order by table_name, column_index").fetchall()
    assert tables == {t: s.description for t, s in spec.items()}
    assert columns and all(comment == spec[t].columns[c] for t, c, comment in columns)


def _analytics_consent(landing: Path) -> dict[str, list[tuple[dt.datetime, bool]]]:
    """cookie -> [(recorded_at, granted)] for the analytics purpose, from the consent exports."""
    out: dict[str, list] = defaultdict(list)
    for f in sorted((landing / "platform_consent").glob("dt=*/*.ndjson")):
        for raw in f.read_bytes().split(b"\n"):
            try:
                row = json.loads(raw.decode("utf-8"))
                json.dumps(row, ensure_ascii=False).encode("utf-8")
                ts = dt.datetime.fromisoformat(row["recorded_at"])
            except (UnicodeError, ValueError, TypeError, KeyError):
                continue
            if (row.get("purpose") == "analytics" and isinstance(row.get("granted"), bool) and isinstance(row.get("cookie_id"), str)
                    and isinstance(row.get("consent_id"), str) and len(row.get("source") or "") <= 40):
                out[row["cookie_id"].strip()].append((ts, row["granted"]))
    return {k: sorted(v) for k, v in out.items()}


def _consented(history, ts) -> bool:
    state = True  # first-party analytics counts unless denied or withdrawn at the time
    for when, granted in history or ():
        if when <= ts:
            state = granted
    return state


def test_usage_mart_matches_independent_count(pipeline):
    events, accounts = defaultdict(int), defaultdict(set)
    consent = _analytics_consent(pipeline.landing)
    for day, row in _usage_rows(pipeline.landing):
        if row.get("cookie_id") and not _consented(consent.get(row["cookie_id"].strip()), dt.datetime.fromisoformat(row["event_ts"])):
            continue
        events[(day, row["product"])] += 1
        accounts[(day, row["product"])].add(row["account_id"].strip())
    with opened(pipeline.analytics_db, read_only=True) as con:
        got = {(d, p): (e, a) for d, p, e, a in con.execute(
            "select day, product, events, active_accounts from mart_daily_active_usage where dimension = 'all'").fetchall()}
    assert got, "no usage rows published"
    for cell, n in events.items():
        if len(accounts[cell]) >= 5:
            assert got[cell] == (n, len(accounts[cell])), cell
        else:
            assert cell not in got, f"{cell} describes fewer than k accounts and must be suppressed"


def test_ad_performance_matches_csv(pipeline):
    want = {}
    for f in sorted((pipeline.landing / "adtech_performance").glob("dt=*/*.csv")):
        with open(f, encoding="utf-8", errors="replace", newline="") as fh:
            for r in csv.DictReader(fh):
                try:
                    if None in r.values() or None in r or int(r["impressions"]) < 0:
                        continue
                    want[(dt.date.fromisoformat(r["date"]), r["campaign_id"])] = int(r["impressions"])
                except (ValueError, TypeError, KeyError):
                    continue
    with opened(pipeline.analytics_db, read_only=True) as con:
        got = {(d, c): i for d, c, i in con.execute("select day, campaign_id, impressions from mart_ad_performance").fetchall()}
        bad_ctr = con.execute("select count(*) from mart_ad_performance where ctr < 0 or ctr > 1").fetchone()[0]
    assert got == want
    assert bad_ctr == 0


def test_staging_holds_no_raw_personal_data(pipeline):
    from plus_analytics.policy import load_policy

    # Row and object ids the policy keeps (event_id, message_id ...) are digit runs that can look like a
    # phone to a pattern detector; they are not personal data. The canary still checks every column.
    object_ids = {f"staging:{s.staging_table}.{c.name}" for s in load_policy().values() for c in s.columns
                  if c.rule == "keep" and c.name.endswith("_id")}
    with opened(pipeline.staging_db, read_only=True, raw=pipeline.raw_db) as con:
        findings = [f for f in scan.scan_catalog(con, "staging", max_len=10_000) if f.location not in object_ids]
        findings += scan.canary(con, "staging", "raw")
    assert findings == []


def test_analyst_session_survives_a_publish(pipeline):
    """An analyst (another process) keeps a read-only session open while the pipeline builds and
    publishes: neither side waits or fails; the open session keeps its snapshot, a new one sees the new build."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import duckdb, sys
        con = duckdb.connect({str(pipeline.analytics_db)!r}, read_only=True)
        print(con.execute('select build_id from meta_build_info').fetchone()[0], flush=True)
        sys.stdin.readline()  # hold the session open until the pipeline has published
        print(con.execute('select build_id from meta_build_info').fetchone()[0], flush=True)
        print(con.execute('select count(*) from mart_ad_performance').fetchone()[0], flush=True)
        """)
    analyst = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    old_build = analyst.stdout.readline().strip()
    b = build(pipeline)
    assert publish(pipeline, b, gate(pipeline, b))["build_id"] == b.build_id
    out, _ = analyst.communicate("go\n", timeout=60)
    still, count = out.split()
    assert analyst.returncode == 0
    assert still == old_build and int(count) > 0
    fresh = subprocess.run([sys.executable, "-c", f"import duckdb; print(duckdb.connect({str(pipeline.analytics_db)!r}, "
                            "read_only=True).execute('select build_id from meta_build_info').fetchone()[0])"],
                           capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == b.build_id


LEAKS = {
    "email": "select raw_value from raw.id_map where kind = 'email' and error is null limit 1",
    "ip": "select raw_value from raw.id_map where kind = 'ip' and error is null limit 1",
    "phone": "select raw_value from raw.id_map where kind = 'phone' and error is null limit 1",
    "national_id": "select raw_value from raw.id_map where kind = 'national_id' and error is null limit 1",
    "message_text": "select text from lake.raw_connect_messages where text is not null and length(text) > 10 limit 1",
    "name": "select full_name from lake.raw_crm_customers where full_name is not null limit 1",
}


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_gate_blocks_a_leaking_mart(pipeline, leak):
    """A mart SQL change that copies a raw value into a mart column is blocked; the published DB is unchanged."""
    before = pipeline.analytics_db.read_bytes()
    b = build(pipeline)
    con = duckdb.connect(str(b.path))
    attach_restricted(con, pipeline.raw_db)
    value = con.execute(LEAKS[leak]).fetchone()[0]
    con.execute("update mart_feature_usage set feature = $v where rowid = 0", {"v": value})
    con.execute("detach raw")
    con.execute("detach lake")
    con.execute("checkpoint")
    con.close()
    with pytest.raises(GateFailed) as exc:
        gate(pipeline, b)
    assert b.path.exists(), "a failing build is kept for inspection"
    assert pipeline.analytics_db.read_bytes() == before
    report_dir = pipeline.reports / "gate" / b.build_id
    assert (report_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists(), "GX Data Docs built"
    for f in report_dir.rglob("*"):
        if f.is_file() and "static" not in f.parts:  # static/: GX's packaged css, fonts and logos
            assert value.encode() not in f.read_bytes(), f"the gate report {f} echoes the leaked value"
    assert value not in str(exc.value)
