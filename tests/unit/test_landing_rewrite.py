"""Blanking and redacting landing lines: the result is exactly what splitting the file into lines,
replacing some and joining them again gives, on any bytes (CR, invalid UTF-8, no final newline, line
numbers past the end); a rerun changes nothing; a file whose changes keep their lengths is overwritten
where it is, not replaced."""

import csv
import io
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from plus_analytics.ingest import landing as landing_module
from plus_analytics.ingest.landing import rewrite_lines
from plus_analytics.policy import REDACTED


def reference(data: bytes, gone: set[int], redact: dict[int, set[str]], header: list[str] | None) -> bytes:
    """What the rewrite must produce, the obvious way: one object per line. A blanked line becomes spaces
    of its length; a redacted JSON line is padded with spaces to its length when it got shorter."""
    lines = data.split(b"\n")
    for k, cols in redact.items():
        if k not in gone and 0 < k <= len(lines) and lines[k - 1].strip(b" \t\f\v\r"):
            if header is None:
                obj = json.loads(lines[k - 1])
                obj.update(dict.fromkeys(cols, REDACTED))
                text = json.dumps(obj, ensure_ascii=False).encode()
                lines[k - 1] = text.ljust(len(lines[k - 1]), b" ")
            else:
                fields = next(csv.reader([lines[k - 1].decode()]))
                for c in cols:
                    fields[header.index(c)] = REDACTED
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow(fields)
                lines[k - 1] = buf.getvalue().encode()
    for k in gone:
        if 0 < k <= len(lines):
            lines[k - 1] = b" " * len(lines[k - 1])
    return b"\n".join(lines)


hostile_line = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),   # anything: invalid UTF-8, NUL, lone CR
    st.text(max_size=20).map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"\r", "ข้อความ ไทย".encode(), b'{"x": 1}\r']),
)
json_row = st.fixed_dictionaries({"email": st.text(max_size=12), "n": st.integers()}).map(
    lambda d: json.dumps(d, ensure_ascii=False).encode())


def is_row(line: bytes) -> bool:
    try:
        row = json.loads(line)
        return isinstance(row, dict) and "email" in row
    except (ValueError, TypeError):
        return False


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.one_of(hostile_line, json_row), max_size=30), final_newline=st.booleans(),
       gone=st.sets(st.integers(-2, 35), max_size=8), picks=st.sets(st.integers(-2, 35), max_size=6),
       chunk=st.sampled_from([1, 3, 7, 64, landing_module.NEWLINE_CHUNK]))
def test_blanking_and_redaction_equal_the_line_by_line_rewrite(tmp_path_factory, lines, final_newline, gone, picks, chunk):
    body = b"\n".join(lines) + (b"\n" if final_newline else b"")
    split = body.split(b"\n")
    # redact only lines that hold a JSON object with the column (the pipeline only redacts loaded rows)
    redact = {k: {"email"} for k in picks if 0 < k <= len(split) and is_row(split[k - 1])}
    landing = tmp_path_factory.mktemp("landing")
    (landing / "src").mkdir()
    (landing / "src" / "part-0.ndjson").write_bytes(body)
    default, landing_module.NEWLINE_CHUNK = landing_module.NEWLINE_CHUNK, chunk  # newlines on chunk boundaries
    try:
        changed = rewrite_lines(landing, {"src/part-0.ndjson": gone}, {"src/part-0.ndjson": redact})
    finally:
        landing_module.NEWLINE_CHUNK = default
    expected = reference(body, gone, redact, None)
    assert (landing / "src" / "part-0.ndjson").read_bytes() == expected
    assert changed == {"src/part-0.ndjson": sum(1 for k in gone if 0 < k <= len(split)) +
                       sum(1 for k in redact if k not in gone and split[k - 1].strip(b" \t\f\v\r"))}
    rewrite_lines(landing, {"src/part-0.ndjson": gone}, {"src/part-0.ndjson": redact})
    assert (landing / "src" / "part-0.ndjson").read_bytes() == expected  # a rerun changes nothing


def test_csv_redaction_uses_the_header_and_keeps_quoting(tmp_path):
    body = b'id,email,note\r\n1,a@example.com,"x, y"\n2,b@example.com,"he said ""hi"""\n3,,z'
    (tmp_path / "crm").mkdir()
    path = tmp_path / "crm" / "part-0.csv"
    path.write_bytes(body)
    header = ["id", "email", "note\r"]
    changed = rewrite_lines(tmp_path, {"crm/part-0.csv": {4, 99}}, {"crm/part-0.csv": {2: {"email"}, 3: {"email"}, 4: {"email"}}})
    assert path.read_bytes() == reference(body, {4, 99}, {2: {"email"}, 3: {"email"}}, header)
    assert path.read_bytes().split(b"\n")[1] == f'1,{REDACTED},"x, y"'.encode()
    assert changed == {"crm/part-0.csv": 3}


