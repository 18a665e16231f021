"""Erasure end to end: a subject with chats, CRM records, ad interactions and usage events is erased
everywhere, provably, and stays erased."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil

import duckdb
import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.erasure.intake import Request
from plus_analytics.ingest.loader import ingest_partition
from plus_analytics.ledger import evidence
from plus_analytics.policy import load_policy
from plus_analytics.privacy.staging import stage_source
from plus_analytics.storage.files import scan_bytes
from tests.helpers import attach_restricted, build, copy_home, ctx, erasure_subject, opened, run_erasure

pytestmark = pytest.mark.integration
MARTS = ["mart_daily_active_usage", "mart_feature_usage", "mart_chat_volume", "mart_crm_activity",
         "mart_crm_pipeline", "mart_ad_performance"]


def _marts(path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    out = {m: con.execute(f"select * from {m} order by all").fetchall() for m in MARTS}
    con.close()
    return out


@pytest.fixture(scope="module")
def erased(pipeline, tmp_path_factory, key):
    home = copy_home(pipeline, tmp_path_factory.mktemp("erasure-home"))
    subject = erasure_subject(home.raw_db)
    with opened(home.raw_db, read_only=True) as con:
        before_rows = {s.raw_table: con.execute(f"select count(*) from {s.raw_table}").fetchone()[0] for s in load_policy().values()}
        others = {r[0] for r in con.execute("select distinct account_id from raw_platform_usage_events where account_id <> ?",
                                            [subject["account"]]).fetchall()}
    before_bytes = scan_bytes(home.home, [f.encode() for f in subject["forms"]])
    [rid] = steps.erasure.register([Request("email", "  " + subject["email"].upper() + " ", "test DPO")], ctx(home, key))
    result = run_erasure(home, key)
    return dict(home=home, subject=subject, rid=rid, result=result, before_rows=before_rows, others=others,
                before_bytes=before_bytes)


def test_request_verified(erased):
    assert erased["result"]["verify"]["requests"] == 1 and erased["result"]["verify"]["verified"] == 1
    with opened(erased["home"].privacy_db, read_only=True) as con:
        assert con.execute("select status from tombstones where request_id = ?", [erased["rid"]]).fetchone()[0] == "verified"
        assert con.execute("select count(*) from tombstone_subjects where request_id = ?", [erased["rid"]]).fetchone()[0] >= 5


def test_no_row_anywhere(erased):
    s, home = erased["subject"], erased["home"]
    con = duckdb.connect()
    attach_restricted(con, home.raw_db)
    for src in load_policy().values():
        for c in src.identifier_columns:
            n = con.execute(f'select count(*) from lake.{src.raw_table} where "{c.name}" in (select unnest(?))', [s["forms"]]).fetchone()[0]
            assert n == 0, f"{src.raw_table}.{c.name}"
    con.close()


def test_no_byte_anywhere_under_the_data_directory(erased):
    needles = [f.encode() for f in erased["subject"]["forms"]]
    assert scan_bytes(erased["home"].home, needles) == {}


def test_the_byte_scan_saw_the_subject_before(erased):
    """The scan above finds nothing because nothing is left, not because it cannot see: before the erasure
    it found the subject in the restricted database (its identifier maps, stored uncompressed) and in the
    rows' data files."""
    before = erased["before_bytes"]
    assert str(erased["home"].raw_db) in before, sorted(before)
    assert any("/lake/raw_" in f and f.endswith(".parquet") for f in before), sorted(before)


def test_other_subjects_untouched(erased):
    with opened(erased["home"].raw_db, read_only=True) as con:
        still = {r[0] for r in con.execute("select distinct account_id from raw_platform_usage_events").fetchall()}
        after = {s.raw_table: con.execute(f"select count(*) from {s.raw_table}").fetchone()[0] for s in load_policy().values()}
    assert erased["others"] <= still
    removed = sum(erased["before_rows"].values()) - sum(after.values())
    assert 0 < removed < 0.2 * sum(erased["before_rows"].values())
    assert after["raw_adtech_performance"] == erased["before_rows"]["raw_adtech_performance"]


