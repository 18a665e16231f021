"""A lost or replaced pseudonym key can never make erasure look done: registering a request with a key
the restricted zone was not written with is refused (a new key would pseudonymize the identifier to a
value found nowhere, and the request would "verify" against nothing), and nothing is registered."""

from __future__ import annotations

import datetime as dt

import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.erasure.intake import Request
from plus_analytics.generate import generate
from plus_analytics.privacy.identifiers import KeyMismatch
from plus_analytics.privacy.keys import MasterKey
from tests.helpers import ctx, opened

pytestmark = pytest.mark.integration
DAY = dt.date(2026, 9, 1)


def test_a_replaced_key_cannot_register_a_request(tmp_path, key):
    home = Paths(tmp_path).ensure()
    generate(home.landing, days=1, scale=0.05, seed=4, start=DAY)
    steps.ingest.ingest("crm_customers", DAY, ctx(home, key))  # the zone is written with ``key``
    replaced = MasterKey(version=key.version, secret=b"a-different-secret-of-32-bytes-or-more!")
    with pytest.raises(KeyMismatch, match="lost or replaced"):
        steps.erasure.register([Request("email", "somchai@example.com", "DPO")], ctx(home, replaced))
    assert not home.privacy_db.exists() or _requests(home) == 0
    # The original key still registers.
    assert len(steps.erasure.register([Request("email", "somchai@example.com", "DPO")], ctx(home, key))) == 1
    assert _requests(home) == 1


def _requests(home: Paths) -> int:
    with opened(home.privacy_db, read_only=True) as con:
        return con.execute("select count(*) from tombstones").fetchone()[0]
