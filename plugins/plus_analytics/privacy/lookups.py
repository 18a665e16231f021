"""Generalizations that need a maintained data set: IP to country (offline), user agent to closed families.

Both produce values from closed sets only (the policy's ``countries.yaml`` and ``user_agents.yaml``):
the libraries' own outputs are open-ended (ua-parser copies family names out of the user-agent string,
so a crafted agent could put a person's name there), and nothing open-ended may reach a mart.
"""

from __future__ import annotations

import re
from functools import lru_cache

from plus_analytics.policy import OTHER, UNKNOWN, countries, user_agent_families


@lru_cache(maxsize=1)
def _geoip():
    from geoip2fast import GeoIP2Fast

    # The IPv6 data file covers IPv4 as well; it ships inside the package (no download at run time).
    return GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz")


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(countries())


def ip_country(normalized_ip: str) -> str:
    """ISO 3166-1 alpha-2 code of the address's country, or ``unknown`` (private ranges, unassigned, or a
    code the data file has that is not a country, such as EU or AP)."""
    code = _geoip().lookup(normalized_ip).country_code
    return code if code in _countries() else UNKNOWN


@lru_cache(maxsize=1)
def _ua_parser():
    import ua_parser

    return ua_parser.parse


@lru_cache(maxsize=1)
def _families() -> tuple[frozenset[str], frozenset[str]]:
    browsers, systems = user_agent_families()
    return frozenset(browsers), frozenset(systems)


_DESKTOP_OS = {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora", "FreeBSD", "Debian"}
_MOBILE_OS = {"iOS", "Android", "Windows Phone", "HarmonyOS", "KaiOS", "Tizen"}
#: Android tablets by model (when the agent lacks the token that would say so): Samsung Galaxy Tab
#: (SM-T, SM-X, SM-P), Lenovo/Xiaomi/Huawei/Honor/Realme/OPPO pads, Nexus 7/9/10, Amazon Fire (KF..).
_ANDROID_TABLET = re.compile(r"\b(SM-[TXP]\d|Tab\b|TB-|Pad\b|MediaPad|MatePad|Nexus (7|9|10)\b|KF[A-Z]{2,4}\b|Kindle)", re.I)
#: Televisions and set-top boxes (Android TV, Fire TV, smart TVs): neither phones nor tablets.
_TV = re.compile(r"(Android TV|\bAFT[A-Z]|BRAVIA|SmartTV|SMART-TV|GoogleTV|\bTV\b)", re.I)


def device_type(ua: str, os_family: str, device_family: str, browser: str) -> str:
    """mobile, tablet, desktop, bot or other.

    Android agents carry "Mobile" on phones and leave it out on tablets (Google's guidance, which
    Chrome, Samsung Internet and Firefox follow, and Chrome's reduced agent keeps). App HTTP clients
    (Dalvik, okhttp) never carry it, phones included: there the model decides, and an unknown model is
    a phone (most Android devices are). Televisions are ``other``."""
    if device_family == "Spider" or "bot" in browser.lower():
        return "bot"
    if "iPad" in device_family or "Tablet" in device_family:
        return "tablet"
    if "Android" in os_family or "Android" in ua:
        if _TV.search(ua):
            return OTHER
        if _ANDROID_TABLET.search(ua):
            return "tablet"
        if "Mobile" in ua or ua.startswith(("Dalvik/", "okhttp/")):
            return "mobile"
        return "tablet"
    if os_family in _MOBILE_OS:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return OTHER


def parse_user_agent(ua: str | None) -> tuple[str, str, str]:
    """(device_type, os_family, browser_family), each from its closed set: families outside the
    allowlist become ``other``; a missing or blank agent gives ``unknown`` for all three."""
    if not ua or not ua.strip():
        return (UNKNOWN, UNKNOWN, UNKNOWN)
    r = _ua_parser()(ua).with_defaults()
    os_family, browser, device = r.os.family, r.user_agent.family, r.device.family
    browsers, systems = _families()
    return (device_type(ua, os_family, device, browser),
            os_family if os_family in systems else OTHER,
            browser if browser in browsers else OTHER)
