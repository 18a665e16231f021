"""PII detectors: the patterns of ``pii_patterns.yaml``, each match confirmed by a validator.

A pattern finds candidates; the validator decides, with the same normalizers ingest uses (so anything
ingest would accept as a phone, e-mail or national id is one here too), plus checksums (Luhn for cards,
mod-11 for Thai ids) and context (a digit run glued to more digits is not a phone). Used by the gate on
every distinct text value of a build, and by the audit on log lines and Airflow's records. Detection
reports kinds, never the values.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from plus_analytics.policy.patterns import pii_patterns
from plus_analytics.privacy.normalize import (
    InvalidIdentifier,
    digits_to_ascii,
    normalize_email,
    normalize_national_id,
    normalize_phone,
)

MAX_TEXT_LENGTH = 64  # longest text a published mart value may be; longer may be free text


@lru_cache(maxsize=1)
def _compiled() -> list[tuple[str, re.Pattern, str | None]]:
    return [(name, re.compile(rx), v) for name, (rx, v) in pii_patterns().items()]


_HEX_TOKEN = re.compile(r"[0-9A-Za-z\-]+")
_HEX = frozenset("0123456789abcdefABCDEF-")


def _digit_glued(text: str, start: int, end: int) -> bool:
    """The digits run on past the candidate, or sit inside a machine token (a UUID, a hash, a trace id:
    16 or more hex digits and dashes): then they are not a number a person wrote."""
    before = digits_to_ascii(text[max(0, start - 2):start])
    after = digits_to_ascii(text[end:end + 2])
    if before[-1:].isdigit() or after[:1].isdigit():
        return True
    # A digit, then "." or ":", then the candidate (or the reverse): the tail of a time ("10:30:09.199240"),
    # a decimal ("3.0812345"), a version; a person's number is not written glued to another number.
    if (len(before) == 2 and before[0].isdigit() and before[1] in ".:") or \
            (len(after) == 2 and after[0] in ".:" and after[1].isdigit()):
        return True
    for m in _HEX_TOKEN.finditer(text, max(0, start - 64), min(len(text), end + 64)):
        if m.start() <= start and end <= m.end():
            return len(m.group(0)) >= 16 and set(m.group(0)) <= _HEX and m.group(0) != text[start:end]
    return False


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d >= 5 else d * 2
        total += d
    return total % 10 == 0


def _card(candidate: str) -> bool:
    """A run of digit groups holds a card when some consecutive groups (13-19 digits) pass Luhn and are
    written the way cards are: one unbroken run, or groups of 3 to 6 digits starting with a group of four
    (4-4-4-4, 4-6-5, 4-4-4-4-3). Two card numbers written one after the other with a single space are two
    cards, not one long run; a date with a counter after it (2026-10-04-1795648292) is not a card."""
    groups = re.split(r"[ \-]", digits_to_ascii(candidate))
    for i in range(len(groups)):
        if 13 <= len(groups[i]) <= 19 and _luhn(groups[i]):
            return True
        if len(groups[i]) != 4:
            continue
        digits = ""
        for g in groups[i:]:
            if not 3 <= len(g) <= 6:
                break
            digits += g
            if len(digits) > 19:
                break
            if len(digits) >= 13 and _luhn(digits):
                return True
    return False


def _valid(kind: str, validator: str | None, text: str, m: re.Match) -> bool:
    value, start, end = (m.group(1), m.start(1), m.end(1)) if m.re.groups else (m.group(0), m.start(), m.end())
    try:
        if validator is None:
            return True
        if validator == "email":
            normalize_email(value)
        elif validator == "ip":
            ipaddress.ip_address(value)
        elif validator == "phone":
            # Numbers in national form start 0 and a non-zero digit, or 00 and a country code: "000..." is a
            # zero-padded counter (an event id), whatever a lenient parser makes of it.
            # "0.21234567" is a decimal fraction, not Bangkok's 02-123-4567.
            if _digit_glued(text, start, end) or re.sub(r"\D", "", digits_to_ascii(value)).startswith("000") \
                    or re.fullmatch(r"0\.\d+", digits_to_ascii(value)):
                return False
            normalize_phone(value)
        elif validator == "national_id":
            if _digit_glued(text, start, end):
                return False
            normalize_national_id(value)
        elif validator == "card":
            return not _digit_glued(text, start, end) and _card(value)
        return True
    except (InvalidIdentifier, ValueError):
        return False


def detect(text: str | None, max_len: int | None = MAX_TEXT_LENGTH) -> set[str]:
    """The PII kinds found in ``text`` (empty when clean); ``too_long`` past ``max_len`` characters."""
    if not text:
        return set()
    found = {"too_long"} if max_len is not None and len(text) > max_len else set()
    for name, rx, validator in _compiled():
        if name in found:
            continue
        for m in rx.finditer(text):
            if _valid(name, validator, text, m):
                found.add(name)
                break
    return found


def detect_values(values: list[str | None], max_len: int | None = MAX_TEXT_LENGTH) -> list[list[str]]:
    """The detector kinds found in each value, sorted (for tests and reports)."""
    return [sorted(detect(v, max_len)) for v in values]