def test_many_files_at_once_and_a_missing_file_is_not_reported(tmp_path):
    (tmp_path / "s").mkdir()
    for i in range(12):
        (tmp_path / "s" / f"part-{i}.ndjson").write_bytes(b"\n".join(f'{{"i": {i}, "l": {j}}}'.encode() for j in range(50)))
    blank = {f"s/part-{i}.ndjson": {i + 1, 50} for i in range(12)} | {"s/gone.ndjson": {1}}
    assert rewrite_lines(tmp_path, blank) == {f"s/part-{i}.ndjson": 2 for i in range(12)}
    for i in range(12):
        lines = (tmp_path / "s" / f"part-{i}.ndjson").read_bytes().split(b"\n")
        assert len(lines) == 50 and not lines[i].strip() and not lines[49].strip() and lines[i + 1 if i < 48 else 0]
    assert not list(tmp_path.rglob("*.writing"))


def test_changes_that_keep_their_length_overwrite_the_file_where_it_is(tmp_path):
    """Blanks and shorter JSON redactions are written over the old bytes (same file, same size: no copy of
    the old content left behind in a replaced file's blocks); a longer line makes the file be replaced."""
    (tmp_path / "s").mkdir()
    path = tmp_path / "s" / "part-0.ndjson"
    rows = [{"email": "somchai.longname@example.com", "n": 1}, {"email": "a@b.co", "n": 2}, {"email": "x", "n": 3}]
    body = b"\n".join(json.dumps(r).encode() for r in rows) + b"\n"
    path.write_bytes(body)
    inode = os.stat(path).st_ino
    assert rewrite_lines(tmp_path, {"s/part-0.ndjson": {2}}, {"s/part-0.ndjson": {1: {"email"}}}) == {"s/part-0.ndjson": 2}
    after = path.read_bytes()
    assert os.stat(path).st_ino == inode and len(after) == len(body)
    first, second, third, _ = after.split(b"\n")
    assert json.loads(first) == {"email": REDACTED, "n": 1} and first.endswith(b" ") and not second.strip()
    assert b"somchai" not in after and b"a@b.co" not in after
    rewrite_lines(tmp_path, {}, {"s/part-0.ndjson": {3: {"email"}}})  # "x" -> the marker: longer
    assert os.stat(path).st_ino != inode and json.loads(path.read_bytes().split(b"\n")[2])["email"] == REDACTED
    assert not list(tmp_path.rglob("*.writing"))


def test_every_rewrite_of_a_days_files_changes_what_ingest_compares_under_the_lock(tmp_path):
    """Ingest takes each day's landing state before reading a batch and again under the zone's lock; a
    blanking that keeps the file where it is, a redaction that replaces it, a deleted file and a new file
    each make the two differ (files written long before, as landing files are)."""
    import datetime as dt

    from plus_analytics.ingest.loader import landing_state
    from plus_analytics.policy import load_policy

    src = load_policy()["platform_usage_events"]
    day = dt.date(2026, 10, 1)
    folder = tmp_path / src.name / f"dt={day}"
    folder.mkdir(parents=True)
    rows = [json.dumps({"event_id": f"ev_{i}", "account_id": f"acc_{i}"}) for i in range(3)]
    for name in ("part-00000.ndjson", "part-00001.ndjson"):
        (folder / name).write_text("\n".join(rows) + "\n")
        os.utime(folder / name, ns=(10**18, 10**18))

    def changed(change) -> bool:
        before = landing_state(tmp_path, src, [day])
        change()
        return landing_state(tmp_path, src, [day]) != before

    assert not changed(lambda: None)
    assert changed(lambda: rewrite_lines(tmp_path, {f"{src.name}/dt={day}/part-00000.ndjson": {2}}))  # in place
    assert changed(lambda: rewrite_lines(tmp_path, {}, {f"{src.name}/dt={day}/part-00001.ndjson": {1: {"account_id"}}}))
    assert changed(lambda: (folder / "part-00000.ndjson").unlink())
    assert changed(lambda: (folder / "part-00002.ndjson").write_text(rows[0] + "\n"))
