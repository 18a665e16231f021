"""Identifiers typed into free text are found as written, so erasure can remove the exact bytes."""

import contextlib

import duckdb
import numpy as np
import pytest

from plus_analytics.generate.pools import phone_forms
from plus_analytics.policy.patterns import group, mention_patterns
from plus_analytics.privacy.normalize import InvalidIdentifier, normalize

TEMPLATES = ["โทร{}ได้เลยค่ะ", "เบอร์ติดต่อ {} นะครับ", "Please call me at {}", "{}", "call:{}."]


def extract(text: str, kind: str) -> list[str]:
    con = duckdb.connect()
    rx = mention_patterns()[kind]
    out = con.execute("select regexp_extract_all($t, $rx, $g)", {"t": text, "rx": rx, "g": group(rx)}).fetchone()[0]
    con.close()
    return [v.strip(" -") for v in out]


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_written_phone_form_is_extracted_whole(template):
    written, canonical = phone_forms(np.random.default_rng(3), 60)
    for w, e164 in zip(written, canonical):
        text = template.format(w)
        found = extract(text, "phone")
        normalized = set()
        for v in found:
            with contextlib.suppress(InvalidIdentifier):
                normalized.add(normalize("phone", v))
        assert e164 in normalized, (w, found)
        assert any(w.strip() in text and v in w for v in found)


def test_email_and_line_id_mentions():
    assert extract("อีเมล Somchai.J@Gmail.com ค่ะ", "email") == ["Somchai.J@Gmail.com"]
    assert extract("LINE ผม U" + "a1" * 16 + " ครับ", "platform_user") == ["U" + "a1" * 16]
    assert extract("เลขบัตร 1-1017-00230-70-8 ครับ", "national_id") == ["1-1017-00230-70-8"]

