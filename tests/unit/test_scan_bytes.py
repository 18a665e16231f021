"""The erasure's byte scan finds exactly the needles a naive ``needle in bytes`` finds, in every file:
across chunk boundaries, with NUL and any other byte, needles inside other needles; and a file it cannot
read counts as holding every needle."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plus_analytics.storage import files as files_module
from plus_analytics.storage.files import files_under, scan_bytes

alphabet = st.sampled_from([b"a", b"b", b"@", b"\x00", b"\xff", b"\n", "ก".encode()])
needle = st.lists(alphabet, min_size=1, max_size=6).map(b"".join)
content = st.lists(st.one_of(alphabet, needle), max_size=60).map(b"".join)


@settings(max_examples=150, deadline=None)
@given(contents=st.lists(content, min_size=1, max_size=4), needles=st.lists(needle, min_size=1, max_size=8),
       chunk=st.sampled_from([1, 2, 5, 16, files_module.SCAN_CHUNK]))
def test_scan_finds_what_a_naive_search_finds(tmp_path_factory, contents, needles, chunk):
    root = tmp_path_factory.mktemp("scan")
    for i, c in enumerate(contents):
        (root / f"f{i}").write_bytes(c)
    default, files_module.SCAN_CHUNK = files_module.SCAN_CHUNK, chunk  # needles straddle chunk boundaries
    try:
        found = scan_bytes(root, needles)
    finally:
        files_module.SCAN_CHUNK = default
    expected = {str(root / f"f{i}"): sorted(j for j, n in enumerate(needles) if n in c) for i, c in enumerate(contents)}
    assert found == {f: hits for f, hits in expected.items() if hits}


def test_a_needle_inside_another_is_found_with_it(tmp_path):
    (tmp_path / "x.duckdb").write_bytes(b"\x00\x00someone@example.com\x00")
    assert scan_bytes(tmp_path, [b"someone@example.com", b"one@example.com", b"nobody@example.com"]) == \
        {str(tmp_path / "x.duckdb"): [0, 1]}


def test_a_file_that_cannot_be_read_holds_every_needle(tmp_path):
    (tmp_path / "not-a-file").mkdir()  # open() fails (IsADirectoryError) even for root, as in CI
    (tmp_path / "clean").write_bytes(b"nothing here")
    assert scan_bytes([tmp_path / "not-a-file", tmp_path / "clean"], [b"abcdef", b"ghijkl"]) == \
        {str(tmp_path / "not-a-file"): [0, 1]}


def test_a_scan_for_nothing_refuses(tmp_path):
    with pytest.raises(ValueError, match="proves nothing"):
        scan_bytes(tmp_path, [])
    with pytest.raises(ValueError, match="every file"):
        scan_bytes(tmp_path, [b"abcdef", b""])


def test_a_socket_holds_no_bytes_and_is_not_scanned(tmp_path):
    """A server's Unix socket (PostgreSQL's, Redis's) under the data directory is no file to read: a scan
    that opened it would fail and report every needle; regular files beside it are scanned."""
    import socket

    (tmp_path / "data.bin").write_bytes(b"..needle-123..")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / ".s.PGSQL.5432"))
        assert files_under(tmp_path) == [tmp_path / "data.bin"]
        assert scan_bytes(tmp_path, [b"needle-123", b"other-456"]) == {str(tmp_path / "data.bin"): [0]}


def test_a_zone_file_holds_every_value_as_written(tmp_path):
    """Zone files are written uncompressed (plus_analytics.storage.duck.connect), so erasure's byte scan
    sees every value in them: with DuckDB's default compression a checkpointed file shows almost none of
    its strings to a plain search (FSST codes them), and the scan would report nothing either way."""
    from plus_analytics.storage import duck

    emails = [f"user{i}.name{i * 7919 % 1000}@example-mail.co.th" for i in range(0, 200_000, 997)]
    fill = "select 'user' || i || '.name' || (i * 7919 % 1000) || '@example-mail.co.th' as email from range(200000) t(i)"
    con = duck.connect(tmp_path)
    try:
        duck.attach(con, tmp_path / "zone.duckdb", "z", read_only=False)
        con.execute(f"create table z.t as {fill}")
        con.execute("detach z")  # checkpointed as it is closed
    finally:
        con.close()
    found = scan_bytes(tmp_path, [e.encode() for e in emails])
    assert sorted(found[str(tmp_path / "zone.duckdb")]) == list(range(len(emails)))
