"""Landing files as upstream systems really write them, erased.

* A CRM export with addresses on several lines inside quotes (Faker's en_US addresses hold a line break),
  a lone carriage return inside a quoted value, and a record the CSV reader rejects: ingest numbers every
  record by the line it starts on, and erasing a customer whose record spans lines blanks all of them,
  leaves every other record loadable at the same line, and verifies.
* A quarantined line longer than the part of it the restricted zone keeps, with the subject's account
  after that part: erasure reads the line whole from landing, blanks it, and verifies."""

from __future__ import annotations

import csv
import io
import json

import pytest
from faker import Faker

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.erasure.intake import Request
from plus_analytics.ingest import csv_records
from plus_analytics.ingest.reading import PAYLOAD_KEEP
from plus_analytics.storage import lake
from plus_analytics.storage.files import scan_bytes
from tests.conftest import START
from tests.helpers import copy_home, ctx, erasure_subject, opened, run_erasure

pytestmark = pytest.mark.integration
HEADER = ["customer_id", "account_id", "created_at", "updated_at", "full_name", "phone", "email", "line_id",
          "national_id", "address", "lifecycle_stage"]


def _row(i: int, account: str, address: str, phone: str, email: str) -> list[str]:
    return [f"cus_8800000{i}", account, f"{START}T09:00:00.000Z", f"{START}T10:00:00.000Z", f"Customer {i}", phone, email,
            "", "", address, "customer"]


@pytest.fixture
def home(pipeline, tmp_path) -> Paths:
    return copy_home(pipeline, tmp_path / "home")


@pytest.fixture
def hostile_export(home, key):
    path = sorted((home.landing / "crm_customers" / f"dt={START}").glob("*.csv"))[0]
    kept = path.read_bytes().split(b"\n", 1)[1]  # the generated rows (invalid UTF-8 among them)
    account = kept.split(b",")[1].decode()
    fake = Faker("en_US")
    fake.seed_instance(3)
    subject_address = fake.address()
    assert "\n" in subject_address
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    # quoted: Python's writer quotes a lone CR only when its line terminator holds one
    csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(
        _row(1, account, "12 Soi Sukhumvit\r31", "0810000001", "lone.cr@example.com"))
    buf.write(f"cus_88000002,{account},{START}T09:00:00.000Z,x,Broken,0810000002,broken\r@example.com,,,,lead\n")
    w.writerow(_row(3, account, subject_address, "0810000003", "multi.line@example.com"))
    w.writerow(_row(4, account, fake.address().replace("\n", "\r\n"), "0810000004", "after.crlf@example.com"))
    path.write_bytes(buf.getvalue().encode() + kept)
    steps.ingest.ingest("crm_customers", START, ctx(home, key))
    steps.ingest.stage("crm_customers", START, ctx(home, key))
    return home, path, subject_address


def _loaded(home: Paths) -> dict[str, int]:
    with opened(home.raw_db, read_only=True) as con:
        return dict(con.execute("select customer_id, _line from raw_crm_customers where _dt = ?", [START]).fetchall())


def test_records_are_numbered_by_the_line_they_start_on(hostile_export):
    home, path, _ = hostile_export
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    starts = {r.fields[0]: r.first for r in csv_records.records(csv_records.split_lines(text)) if r.fields}
    loaded = _loaded(home)
    mine = ("cus_88000001", "cus_88000003", "cus_88000004")
    assert {c: loaded[c] for c in mine} == {c: starts[c] for c in mine} == dict(zip(mine, (2, 4, 6), strict=True))
    assert all(loaded[c] == line for c, line in starts.items() if c in loaded)
    with opened(home.raw_db, read_only=True) as con:
        reason = con.execute("select reason from quarantine where _file like 'crm_customers/%' and _dt = ? and _line = 3",
                             [START]).fetchone()
    assert reason == ("malformed CSV record: a line break in an unquoted value",)


def test_erasing_a_record_that_spans_lines_blanks_every_one_of_them(hostile_export, key):
    home, path, address = hostile_export
    before = _loaded(home)
    [rid] = steps.erasure.register([Request("email", "multi.line@example.com", "test DPO")], ctx(home, key))
    out = run_erasure(home, key, report=False)
    assert out["verify"]["verified"] == 1, out
    data = path.read_bytes()
    for part in [*address.split("\n"), "multi.line@example.com", "0810000003", "cus_88000003"]:
        assert part.encode() not in data
    assert scan_bytes([path], [b"multi.line@example.com", address.split("\n")[1].encode()]) == {}
    # every other record is where it was: a fresh ingest of the rewritten file loads it at the same line
    steps.ingest.ingest("crm_customers", START, ctx(home, key))
    after = _loaded(home)
    assert after == {c: line for c, line in before.items() if c != "cus_88000003"}


def test_a_quarantined_line_longer_than_its_kept_payload_is_found_whole(home, key):
    subject = erasure_subject(home.raw_db)
    path = sorted((home.landing / "platform_usage_events" / f"dt={START}").glob("*.ndjson"))[0]
    event = {"event_id": "ev_long_000001", "event_ts": f"{START}T10:00:00Z", "user_agent": "Mozilla/5.0 " + "x" * PAYLOAD_KEEP,
             "session_id": "ses_long_1", "cookie_id": None, "product": "crm", "event_type": "page_view",
             "feature": "contacts", "ip": "1.46.3.4", "account_id": subject["account"]}  # the account past the kept part
    path.write_bytes(path.read_bytes() + json.dumps(event).encode() + b"\n")
    steps.ingest.ingest("platform_usage_events", START, ctx(home, key))
    with opened(home.raw_db, read_only=True) as con:
        [(payload,)] = con.execute("select payload from quarantine where payload like '%ev_long_000001%'").fetchall()
        kept = {(src, f, n): (d, text) for src, f, n, d, text in con.execute(
            "select source, _file, _line, _dt, payload from quarantine where payload not like '%ev_long_000001%'").fetchall()}
    assert subject["account"] not in payload
    tables = lake.root_of(home.raw_db)
    before = {p.relative_to(tables) for p in tables.glob("quarantine_*/_dt=*/*.parquet")}
    steps.erasure.register([Request("email", subject["email"], "test DPO")], ctx(home, key))
    out = run_erasure(home, key, report=False)
    assert out["verify"]["verified"] == 1, out
    with opened(home.raw_db, read_only=True) as con:  # its lines are gone from quarantine, every other one kept
        assert con.execute("select count(*) from quarantine where payload like '%ev_long_000001%'").fetchone()[0] == 0
        left = set(con.execute("select source, _file, _line from quarantine").fetchall())
    assert left <= set(kept)
    forms = {f.strip() for f in subject["forms"] if len(f.strip()) >= 6}
    for line in set(kept) - left:  # the erasure's other lines: the person's
        assert any(f in kept[line][1] for f in forms), kept[line]
    after = {p.relative_to(tables) for p in tables.glob("quarantine_*/_dt=*/*.parquet")}
    rewritten = {("quarantine_platform_usage_events", f"_dt={START}")} | {
        (f"quarantine_{line[0]}", f"_dt={kept[line][0]}") for line in set(kept) - left}
    partition = lambda p: (p.parts[0], p.parts[1])  # noqa: E731
    assert {partition(p) for p in before ^ after} == rewritten  # only the partitions holding its lines were rewritten
    assert {partition(p) for p in before} - rewritten, "partitions of quarantined lines the erasure left as they were"
    assert b"ev_long_000001" not in path.read_bytes() and subject["account"].encode() not in path.read_bytes()
