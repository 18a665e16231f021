"""Erasure steps interleaved with ingest of the same days, as the real scheduler runs them (the
daily ingest DAGs, a backfill and ``plus_erasure`` at once): whatever lands between two steps, the
request ends verified with no byte of the person left; a request that fails verification is carried
out again by the next run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.erasure.intake import Request
from plus_analytics.ingest.loader import ingest_partition
from plus_analytics.policy import load_policy
from plus_analytics.storage.files import scan_bytes
from tests.conftest import DAYS, START
from tests.helpers import (
    between_reading_and_writing,
    between_writing_ahead_and_committing,
    busiest_cookie,
    copy_home,
    ctx,
    erasure_subject,
    opened,
    run_erasure,
)

pytestmark = pytest.mark.integration
LATE_FILE = "part-99999.ndjson"


@pytest.fixture
def home(pipeline, tmp_path) -> Paths:
    return copy_home(pipeline, tmp_path / "home")


def _register(home: Paths, key) -> tuple[str, dict]:
    subject = erasure_subject(home.raw_db)
    [rid] = steps.erasure.register([Request("email", subject["email"], "test DPO")], ctx(home, key))
    return rid, subject


def _reingest_everything(home: Paths, key) -> dict:
    """What a backfill does: every source, every day, ingested and staged again; the sources where people
    are seen by their cookies and accounts last (as when their product's daily DAG runs after the backfill)."""
    c, last = ctx(home, key), START + dt.timedelta(days=DAYS - 1)
    out = {}
    for src in sorted(load_policy(), key=lambda s: s in ("platform_usage_events", "adtech_interactions")):
        out[src] = steps.ingest.ingest(src, START, c, until=last)
        steps.ingest.stage(src, START, c, until=last)
    return out


def _land_event_of(home: Paths, account: str) -> str:
    """A new usage event of ``account`` in a new landing file of the first day (an upstream re-sync)."""
    event = {"event_id": "ev_resync_000001", "event_ts": f"{START}T10:00:00Z", "account_id": account,
             "session_id": "ses_resync_1", "cookie_id": None, "product": "crm", "event_type": "page_view",
             "feature": "contacts", "ip": "1.46.3.4", "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
    path = home.landing / "platform_usage_events" / f"dt={START}" / LATE_FILE
    path.write_text(json.dumps(event) + "\n")
    return str(path)


def _status(home: Paths, rid: str) -> str:
    with opened(home.privacy_db, read_only=True) as con:
        return con.execute("select status from tombstones where request_id = ?", [rid]).fetchone()[0]


def _nothing_left(home: Paths, subject: dict) -> None:
    assert scan_bytes(home.home, [f.encode() for f in subject["forms"]]) == {}


@pytest.mark.parametrize("who", ["person", "cookie"])
def test_an_ingest_between_resolution_and_selection_loses_nothing(home, key, who):
    """A backfill re-ingests every day after the request was resolved and before its rows are selected:
    ingest must not forget the identifiers the selection finds rows by (the cookie's account is referenced
    by other people's CRM records, conversations and campaigns: the references the selection redacts)."""
    if who == "person":
        rid, subject = _register(home, key)
    else:
        subject = {"forms": [busiest_cookie(home.raw_db)]}
        [rid] = steps.erasure.register([Request("cookie_id", subject["forms"][0], "test DPO")], ctx(home, key))
    assert steps.erasure.resolve(ctx(home, key))["requests"] == 1
    reingested = _reingest_everything(home, key)
    assert sum(r["rows_suppressed"] for r in reingested.values()) == 0, "not removed yet: loaded like anyone's"
    out = run_erasure(home, key)
    assert out["verify"]["verified"] == 1, out["verify"]
    assert _status(home, rid) == "verified"
    _nothing_left(home, subject)


@pytest.mark.parametrize("clock", ["same", "behind"])
def test_rows_loaded_between_selection_and_removal_are_removed(home, key, clock):
    """An ingest loads a new row of the subject after the selection was recorded: the removal, under the
    restricted zone's write lock, tops the selection up and removes it too; also when the ingesting
    machine's clock is a day behind the selecting one's (its log stamps an earlier time than the selection)."""
    rid, subject = _register(home, key)
    c = ctx(home, key)
    steps.erasure.resolve(c)
    steps.erasure.select(c)
    late = _land_event_of(home, subject["account"])
    loaded = steps.ingest.ingest("platform_usage_events", START, c)
    assert loaded["rows_suppressed"] == 0
    if clock == "behind":
        with opened(home.raw_db) as con:
            con.execute("update ingest_log set ingested_at = ingested_at - interval 1 day "
                        "where source = 'platform_usage_events' and _dt = ?", [START])
    removed = steps.erasure.remove(c)
    assert removed["selection_topped_up"]["rows"] >= 1, removed
    out = run_erasure(home, key)
    assert out["verify"]["verified"] == 1, out["verify"]
    assert subject["account"].encode() not in Path(late).read_bytes()
    _nothing_left(home, subject)


def test_after_removal_a_late_arrival_is_suppressed(home, key):
    rid, subject = _register(home, key)
    c = ctx(home, key)
    for step in ("resolve", "select", "remove"):
        steps.erasure.STEPS[step](c)
    _land_event_of(home, subject["account"])
    assert steps.ingest.ingest("platform_usage_events", START, c)["rows_suppressed"] == 1
    assert run_erasure(home, key)["verify"]["verified"] == 1
    _nothing_left(home, subject)


def test_a_failed_request_is_carried_out_again_by_the_next_run(home, key):
    """A row of the subject that escaped the removal (loaded with suppression bypassed, as an older
    release or a hand-run load would) makes verification fail; the next run removes it and verifies."""
    rid, subject = _register(home, key)
    c = ctx(home, key)
    for step in ("resolve", "select", "remove"):
        steps.erasure.STEPS[step](c)
    late = _land_event_of(home, subject["account"])
    with opened(home.raw_db) as con:
        assert ingest_partition(con, load_policy()["platform_usage_events"], START, home.landing, key, None).rows_loaded > 0
    first = run_erasure(home, key, report=False)
    assert first["verify"]["failed"] == 1, first["verify"]
    assert _status(home, rid) == "failed"
    second = run_erasure(home, key)
    assert second["resolve"]["requests"] == 1 and second["remove"]["requests"] == 1
    assert second["verify"]["verified"] == 1, second["verify"]
    assert subject["account"].encode() not in Path(late).read_bytes()
    _nothing_left(home, subject)


def test_an_ingest_that_read_its_days_before_the_removal_writes_them_as_removed(home, key, monkeypatch):
    """Ingest reads and checks a batch without the zone's lock, then writes under it: a removal that
    rewrote the batch's landing lines in between (other people's records referencing the person's account,
    redacted in landing and in the zone) must not be undone by the batch's older reading of them. What the
    Celery every-DAG test once found (the erasure's verification failed on a CRM row a backfill wrote)."""
    cookie = busiest_cookie(home.raw_db)
    [rid] = steps.erasure.register([Request("cookie_id", cookie, "test DPO")], ctx(home, key))
    c = ctx(home, key)
    steps.erasure.resolve(c)
    steps.erasure.select(c)
    with opened(home.privacy_db, read_only=True) as con:
        source, redactions = con.execute("select source, count(*) from erasure_redactions where request_id = ? "
                                         "group by 1 order by 2 desc, 1 limit 1", [rid]).fetchone()
    assert redactions > 0
    removed = between_reading_and_writing(monkeypatch, lambda: steps.erasure.remove(c))
    out = steps.ingest.ingest(source, START, c, until=START + dt.timedelta(days=DAYS - 1))
    monkeypatch.undo()
    assert removed.get("requests") == 1, removed
    assert out["rows_read"] == out["rows_loaded"] + out["rows_quarantined"] + out["rows_suppressed"]
    done = run_erasure(home, key)
    assert done["verify"]["verified"] == 1, done["verify"]
    assert _status(home, rid) == "verified"
    _nothing_left(home, {"forms": [cookie]})


def test_a_late_arrival_that_references_or_mentions_an_erased_person_or_belongs_to_them_is_kept_from_the_zone(home, key):
    """After the erasure: another customer's deal owned by the person's account arrives (loaded, the
    reference redacted, as the erasure redacted the others), an activity whose note mentions the person's
    email (dropped, as the erasure drops anyone's free text that mentions them), a message of one of the
    person's erased conversations, and a late conversation of theirs with its message (all dropped, as the
    erasure drops their conversations' messages). Landing is redacted and blanked alike, the maps forget
    the person again, the ledger's evidence counts each, and no byte of the person is left."""
    from plus_analytics.policy import REDACTED
    from tests.helpers import exported_rows

    rid, subject = _register(home, key)
    with opened(home.raw_db, read_only=True) as con:
        conversation = con.execute("select min(conversation_id) from lake.raw_connect_conversations where "
                                   "contact_platform_id = ?", [subject["line_id"]]).fetchone()[0]
    assert conversation
    assert run_erasure(home, key)["verify"]["verified"] == 1
    policy = load_policy()
    message = exported_rows(home.landing, policy["connect_messages"], START)[0]
    chat = next(r for r in exported_rows(home.landing, policy["connect_conversations"], START))
    late = {
        "crm_deals": dict(next(r for r in exported_rows(home.landing, policy["crm_deals"], START)
                               if r["customer_id"] != subject["customer"]), deal_id="deal_late_1", account_id=subject["account"]),
        "crm_activities": dict(next(r for r in exported_rows(home.landing, policy["crm_activities"], START)
                                    if r["customer_id"] != subject["customer"]), activity_id="act_late_1",
                               note=f"asked us to write to {subject['email']} instead"),
        "connect_conversations": dict(chat, conversation_id="conv_late_1", contact_platform_id=subject["line_id"]),
        "connect_messages": [dict(message, message_id="msg_late_1", conversation_id=conversation),
                             dict(message, message_id="msg_late_2", conversation_id="conv_late_1")],
    }
    files = {}
    for source, rows in late.items():
        files[source] = home.landing / source / f"dt={START}" / "part-99998.ndjson"
        files[source].write_text("".join(json.dumps(r) + "\n" for r in (rows if isinstance(rows, list) else [rows])))
    c = ctx(home, key)
    out = {source: steps.ingest.ingest(source, START, c) for source in late}
    assert out["crm_deals"]["references_redacted"] == 1 and out["crm_deals"]["rows_suppressed"] == 0, out["crm_deals"]
    assert out["crm_activities"]["rows_suppressed"] == 1, out["crm_activities"]
    assert out["connect_conversations"]["rows_suppressed"] == 1, out["connect_conversations"]
    assert out["connect_messages"]["rows_suppressed"] == 2, out["connect_messages"]
    with opened(home.raw_db, read_only=True) as con:
        assert con.execute("select account_id from lake.raw_crm_deals where deal_id = 'deal_late_1'").fetchall() == [(REDACTED,)]
        for table, column, value in (("raw_crm_activities", "activity_id", "act_late_1"),
                                     ("raw_connect_conversations", "conversation_id", "conv_late_1"),
                                     ("raw_connect_messages", "message_id", "msg_late_1"),
                                     ("raw_connect_messages", "message_id", "msg_late_2")):
            assert con.execute(f"select count(*) from lake.{table} where {column} = ?", [value]).fetchone()[0] == 0, value
        assert con.execute("select count(*) from id_map where raw_value in (?, ?)",
                           [subject["account"], subject["email"]]).fetchone()[0] == 0
    for source in ("crm_activities", "connect_conversations", "connect_messages"):
        assert not files[source].read_bytes().strip(), source
    assert json.loads(files["crm_deals"].read_text())["account_id"] == REDACTED
    with opened(home.privacy_db, read_only=True) as con:
        evidence = dict(con.execute("select location, rows_removed from erasure_evidence where request_id = ? and "
                                    "event = 'suppressed'", [rid]).fetchall())
    assert evidence == {f"crm_deals (references redacted) {START}": 1, f"crm_activities {START}": 1,
                        f"connect_conversations {START}": 1, f"connect_messages {START}": 2}, evidence
    for source in late:
        steps.ingest.stage(source, START, c)
    _nothing_left(home, subject)


def test_rows_written_ahead_before_an_erasure_are_purged_and_never_committed(home, key, monkeypatch):
    """Ingest writes a batch's rows as data files with the zone's read lock and commits them under the
    write lock. A whole erasure between the two (removal, rewrite with its purge, verification) deletes the
    files no commit named yet, so its verification finds no byte of the person in them; the batch, seeing
    its landing lines rewritten (the removal blanked the person's), is read and checked again under the lock."""
    cookie = busiest_cookie(home.raw_db)
    [rid] = steps.erasure.register([Request("cookie_id", cookie, "test DPO")], ctx(home, key))
    tables = home.raw_db.parent / "lake"
    erased = between_writing_ahead_and_committing(monkeypatch, lambda: run_erasure(home, key, report=False))
    out = steps.ingest.ingest("adtech_interactions", START, ctx(home, key), until=START + dt.timedelta(days=DAYS - 1))
    monkeypatch.undo()
    assert {t for t, _ in erased["written"]} == {"raw_adtech_interactions", "quarantine_adtech_interactions"}, \
        "the batch's rows and quarantined lines were written ahead"
    assert erased["verify"]["verified"] == 1, erased["verify"]
    assert not any((tables / t / f).exists() for t, f in erased["written"]), "files written ahead were purged, never committed"
    assert out["rows_read"] == out["rows_loaded"] + out["rows_quarantined"] + out["rows_suppressed"]
    assert _status(home, rid) == "verified"
    _nothing_left(home, {"forms": [cookie]})
