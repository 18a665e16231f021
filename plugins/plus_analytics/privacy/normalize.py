"""Normalization of identifiers, so that one person maps to one pseudonym.

Pure functions, no I/O. Each returns the canonical form or raises :class:`InvalidIdentifier` with a
reason that never contains the value itself (reasons end up in quarantine rows, logs and reports).
They run once per *distinct* raw value (see :mod:`plus_analytics.privacy.identifiers`), never per row.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

import phonenumbers


class InvalidIdentifier(ValueError):
    """A value that cannot be normalized; the message is safe to log (it never echoes the value)."""


#: Thai digits ๐-๙ are not mapped by NFKC; fullwidth and other Nd digits are, after NFKC.
_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")
#: Zero-width and direction-control characters that copy-paste drags into identifiers.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_EMAIL_LOCAL = re.compile(r"^[^\s@\"(),:;<>\[\]\\]{1,64}$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[^\W_](?:[\w-]{0,61}[^\W_])?$", re.UNICODE)
_IPV4_STRICT = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")


def _clean(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier("not a string")
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", value)).strip()


def digits_to_ascii(value: str) -> str:
    """Thai and fullwidth (any Unicode decimal) digits to ASCII, everything else unchanged."""
    value = value.translate(_THAI_DIGITS)
    return "".join(str(unicodedata.digit(ch)) if ch.isdigit() and not ch.isascii() else ch for ch in value)


def normalize_email(value: str) -> str:
    v = _clean(value).casefold()
    if v.count("@") != 1:
        raise InvalidIdentifier("email must contain exactly one @")
    local, domain = v.split("@")
    if not _EMAIL_LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidIdentifier("email local part is invalid")
    domain = domain.rstrip(".")
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_DOMAIN_LABEL.match(lb) for lb in labels):
        raise InvalidIdentifier("email domain is invalid")
    return f"{local}@{domain}"


def normalize_phone(value: str, region: str = "TH") -> str:
    v = digits_to_ascii(_clean(value))
    if not re.search(r"\d", v):
        raise InvalidIdentifier("phone has no digits")
    try:
        num = phonenumbers.parse(v, region)
    except phonenumbers.NumberParseException:
        raise InvalidIdentifier("phone cannot be parsed") from None
    if not phonenumbers.is_possible_number(num):
        raise InvalidIdentifier("phone is not a possible number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def normalize_ip(value: str) -> str:
    """Canonical text form: IPv4 dotted quad, IPv6 compressed; IPv4-mapped IPv6 becomes IPv4.

    Zone ids (``fe80::1%eth0``) are stripped. Leading zeros, octal, hex, shortened (``127.1``) and integer
    forms are rejected, not reinterpreted: inet_aton would read ``010.0.0.1`` as 8.0.0.1, and guessing
    there would silently merge or split visitors.
    """
    v = _clean(value)
    if not v:
        raise InvalidIdentifier("ip is empty")
    if ":" in v:
        v = v.split("%", 1)[0]
        if v.startswith("[") and v.endswith("]"):
            v = v[1:-1]
        tail = v.rsplit(":", 1)[-1]
        if "." in tail and not _IPV4_STRICT.match(tail):
            raise InvalidIdentifier("ip has a malformed embedded IPv4 part")
        try:
            addr = ipaddress.IPv6Address(v)
        except ValueError:
            raise InvalidIdentifier("ip is not a valid IPv6 address") from None
        mapped = addr.ipv4_mapped
        return str(mapped) if mapped is not None else addr.compressed
    if not _IPV4_STRICT.match(v):
        raise InvalidIdentifier("ip is not a canonical IPv4 dotted quad (leading zeros, octal, hex or short forms are rejected)")
    return v  # the strict pattern admits only the canonical form (str(IPv4Address(v)) == v, tested)


def ip_prefix(normalized_ip: str) -> str:
    """Network prefix kept for coarse analysis: IPv4 /24, IPv6 /48."""
    if ":" not in normalized_ip:  # a normalized IPv4 is a canonical dotted quad
        return normalized_ip.rsplit(".", 1)[0] + ".0/24"
    addr = ipaddress.ip_address(normalized_ip)
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def thai_id_checksum_ok(digits: str) -> bool:
    if len(digits) != 13 or not digits.isdigit():
        return False
    total = sum(int(d) * (13 - i) for i, d in enumerate(digits[:12]))
    return (11 - total % 11) % 10 == int(digits[12])


def normalize_national_id(value: str) -> str:
    v = re.sub(r"[\s\-]", "", digits_to_ascii(_clean(value)))
    if not thai_id_checksum_ok(v):
        raise InvalidIdentifier("national id is not 13 digits with a valid checksum")
    return v


#: The canonical platform ids, as a pattern (printable ASCII, no space at either end): normalization
#: leaves them unchanged, so ingest settles them inside DuckDB without a round trip through Python.
CANONICAL_PLATFORM_ID = "[!-~]([ -~]*[!-~])?"


def normalized_elsewhere(kind: str) -> bool:
    """True for the kinds whose normalization is more than :func:`normalize_platform_id`."""
    return kind in _NORMALIZERS


def normalize_platform_id(value: str) -> str:
    if isinstance(value, str) and value.isascii() and value.isprintable() and value == value.strip(" ") and value:
        return value  # already canonical: NFKC, invisible-character removal and strip leave it unchanged
    v = _clean(value)
    if not v:
        raise InvalidIdentifier("identifier is empty")
    if not (v.isascii() and v.isprintable()) and any(unicodedata.category(ch).startswith("C") for ch in v):
        raise InvalidIdentifier("identifier contains control characters")
    return v


_NORMALIZERS = {
    "email": normalize_email,
    "phone": normalize_phone,
    "ip": normalize_ip,
    "national_id": normalize_national_id,
}


def normalize(kind: str, value: str) -> str:
    """Normalize ``value`` as an identifier of ``kind`` (platform ids, accounts, cookies: trimmed)."""
    return _NORMALIZERS.get(kind, normalize_platform_id)(value)
