"""Landing files are split into numbered lines; undecodable lines are marked, not lost."""


def test_decode_lines_marks_only_the_undecodable_lines():
    from plus_analytics.ingest.reading import decode_lines

    data = "ก\r\nok\r\n".encode() + b"x\xffy\xfez\r\n" + b"fine\n" + b"\xc3\n" + "last ข".encode()
    lines, bad = decode_lines(data)
    assert lines == ["ก", "ok", "x\ufffdy\ufffdz", "fine", "\ufffd", "last ข"]
    assert bad == [3, 5]
    assert decode_lines(b"a\nb\r\n") == (["a", "b", ""], [])
