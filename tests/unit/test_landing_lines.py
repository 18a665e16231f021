"""Landing files are split into numbered lines over their own bytes; undecodable lines are marked (and
repaired to be quarantined), not lost; a line ends at a newline and nowhere else."""

import re

import duckdb


def _lines(data: bytes):
    """(line number, text without its newline, kept) as DuckDB reads them from the Arrow table, and the
    lines marked as not UTF-8."""
    from plus_analytics.ingest.reading import line_table, repaired_utf8

    fixed, bad = repaired_utf8(data)
    con = duckdb.connect()
    con.register("t", line_table(fixed))
    rows = con.execute("select n, regexp_replace(p, '\\r?\\n?$', ''), keep from t order by n").fetchall()
    return rows, bad


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
