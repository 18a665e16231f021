"""The closed user-agent families against a public corpus of real user agents (the one fake-useragent ships:
agents seen on real traffic, each labeled by device type, browser and OS by its maintainers), not agents
this project generated: every family is in its closed set, the device type agrees with the corpus label
(the Android-without-"Mobile" rule included), and the allowlist names the browsers people really use."""

import json
from collections import Counter
from importlib.resources import files

import pytest

from plus_analytics.policy import generated_domains
from plus_analytics.privacy.lookups import parse_user_agent


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict]:
    lines = files("fake_useragent").joinpath("data/browsers.jsonl").read_text(encoding="utf-8").splitlines()
    rows = {}
    for line in lines:
        r = json.loads(line)
        rows[r["useragent"]] = r
    assert len(rows) > 500
    return rows


def test_every_family_is_in_its_closed_set(corpus):
    d = generated_domains()
    for ua in corpus:
        device, os_family, browser = parse_user_agent(ua)
        assert device in d["device_type"].values and os_family in d["os_family"].values and browser in d["browser_family"].values


def test_device_type_agrees_with_the_corpus_labels(corpus):
    got = Counter((r["type"], parse_user_agent(ua)[0]) for ua, r in corpus.items())
    agree = sum(n for (label, ours), n in got.items() if label == ours)
    assert agree / sum(got.values()) >= 0.99, got
    android_no_mobile = Counter((r["type"], parse_user_agent(ua)[0]) for ua, r in corpus.items()
                                if "Android" in ua and "Mobile" not in ua)
    assert android_no_mobile and all(label == ours for (label, ours) in android_no_mobile), android_no_mobile


def test_the_allowlist_names_the_browsers_and_systems_real_traffic_uses(corpus):
    parsed = [parse_user_agent(ua) for ua in corpus]
    assert sum(b != "other" for _, _, b in parsed) / len(parsed) >= 0.98
    assert sum(o != "other" for _, o, _ in parsed) / len(parsed) >= 0.99
