"""The PII patterns (``pii_patterns.yaml``): one definition each, for every dialect that needs them."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from plus_analytics.policy.files import POLICY_DIR, PolicyError, Strict, load_yaml

#: A digit as people type it: ASCII, Thai or fullwidth.
DIGIT = "[0-9๐-๙０-９]"


class _Pattern(Strict):
    regex: str
    confirm: Literal["email", "ip", "phone", "national_id", "card"] | None = None


class _PatternFile(Strict):
    patterns: dict[str, _Pattern]
    mentions: dict[str, str]


@lru_cache(maxsize=1)
def _load() -> _PatternFile:
    return load_yaml(POLICY_DIR / "pii_patterns.yaml", _PatternFile)


@lru_cache(maxsize=1)
def pii_patterns() -> dict[str, tuple[str, str | None]]:
    """{name: (regex, validator)}, with {D} expanded; each regex compiles in Python (RE2 is checked by the
    tests that run it in DuckDB)."""
    out = {}
    for name, p in _load().patterns.items():
        regex = p.regex.replace("{D}", DIGIT)
        try:
            re.compile(regex)
        except re.error as exc:
            raise PolicyError(f"pii_patterns.yaml: {name} does not compile ({exc})") from None
        out[name] = (regex, p.confirm)
    return out


@lru_cache(maxsize=1)
def mention_patterns() -> dict[str, str]:
    """{identifier kind: regex} searched in free text at ingest."""
    from plus_analytics.policy import KINDS

    patterns = pii_patterns()
    out = {}
    for name, kind in _load().mentions.items():
        if name not in patterns or kind not in KINDS:
            raise PolicyError(f"pii_patterns.yaml: mention {name} -> {kind} names an unknown pattern or kind")
        out[kind] = patterns[name][0]
    return out


def group(regex: str) -> int:
    """The group holding the value: 1 when the pattern captures it apart from its boundaries, else 0."""
    return 1 if re.compile(regex).groups else 0
