"""Known-answer tests: the in-DuckDB HMAC against RFC 4231, and fixed key -> fixed pseudonyms."""

import duckdb
import pytest

from plus_analytics.privacy.keys import MasterKey, MissingKeyError, decode_secret, hmac_pads, key_from_connection, load_master_key
from plus_analytics.storage import sql as sqlfiles

# RFC 4231 test cases 1, 2, 3, 4, 6 (6: a 131-byte key, longer than the block size).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]


@pytest.fixture
def con():
    c = duckdb.connect()
    sqlfiles.run_file(c, "macros.sql")
    yield c
    c.close()


@pytest.mark.parametrize("key,msg,want", RFC4231)
def test_sql_hmac_matches_rfc4231(con, key, msg, want):
    ipad, opad = hmac_pads(key)
    got = con.execute("select sha256($o || unhex(sha256($i || $m)))", {"i": ipad, "o": opad, "m": msg}).fetchone()[0]
    assert got == want


def test_sql_pseudonym_equals_python_reference(con, key):
    ipad, opad = key.pads("email")
    values = ["somchai@gmail.com", "สมชาย@ตัวอย่าง.ไทย", "", "x" * 500]
    got = [con.execute("select plus_pid($i, $o, $v)", {"i": ipad, "o": opad, "v": v}).fetchone()[0] for v in values]
    assert got == [key.pseudonym("email", v) for v in values]


def test_fixed_key_gives_fixed_pseudonyms():
    k = MasterKey(version=1, secret=bytes(range(32)))
    assert k.pseudonym("email", "somchai@gmail.com") == "dbjnjbhmfpoogaiijmhhmhpnpbjmibpb"
    assert k.pseudonym("phone", "+66812345678") == "bobfhalocfimombpjnhojbmdalaakopl"
    assert len(k.pseudonym("cookie", "x")) == 32 and set(k.pseudonym("cookie", "x")) <= set("abcdefghijklmnop")


def test_kinds_never_link(key):
    assert key.pseudonym("email", "same-value") != key.pseudonym("phone", "same-value")
    assert key.subkey("email") != key.subkey("phone")


def test_versions_differ():
    a = MasterKey(1, b"a" * 32)
    b = MasterKey(2, b"b" * 32)
    assert a.pseudonym("email", "x@y.co") != b.pseudonym("email", "x@y.co")


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 31])
def test_short_secret_refused(secret):
    with pytest.raises(MissingKeyError):
        MasterKey(1, secret)


def test_secret_never_in_repr():
    k = MasterKey(3, b"super-secret-value-0123456789abcdef")
    assert "super-secret" not in repr(k) and "super-secret" not in str(k)


def test_missing_connection_refuses(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_PLUS_PSEUDONYM_KEY", raising=False)
    with pytest.raises(MissingKeyError) as exc:
        load_master_key("plus_pseudonym_key_that_does_not_exist")
    assert "never falls back" in str(exc.value)


class _Conn:
    def __init__(self, password, extra):
        self.password, self.extra_dejson = password, extra


def test_connection_parsing():
    k = key_from_connection(_Conn("cGx1cy1hbmFseXRpY3MtdGVzdC1zZWNyZXQtMzItYnl0ZXMhIQ", {"key_version": 4}))
    assert k.version == 4 and len(k.secret) >= 32
    with pytest.raises(MissingKeyError):
        key_from_connection(_Conn("", {"key_version": 1}))
    with pytest.raises(MissingKeyError):
        key_from_connection(_Conn("c2hvcnQ", {"key_version": 1}))
    with pytest.raises(MissingKeyError):
        key_from_connection(None)
    assert decode_secret("AAAA") == b"\0\0\0"
