"""Intake of deletion requests: validate, normalize and pseudonymize the identifier at once; keep no raw
value (the forms erasure will search for are sealed, see :mod:`plus_analytics.erasure.seal`).

Every input is checked before anything is stored, with a message that never repeats the value: the
identifier kind, the identifier (no control or invisible characters, no longer than the policy allows
for that kind, a phone made of digits and separators only, and it must normalize), the requester (a
name or ticket, which must not itself hold personal data such as an e-mail or phone) and the deadline
(1 to 90 days: Thailand's PDPC allows 90, GDPR one month).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from plus_analytics.erasure.seal import seal
from plus_analytics.ledger import evidence
from plus_analytics.policy import load_policy
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.privacy.normalize import InvalidIdentifier, normalize
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import insert_rows, transaction, with_frame

SQL = "erasure/erasure.sql"

#: CLI option / form field -> identifier kind
ID_KINDS = {
    "email": "email", "phone": "phone", "account_id": "account", "customer_id": "customer",
    "line_id": "platform_user", "cookie_id": "cookie", "device_id": "device_ad_id",
}
DEFAULT_DEADLINE_DAYS = 30  # GDPR: one month; Thailand PDPC: 90 days at most.
MAX_DEADLINE_DAYS = 90
MAX_REQUESTER = 200
_PHONE_CHARS = re.compile(r"^[\s\d+\-().]+$")


class InvalidRequest(ValueError):
    """A deletion request that cannot be registered; the message is safe to show (no value in it)."""


@dataclass(frozen=True)
class Request:
    option: str          # a key of ID_KINDS
    identifier: str
    requester: str = "DPO"
    deadline_days: int = DEFAULT_DEADLINE_DAYS


@lru_cache(maxsize=1)
def max_lengths() -> dict[str, int]:
    """Longest value the policy accepts for each identifier kind (a longer one cannot be in the data)."""
    out: dict[str, int] = {}
    for src in load_policy().values():
        for c in src.identifier_columns:
            if c.max_length:
                out[c.kind] = max(out.get(c.kind, 0), c.max_length)
    return out


def _has_hidden_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for ch in text)


def check_requester(requester) -> str:
    from plus_analytics.gate.detectors import detect

    if not isinstance(requester, str) or not requester.strip():
        raise InvalidRequest("the requester (DPO name or ticket) is empty")
    requester = requester.strip()
    if len(requester) > MAX_REQUESTER or _has_hidden_characters(requester):
        raise InvalidRequest(f"the requester must be at most {MAX_REQUESTER} visible characters")
    if detect(requester, max_len=None):
        raise InvalidRequest("the requester looks like it holds personal data (an e-mail, phone or id): "
                             "give a name or ticket number only")
    return requester


def check_deadline(days) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DEADLINE_DAYS:
        raise InvalidRequest(f"the deadline must be a whole number of days from 1 to {MAX_DEADLINE_DAYS}")
    return days


def validate(req: Request) -> tuple[str, str, str, int]:
    """(kind, normalized identifier, requester, deadline days) of a valid request; else InvalidRequest."""
    kind = ID_KINDS.get(req.option)
    if kind is None:
        raise InvalidRequest(f"unknown identifier kind {req.option!r}: one of {', '.join(sorted(ID_KINDS))}")
    value = req.identifier
    label = req.option.replace("_", " ")
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"the {label} is empty")
    if _has_hidden_characters(value):
        raise InvalidRequest(f"the {label} contains control or invisible characters: type it again")
    limit = max_lengths().get(kind, 64)
    if len(value.strip()) > limit:
        raise InvalidRequest(f"the {label} is longer than {limit} characters: no such value can be in the data")
    if kind == "phone" and not _PHONE_CHARS.match(value):
        raise InvalidRequest("a phone number has only digits, spaces and + - ( ) .")
    try:
        normalized = normalize(kind, value)
    except InvalidIdentifier as exc:
        raise InvalidRequest(f"the {label} is invalid ({exc})") from None
    return kind, normalized, check_requester(req.requester), check_deadline(req.deadline_days)


def new_request_id(now: dt.datetime) -> str:
    letters = uuid.uuid4().hex[:10].translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))
    return f"DSR-{now:%Y%m%d}-{letters}"


def register_many(con, key: MasterKey, tomb_key: MasterKey, requests: list[Request],
                  received_at: dt.datetime | None = None) -> list[str]:
    """Validate every request (all or none are registered), then record them in one transaction of the
    privacy ledger (``con``): the pseudonym and blind index of the identifier, its forms sealed, and a
    ``registered`` evidence record each. Returns the request ids, in order."""
    checked = [validate(r) for r in requests]
    now = received_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ids = [new_request_id(now) for _ in requests]
    tomb_rows, subject_rows, records = [], [], []
    for rid, req, (kind, normalized, requester, days) in zip(ids, requests, checked):
        tomb_rows.append((rid, now, requester, kind, now + dt.timedelta(days=days), "pending"))
        subject_rows.append((rid, kind, key.pseudonym(kind, normalized), key.version, tomb_key.pseudonym(kind, normalized),
                             seal(tomb_key, rid, kind, normalized, [normalized, req.identifier.strip(), req.identifier])))
        records.append(dict(request_id=rid, event="registered", detail=f"identifier kind {kind}; deadline {days} days"))
    with transaction(con):
        with_frame(con, "_new_requests", pd.DataFrame(tomb_rows, columns=["r", "t", "q", "k", "d", "s"], dtype=object),
                   sqlf.named(SQL, "register_requests"))
        with_frame(con, "_new_subjects", pd.DataFrame(subject_rows, columns=["r", "k", "p", "v", "b", "s"], dtype=object),
                   sqlf.named(SQL, "register_subjects"))
        insert_rows(con, "ledger.erasure_steps", [(rid, "registered", now, None) for rid in ids])
        evidence.append_many(con, records)
    return ids


def register(con, key: MasterKey, tomb_key: MasterKey, option: str, identifier: str, requester: str = "DPO",
             received_at: dt.datetime | None = None, deadline_days: int = DEFAULT_DEADLINE_DAYS) -> str:
    """Register one request (see :func:`register_many`); returns its id."""
    return register_many(con, key, tomb_key, [Request(option, identifier, requester, deadline_days)], received_at)[0]
