"""Every kind of NDJSON line an export can really carry, at its own line number: what loads, and the reason
for what does not (whitespace before the object, a trailing comma, arrays and scalars, trailing text,
two objects on one line, comments, a byte-order mark, a repeated key, JSON null, nested values, escapes,
blank lines)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from plus_analytics.generate import generate
from plus_analytics.ingest.loader import ingest_partition
from plus_analytics.policy import load_policy
from tests.helpers import exported_rows, opened

pytestmark = pytest.mark.integration
DAY = dt.date(2026, 10, 1)
SRC = "platform_usage_events"
LOADS = "loads"
BLANK = "blank"


def _valid_row(tmp_path) -> dict:
    generate(tmp_path / "generated", days=1, scale=0.3, seed=4, start=DAY)
    rows = exported_rows(tmp_path / "generated", load_policy()[SRC], DAY)
    row = next((r for r in rows if r["cookie_id"] and r["feature"]), None)
    assert row is not None, "the generator wrote no complete usage event"
    return row


def _lines(row: dict) -> list[tuple[str, str]]:
    def obj(event_id: str, **changed) -> str:
        return json.dumps({**row, "event_id": event_id, **changed}, ensure_ascii=False)

    first, rest = row["event_type"][0], row["event_type"][1:]
    escaped = obj("ev_escaped").replace(json.dumps(row["event_type"]), f'"\\u{ord(first):04x}{rest}"')
    assert escaped != obj("ev_escaped")
    return [
        (obj("ev_plain"), LOADS),
        (" \t" + obj("ev_spaced"), LOADS),
        (obj("ev_comma")[:-1] + ",}", LOADS),  # DuckDB's JSON reader accepts a trailing comma
        (escaped, LOADS),
        ("", BLANK),
        ("[" + obj("ev_array") + "]", "not a JSON object"),
        ('"a string"', "not a JSON object"),
        ("42", "not a JSON object"),
        ("null", "not a JSON object"),
        ("   \t", BLANK),
        (obj("ev_trailing") + " x", "invalid JSON"),
        (obj("ev_two") + obj("ev_three"), "invalid JSON"),
        ("/* note */" + obj("ev_comment"), "invalid JSON"),
        ("\ufeff" + obj("ev_bom"), "invalid JSON"),
        ('{"product": "nope", ' + obj("ev_repeated")[1:], "value not allowed for product"),  # the first wins
        ("{}", "missing required field: event_id"),
        (obj("ev_null", product=None), "missing required field: product"),
        (obj("ev_nested", event_type={"page": 1}), "wrong type for event_type"),
        (obj("ev_number", event_type=7), "wrong type for event_type"),
    ]


def test_each_kind_of_line_loads_or_gets_its_reason_at_its_line(tmp_path, key):
    row = _valid_row(tmp_path)
    lines = _lines(row)
    part = tmp_path / "landing" / SRC / f"dt={DAY}"
    part.mkdir(parents=True)
    (part / "part-00000.ndjson").write_bytes(("\n".join(text for text, _ in lines) + "\n").encode("utf-8"))
    src = load_policy()[SRC]
    with opened(tmp_path / "raw.duckdb") as con:
        r = ingest_partition(con, src, DAY, tmp_path / "landing", key)
        quarantined = dict(con.execute("select _line, reason from quarantine where source = ?", [SRC]).fetchall())
        loaded = dict(con.execute(f"select event_id, event_type from {src.raw_table}").fetchall())
    expected_bad = {n: why for n, (_, why) in enumerate(lines, 1) if why not in (LOADS, BLANK)}
    assert r.rows_read == sum(why != BLANK for _, why in lines)
    assert (r.rows_loaded, r.rows_quarantined) == (sum(why == LOADS for _, why in lines), len(expected_bad))
    assert sorted(quarantined) == sorted(expected_bad), "quarantined at exactly these line numbers"
    for n, why in expected_bad.items():
        assert why in quarantined[n], (n, lines[n - 1][0][:40], quarantined[n])
    assert loaded == dict.fromkeys(("ev_plain", "ev_spaced", "ev_comma", "ev_escaped"), row["event_type"])