def test_marts_equal_a_build_without_the_subject(erased, key, tmp_path):
    """Ingest the rewritten landing files from scratch: the marts must equal the published ones."""
    home = erased["home"]
    fresh = Paths(tmp_path / "fresh").ensure()
    shutil.copytree(home.landing, fresh.landing, dirs_exist_ok=True)
    man = json.loads((fresh.landing / "_manifest.json").read_text())
    days = [dt.date.fromisoformat(man["start"]) + dt.timedelta(days=i) for i in range(man["days"])]
    with opened(fresh.raw_db) as con:
        for src in load_policy().values():
            for d in days:
                ingest_partition(con, src, d, fresh.landing, key)
    with opened(fresh.staging_db, raw=fresh.raw_db) as con:
        for src in load_policy().values():
            stage_source(con, src, key)
    b = build(fresh)
    assert _marts(b.path) == _marts(home.analytics_db)


def test_staging_equals_a_full_restage(erased, key, tmp_path):
    """Erasure touches only the staging rows it must: the result equals restaging everything from the
    erased restricted zone."""
    from plus_analytics.privacy.staging import restage_all

    home = erased["home"]
    with opened(home.privacy_db, read_only=True) as con:  # the case that needs restaging, not just deleting
        assert con.execute("select count(*) from erasure_evidence where location like '%(redacted references)'").fetchone()[0]
    full = tmp_path / "restaged.duckdb"
    shutil.copy(home.staging_db, full)
    with opened(full, alias="stg", raw=home.raw_db, cur=home.staging_db) as con:
        restage_all(con, list(load_policy().values()), key)
        tables = [r[0] for r in con.execute(
            "select table_name from duckdb_tables() where database_name = 'cur' order by 1").fetchall()]
        assert "stg_platform_usage_events" in tables
        for t in tables:
            if t in ("staging_version", "staging_changes", "staging_changes_trimmed", "retention_log"):
                continue  # bookkeeping: the watermark and its change log differ by design
            for a, b in (("cur", "stg"), ("stg", "cur")):
                extra = con.execute(f"select count(*) from (select * from {a}.{t} except all select * from {b}.{t})").fetchone()[0]
                assert extra == 0, f"{t}: {extra} rows in {a} only"


def test_evidence_is_chained_and_report_has_no_identifier(erased):
    home = erased["home"]
    with opened(home.privacy_db) as con:
        assert evidence.verify_chain(con)[0]
        events = {r[0] for r in con.execute("select event from erasure_evidence where request_id = ?", [erased["rid"]]).fetchall()}
        where, detail = con.execute("select location, detail from erasure_evidence where request_id = ? and event = 'rewritten'",
                                    [erased["rid"]]).fetchone()
    # The rewrite's evidence names where the rows' old snapshots went: every table, the version it kept.
    assert "restricted/lake" in where
    for src in load_policy().values():
        assert re.search(rf"{src.raw_table} at version \d+: \d+ data file\(s\) and \d+ log file\(s\) deleted", detail), src.name
    assert {"registered", "resolved", "removed", "restaged", "published", "rewritten", "verified_rows", "verified_staging",
            "verified_marts", "verified_bytes", "verified"} <= events
    out = steps.erasure.report(ctx(home))
    assert out["verified"] >= 1 and out["overdue"] == 0 and out["chain_intact"]
    written = [f for f in (home.reports / "dpo").rglob("*") if f.is_file()]
    assert any(f.parent.name == "certificates" for f in written)
    for f in written:  # the report, the public key, the certificates (payload, signature, JSON, HTML)
        data = f.read_bytes()
        assert not any(form.encode() in data for form in erased["subject"]["forms"]), f.name


