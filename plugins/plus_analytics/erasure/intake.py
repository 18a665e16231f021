"""Intake of deletion requests: normalize and pseudonymize the identifier at once; keep no raw value."""

from __future__ import annotations

import datetime as dt
import uuid

from plus_analytics import sqlfiles
from plus_analytics.erasure import evidence
from plus_analytics.privacy import identifiers
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.privacy.normalize import normalize

#: CLI option -> identifier kind
ID_KINDS = {
    "email": "email", "phone": "phone", "account_id": "account", "customer_id": "customer",
    "line_id": "platform_user", "cookie_id": "cookie", "device_id": "device_ad_id",
}
DEFAULT_DEADLINE_DAYS = 30  # GDPR: one month; Thailand PDPC: 90 days. Configurable per request.


def register_tombstone_key(con, tomb_key: MasterKey) -> None:
    """HMAC pads of the tombstone key (blind index of erased subjects), TEMP only."""
    from plus_analytics.policy import KINDS

    sqlfiles.run_file(con, "macros.sql")
    con.execute("create or replace temp table _tomb_key (kind varchar, ipad blob, opad blob)")
    for kind in KINDS:
        ipad, opad = tomb_key.pads(kind)
        con.execute("insert into _tomb_key values (?, ?, ?)", [kind, ipad, opad])


def new_request_id(now: dt.datetime) -> str:
    letters = uuid.uuid4().hex[:10].translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))
    return f"DSR-{now:%Y%m%d}-{letters}"


def register(con, key: MasterKey, tomb_key: MasterKey, option: str, identifier: str, requester: str,
             received_at: dt.datetime | None = None, deadline_days: int = DEFAULT_DEADLINE_DAYS) -> str:
    """Record a request; returns its id. Raises InvalidIdentifier (message without the value)."""
    kind = ID_KINDS[option]
    normalized = normalize(kind, identifier)
    identifiers.ensure_schema(con)
    now = received_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    request_id = new_request_id(now)
    con.execute("begin transaction")
    try:
        con.execute("insert into tombstones values (?, ?, ?, ?, ?, 'pending', null, null)",
                    [request_id, now, requester, kind, now + dt.timedelta(days=deadline_days)])
        con.execute("insert into tombstone_subjects values (?, ?, ?, ?, ?)",
                    [request_id, kind, key.pseudonym(kind, normalized), key.version, tomb_key.pseudonym(kind, normalized)])
        evidence.append(con, request_id, "registered", detail=f"identifier kind {kind}; deadline {deadline_days} days")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return request_id
