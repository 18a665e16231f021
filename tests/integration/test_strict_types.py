"""Numbers, dates and timestamps load only in their exact textual forms. DuckDB's casts are lenient: a CSV
value ``12.5`` would load into an integer column as 13, ``0x1F`` as 31, ``1e3`` as 1000, and one such line
would then stop every dashboard at the gate (clicks above impressions). Every lenient form is quarantined
with a reason naming its column and rule, never altered; the exact forms load unchanged.

CSV (adtech_performance: BIGINT, DECIMAL(14,2), DATE) and NDJSON (crm_deals: DECIMAL, TIMESTAMP). In NDJSON a
number is a JSON number (text where a number is declared is the wrong type) whose value the column holds
exactly: ``1e3`` is 1000, ``100.505`` does not fit two decimals."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from plus_analytics.ingest.loader import ingest_partition
from plus_analytics.ingest.validation import exact_form
from plus_analytics.policy import load_policy
from tests.helpers import opened

pytestmark = pytest.mark.integration
DAY = dt.date(2026, 10, 1)

#: (clicks as written, loads as) for a BIGINT column; None: quarantined.
INTEGERS = [
    ("12", 12), ("0", 0), ("9223372036854775807", 9223372036854775807),
    ("12.5", None), ("12.0", None), ("0x1F", None), ("1e3", None), ("1E3", None), ("1_000", None), ("1,000", None),
    (" 12", None), ("12 ", None), ("+12", None), ("012", None), ("-", None), ("", None),
    ("٣", None), ("๓", None), ("１２", None), ("9223372036854775808", None), ("Infinity", None), ("NaN", None),
]
#: (spend_thb as written, loads as) for a DECIMAL(14,2) column.
DECIMALS = [
    ("98.83", Decimal("98.83")), ("98.8", Decimal("98.80")), ("98", Decimal("98.00")), ("0.5", Decimal("0.50")),
    ("98.831", None), ("98,83", None), ("1e2", None), (".5", None), ("5.", None), ("0098.83", None), (" 98.83", None),
    ("๙๘.๘๓", None), ("1234567890123.45", None), ("+98.83", None),
]
#: date as written; only the first loads.
DATES = [("2026-10-01", DAY), ("2026-10-1", None), ("2026/10/01", None), ("20261001", None), ("2026-02-30", None),
         (" 2026-10-01", None), ("01-10-2026", None), ("2026-10-01T00:00:00", None)]


def _csv_case(i: int, date: str = "2026-10-01", clicks: str = "1", spend: str = "1.00") -> str:
    """One CSV record, quoted where a value needs it (``1,000``)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([date, f"cmp_{i:06d}", "1000", clicks, spend, "0"])
    return buf.getvalue()


def test_csv_numbers_and_dates_load_only_in_their_exact_forms(tmp_path, key):
    cases = ([("clicks", v, want, _csv_case(i, clicks=v)) for i, (v, want) in enumerate(INTEGERS)]
             + [("spend_thb", v, want, _csv_case(100 + i, spend=v)) for i, (v, want) in enumerate(DECIMALS)]
             + [("date", v, want, _csv_case(200 + i, date=v)) for i, (v, want) in enumerate(DATES)])
    part = tmp_path / "landing" / "adtech_performance" / f"dt={DAY}"
    part.mkdir(parents=True)
    header = "date,campaign_id,impressions,clicks,spend_thb,conversions"
    (part / "part-00000.csv").write_text("\n".join([header] + [line for *_, line in cases]) + "\n", encoding="utf-8")
    src = load_policy()["adtech_performance"]
    with opened(tmp_path / "raw.duckdb") as con:
        ingest_partition(con, src, DAY, tmp_path / "landing", key)
        quarantined = dict(con.execute("select _line, reason from quarantine").fetchall())
        loaded = {r[0]: r[1:] for r in con.execute(f"select campaign_id, date, clicks, spend_thb from {src.raw_table}").fetchall()}
    for n, (column, written, want, line) in enumerate(cases, 2):
        campaign = next(csv.reader([line]))[1]
        if want is None:
            assert n in quarantined, f"{column} {written!r} loaded as {loaded.get(campaign)}"
            rule = "missing required field" if written == "" else "wrong type for"
            assert f"{rule}: {column}" in quarantined[n] or f"{rule} {column}" in quarantined[n], (written, quarantined[n])
            assert written.strip() == "" or written.strip() not in quarantined[n].replace(column, ""), "never the value"
        else:
            assert n not in quarantined, (written, quarantined.get(n))
            got = dict(zip(("date", "clicks", "spend_thb"), loaded[campaign]))[column]
            assert got == want, f"{column} {written!r} loaded as {got!r}, not unchanged"


def test_ndjson_decimals_and_timestamps_load_only_in_their_exact_forms(tmp_path, key):
    base = {"deal_id": "deal_0000001", "customer_id": "cus_00000001", "account_id": "acc_0000001", "stage": "open",
            "value_thb": 100.5, "created_at": "2026-10-01T10:00:00.000Z", "updated_at": "2026-10-01T11:00:00.000Z"}
    cases = [  # (changed fields as JSON text fragments, loads)
        ({}, True),
        ({"value_thb": "100"}, True),
        ({"created_at": '"2026-10-01 10:00:00"'}, True),
        ({"created_at": '"2026-10-01T10:00:00+07:00"'}, True),
        ({"value_thb": "100.505"}, False),
        ({"value_thb": "1e3"}, True),  # a JSON number: its value, 1000, is exact in DECIMAL(14,2)
        ({"value_thb": '"100.50"'}, False),  # a string where a number is declared
        ({"created_at": '"2026-10-01"'}, False),
        ({"created_at": '"yesterday"'}, False),
        ({"created_at": '"2026-10-01T10:00"'}, False),
        ({"created_at": '"01/10/2026 10:00:00"'}, False),
        ({"created_at": '"2026-02-30T10:00:00Z"'}, False),
        ({"created_at": '" 2026-10-01T10:00:00Z"'}, False),
    ]
    lines = []
    for i, (changed, _) in enumerate(cases):
        fields = {k: json.dumps(v) for k, v in {**base, "deal_id": f"deal_{i:07d}"}.items()} | changed
        lines.append("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}")
    part = tmp_path / "landing" / "crm_deals" / f"dt={DAY}"
    part.mkdir(parents=True)
    (part / "part-00000.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    src = load_policy()["crm_deals"]
    with opened(tmp_path / "raw.duckdb") as con:
        ingest_partition(con, src, DAY, tmp_path / "landing", key)
        quarantined = dict(con.execute("select _line, reason from quarantine").fetchall())
        loaded = dict(con.execute(f"select deal_id, value_thb from {src.raw_table}").fetchall())
    for n, (changed, loads) in enumerate(cases, 1):
        assert (n not in quarantined) is loads, (changed, quarantined.get(n))
        if not loads:
            column = next(iter(changed))
            assert f"wrong type for {column}" in quarantined[n], (changed, quarantined[n])
    assert loaded["deal_0000000"] == Decimal("100.50") and loaded["deal_0000001"] == Decimal("100.00")
    assert loaded["deal_0000005"] == Decimal("1000.00")


def test_every_typed_column_of_the_policy_has_an_exact_form():
    for src in load_policy().values():
        for c in src.columns:
            assert (exact_form(c.type) is None) == (c.type == "VARCHAR"), (src.name, c.name, c.type)