def test_tampering_breaks_the_chain(erased, tmp_path):
    copy = tmp_path / "privacy.duckdb"
    shutil.copy(erased["home"].privacy_db, copy)
    with opened(copy) as con:
        seq = con.execute("select min(seq) from erasure_evidence where rows_removed is not null").fetchone()[0]
        con.execute("update erasure_evidence set rows_removed = rows_removed + 1 where seq = ?", [seq])
        assert evidence.verify_chain(con) == (False, seq)


def test_second_run_is_idempotent(erased, key):
    home = erased["home"]
    before = _marts(home.analytics_db)
    again = run_erasure(home, key, report=False)
    assert all("skipped" in out for out in again.values()), again
    assert _marts(home.analytics_db) == before


def test_late_arrival_suppressed(erased, key):
    """A late event for the erased account (a re-sync) is dropped at ingest, counted, and blanked."""
    home, s = erased["home"], erased["subject"]
    day = dt.date(2026, 12, 1)
    part = home.landing / "platform_usage_events" / f"dt={day}"
    part.mkdir(parents=True)
    late = {"event_id": "ev_late_1", "event_ts": "2026-12-01T10:00:00Z", "account_id": s["account"], "session_id": "ses_late",
            "cookie_id": None, "product": "crm", "event_type": "page_view", "feature": "contacts", "ip": "1.46.3.4",
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
    other = dict(late, event_id="ev_late_2", account_id="acc_9999999", session_id="ses_other")
    (part / "part-00000.ndjson").write_text(json.dumps(late) + "\n" + json.dumps(other) + "\n")
    out = steps.ingest.ingest("platform_usage_events", day, ctx(home, key))
    assert out["rows_suppressed"] == 1 and out["rows_loaded"] == 1
    with opened(home.privacy_db, read_only=True) as con:
        n = con.execute("select rows_removed from erasure_evidence where request_id = ? and event = 'suppressed'",
                        [erased["rid"]]).fetchone()[0]
        assert n == 1
    with opened(home.raw_db, read_only=True) as con:
        assert con.execute("select count(*) from id_map where raw_value = ?", [s["account"]]).fetchone()[0] == 0
    assert s["account"].encode() not in (part / "part-00000.ndjson").read_bytes()



def test_a_signed_certificate_verifies_offline_and_holds_no_identifier(erased, tmp_path, capsys):
    import shutil as sh
    import subprocess

    from plus_analytics.cli import main

    dpo = erased["home"].reports / "dpo"
    cert, key = dpo / "certificates" / f"{erased['rid']}.json", dpo / "certificate_public_key.pem"
    assert cert.exists() and key.exists()
    for f in (dpo / "certificates").glob(f"{erased['rid']}.*"):
        data = f.read_bytes()
        assert not any(form.encode() in data for form in erased["subject"]["forms"]), f.name
    assert main(["certificate", "verify", str(cert), "--public-key", str(key)]) == 0
    assert "valid" in capsys.readouterr().out
    payload = json.loads(cert.read_text())["payload"]
    assert payload["outcome"] == "verified" and set(payload["checks"]) == {
        "verified_rows", "verified_staging", "verified_marts", "verified_bytes"}
    assert all(c["result"] == 0 for c in payload["checks"].values()) and payload["evidence_chain"]["intact"]
    forged = json.loads(cert.read_text())
    forged["payload"]["completed_at"] = "2020-01-01 00:00:00"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert main(["certificate", "verify", str(tmp_path / "forged.json"), "--public-key", str(key)]) == 1
    assert "INVALID" in capsys.readouterr().out
    if sh.which("openssl"):  # the one-command check a data subject can run with nothing of ours installed
        done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin", "-in",
                               str(cert.with_suffix(".payload")), "-sigfile", str(cert.with_suffix(".sig"))],
                              capture_output=True, text=True)
        assert done.returncode == 0 and "Verified Successfully" in done.stdout, done.stdout + done.stderr
