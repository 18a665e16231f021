"""Erasure finds every free text that contains any form of a subject's identifiers."""

from hypothesis import given
from hypothesis import strategies as st

from plus_analytics.erasure.verify import text_hits


def test_every_text_and_form_pair_case_insensitive_and_overlapping():
    texts = ["โทร 081-234-5678 นะ", None, "mail SOMCHAI@Example.com", "nothing here", "", "0812345678 and a@b.co"]
    forms = ["081-234-5678", "somchai@example.com", "0812345678", "12345678"]
    assert text_hits(texts, forms) == [(0, 0), (2, 1), (5, 2), (5, 3)]


def test_no_forms_or_no_texts():
    assert text_hits(["x"], []) == []
    assert text_hits([], ["abcdef"]) == []


@given(st.lists(st.text(max_size=30), max_size=20), st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5))
def test_agrees_with_the_obvious_definition(texts, forms):
    want = sorted({(i, j) for i, t in enumerate(texts) for j, f in enumerate(forms) if f.lower() in t.lower()})
    assert text_hits(texts, forms) == want
