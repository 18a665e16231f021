"""CSV records and their lines: ingest numbers a record by the ``\\n``-ended line it starts on, and the
landing rewrite blanks or redacts every line of that record and nothing else, whatever the values hold
(line breaks and lone carriage returns inside quotes, quotes, commas, Thai, a broken record)."""

from __future__ import annotations

import csv
import io
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from plus_analytics.ingest import csv_records
from plus_analytics.ingest.landing import rewrite_lines
from plus_analytics.policy import REDACTED

HEADER = ["id", "email", "address"]
value = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab ,\"\n\r\tกข\u200b")), max_size=12),
    st.sampled_from(["99/1 Moo 4\nBangkok", "a\r\nb", "lone\rcr", "", " ", "\"quoted\"", "ถนน สุขุมวิท\n10110"]),
)
row = st.tuples(st.integers(0, 10**6).map(lambda i: f"id{i}"), value, value).map(list)
BROKEN = "x,lone\rcr unquoted,y"  # a line break in an unquoted value: the reader rejects the record


def write_csv(rows: list, terminator: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=terminator)
    w.writerow(HEADER)
    for r in rows:
        if r == BROKEN:
            buf.write(BROKEN + "\n")
        else:
            w.writerow(r)
    return buf.getvalue()


def read(text: str) -> list[csv_records.Record]:
    """What ingest reads: the records after the header, blank ones skipped."""
    recs = list(csv_records.records(csv_records.split_lines(text)))[1:]
    return [r for r in recs if r.fields is None or (r.fields and any(x.strip() for x in r.fields))]


def test_a_lone_carriage_return_does_not_shift_the_line_numbers():
    text = 'id,email,address\nid1,a@x.co,"12 Soi\rCR"\n' + BROKEN + '\nid2,b@x.co,"99/1\nBangkok"\nid3,c@x.co,z\n'
    recs = read(text)
    assert [(r.first, r.last) for r in recs] == [(2, 2), (3, 3), (4, 5), (6, 6)]
    assert recs[1].fields is None and recs[1].error == "malformed CSV record: a line break in an unquoted value"
    assert recs[2].fields == ["id2", "b@x.co", "99/1\nBangkok"] and recs[3].fields == ["id3", "c@x.co", "z"]


def test_a_value_over_the_reader_limit_rejects_its_record_only():
    limit = csv.field_size_limit()
    csv.field_size_limit(50)
    try:
        recs = read("id,email,address\nid1,a@x.co," + "x" * 60 + "\nid2,b@x.co,y\n")
    finally:
        csv.field_size_limit(limit)
    assert [(r.first, r.fields is None) for r in recs] == [(2, True), (3, False)]
    assert "limit" in recs[0].error


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.one_of(row, st.just(BROKEN)), min_size=1, max_size=12), terminator=st.sampled_from(["\n", "\r\n"]),
       picks=st.sets(st.integers(0, 11), max_size=5), redact_picks=st.sets(st.integers(0, 11), max_size=4))
def test_blanking_and_redacting_records_leaves_every_other_record_where_it_was(tmp_path_factory, rows, terminator, picks, redact_picks):
    text = write_csv(rows, terminator)
    before = read(text)
    gone = {before[i].first for i in picks if i < len(before)}
    redact = {before[i].first: {"email"} for i in redact_picks
              if i < len(before) and before[i].first not in gone and before[i].fields is not None and len(before[i].fields) == 3}
    landing = tmp_path_factory.mktemp("landing")
    (landing / "crm").mkdir()
    path = landing / "crm" / "part-0.csv"
    path.write_bytes(text.encode())
    changed = rewrite_lines(landing, {"crm/part-0.csv": gone}, {"crm/part-0.csv": redact})
    after_text = path.read_bytes().decode()
    assert after_text.count("\n") == text.count("\n")  # every other record's line numbers stay valid
    after = {r.first: r for r in read(after_text)}
    for r in before:
        if r.first in gone:
            assert r.first not in after  # the whole record is blank, every one of its lines
            assert all(not ln.strip() for ln in after_text.split("\n")[r.first - 1:r.last])
        elif r.first in redact:
            assert after[r.first].fields == [r.fields[0], REDACTED, r.fields[2]]
        else:
            assert after[r.first] == r
    if not gone and not redact:
        assert changed == {"crm/part-0.csv": 0}
    again = path.read_bytes()
    inode = os.stat(path).st_ino
    rewrite_lines(landing, {"crm/part-0.csv": gone}, {"crm/part-0.csv": redact})
    assert path.read_bytes() == again and os.stat(path).st_ino == inode  # a rerun writes nothing
