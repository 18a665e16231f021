"""Landing files are split into numbered lines over their own bytes; undecodable lines are marked (and
repaired to be quarantined), not lost; a line ends at a newline and nowhere else."""

import re

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st


def _lines(data: bytes):
    """(line number, text without its newline, kept) as DuckDB reads them from the Arrow table, and the
    lines marked as not UTF-8."""
    from plus_analytics.ingest.reading import file_lines

    con = duckdb.connect()
    con.register("t", file_lines(data))
    rows = con.execute("select n, regexp_replace(p, '\\r?\\n?$', ''), keep from t order by n").fetchall()
    return rows, [r[0] for r in con.execute("select n from t where bad order by n").fetchall()]


def test_undecodable_lines_are_marked_and_repaired_and_the_rest_is_read_as_written():
    data = "ก\r\nok\r\n".encode() + b"x\xffy\xfez\r\n" + b"fine\n" + b"\xc3\n" + "last ข".encode()
    rows, bad = _lines(data)
    assert [text for _, text, _ in rows] == ["ก", "ok", "x\ufffdy\ufffdz", "fine", "\ufffd", "last ข"]
    assert [n for n, _, _ in rows] == [1, 2, 3, 4, 5, 6] and bad == [3, 5]


def test_line_ends_blank_lines_and_carriage_returns():
    assert _lines(b"a\nb\r\n") == ([(1, "a", True), (2, "b", True)], [])
    assert _lines(b"a\rb\nc")[0] == [(1, "a\rb", True), (2, "c", True)], "a lone carriage return does not end a line"
    assert _lines(b"a\r")[0] == [(1, "a", True)], "nor is it part of the last line"
    rows, _ = _lines(b'{}\n  \t\n\n\r\n\x0b\x0c\n {"a": 1}\n{}')
    assert [(n, keep) for n, _, keep in rows] == [(1, True), (2, False), (3, False), (4, False), (5, False), (6, True), (7, True)]
    assert _lines(b"") == ([], [])


def test_a_long_undecodable_line_keeps_only_the_start_the_zone_keeps():
    from plus_analytics.ingest.reading import PAYLOAD_KEEP

    rows, bad = _lines(b"ok\n" + b"\xff" + b"y" * (PAYLOAD_KEEP * 2) + b"\r\nafter\n")
    assert bad == [2] and len(rows[1][1]) == PAYLOAD_KEEP and rows[2][1] == "after"
    assert re.fullmatch("\ufffdy+", rows[1][1])


_BYTES = st.sampled_from([b"\n", b"\r", b"a", b"{", b"\xc3", b"\xa9", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                          b"\xe0\xb8\x81", b"\xf0\x9f\x98\x80", b"\xef\xbb\xbf", b"\xff", b"\x00"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_BYTES, st.binary(max_size=6)), max_size=60))
def test_arrows_utf8_verdict_per_line_is_pythons_strict_decoder(parts):
    """Which lines are undecodable: Arrow's validation (and the whole-file decoding it falls back to) agree
    with Python's strict decoder on every line, overlong forms, surrogates and code points past U+10FFFF
    included; after their repair every line starts where a fresh split of the repaired bytes says."""
    from plus_analytics.ingest import reading

    data = b"".join(parts)
    starts = reading.line_starts(data)
    lines = [data[starts[i]:starts[i + 1]] for i in range(len(starts) - 1)]
    expected = []
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            expected.append(i)
    assert reading.undecodable_lines(data, starts) == expected
    probes = reading.ARROW_UTF8_PROBES
    try:
        reading.ARROW_UTF8_PROBES = 1  # the fallback: one decoding pass of the whole file
        assert reading.undecodable_lines(data, starts) == expected
    finally:
        reading.ARROW_UTF8_PROBES = probes
    fixed, moved = reading._repaired(data, starts, expected)
    assert moved.tolist() == reading.line_starts(fixed).tolist()
    fixed.decode("utf-8")
