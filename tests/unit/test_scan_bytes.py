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


EMAILS = [f"user{i}.name{i * 7919 % 1000}@example-mail.co.th" for i in range(0, 200_000, 997)]
FILL = "select 'user' || i || '.name' || (i * 7919 % 1000) || '@example-mail.co.th' as email from range(200000) t(i)"


def _found(path) -> int:
    return len(scan_bytes(path.parent, [e.encode() for e in EMAILS]).get(str(path), []))


def test_the_restricted_database_holds_every_value_as_written(tmp_path):
    """The restricted zone's sessions store it uncompressed (plus_analytics.storage.duck.store_uncompressed),
    as its Delta tables' data files are, so erasure's byte scan sees every raw value in it; so does its
    rewrite. Staging (pseudonyms only) stays compressed, and there a plain search sees almost none of the
    same strings (DuckDB codes them by symbol tables): what the scan would miss without this."""
    from plus_analytics.config import Paths
    from plus_analytics.storage import files, locks

    paths = Paths(tmp_path / "home").ensure()
    for alias in ("raw", "stg"):
        with locks.zone(write=paths.zones(alias)) as con:
            con.execute(f"create table {alias}.t as {FILL}")  # checkpointed as the session lets go of the file
    assert _found(paths.raw_db) == len(EMAILS)
    assert _found(paths.staging_db) < len(EMAILS) // 10
    files.rewrite_database(paths.staging_db, uncompressed=True)  # what the restricted zone's rewrite does
    assert _found(paths.staging_db) == len(EMAILS)
