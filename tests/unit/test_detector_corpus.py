"""The detectors against a table of real-world forms (tests/data/detector_corpus.yaml): every positive
found with its kind, no negative flagged. bench/detectors.py prints the same measurement per kind."""

from pathlib import Path

import pytest
import yaml

from plus_analytics.gate.detectors import detect

CORPUS = yaml.safe_load((Path(__file__).parents[1] / "data" / "detector_corpus.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind,text", [(k, t) for k, ts in CORPUS["positives"].items() for t in ts])
def test_every_real_world_form_is_found(kind, text):
    assert kind in detect(text, max_len=None)


@pytest.mark.parametrize("text", CORPUS["negatives"])
def test_look_alikes_are_not_flagged(text):
    assert detect(text, max_len=None) == set()


def test_whatever_ingest_accepts_as_a_phone_the_gate_calls_a_phone():
    """Thai numbers in every grouping the normalizer accepts are detected (the gap issue 12 found)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from plus_analytics.privacy.normalize import InvalidIdentifier, normalize_phone

    sep = st.sampled_from(["", " ", "-", "."])

    @given(st.sampled_from(["02", "053", "081", "089", "066", "038"]), st.lists(st.integers(0, 9), min_size=6, max_size=7),
           sep, sep, st.booleans())
    @settings(max_examples=300, deadline=None)
    def check(prefix, digits, s1, s2, paren):
        rest = "".join(map(str, digits))
        written = (f"({prefix}) " if paren else prefix + s1) + rest[:3] + s2 + rest[3:]
        try:
            normalize_phone(written)
        except InvalidIdentifier:
            return
        assert "phone" in detect(f"โทร {written} ค่ะ", max_len=None), written

    check()
