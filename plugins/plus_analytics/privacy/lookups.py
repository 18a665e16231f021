"""Generalizations that need a maintained data set: IP to country (offline), user agent to families."""

from __future__ import annotations

from functools import lru_cache

UNKNOWN = "unknown"


@lru_cache(maxsize=1)
def _geoip():
    from geoip2fast import GeoIP2Fast

    # The IPv6 data file covers IPv4 as well; it ships inside the package (no download at run time).
    return GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz")


def ip_country(normalized_ip: str) -> str:
    code = _geoip().lookup(normalized_ip).country_code
    return code if code and len(code) == 2 and code.isalpha() else UNKNOWN


@lru_cache(maxsize=1)
def _ua_parser():
    import ua_parser

    return ua_parser.parse


_DESKTOP_OS = {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora", "FreeBSD"}
_MOBILE_OS = {"iOS", "Android", "Windows Phone", "HarmonyOS", "KaiOS"}


def parse_user_agent(ua: str | None) -> tuple[str, str, str]:
    """(device_type, os_family, browser_family); device_type is mobile, tablet, desktop, bot or other."""
    if not ua or not ua.strip():
        return (UNKNOWN, UNKNOWN, UNKNOWN)
    r = _ua_parser()(ua).with_defaults()
    os_family, browser, device = r.os.family, r.user_agent.family, r.device.family
    if device == "Spider" or "bot" in browser.lower():
        dtype = "bot"
    elif "iPad" in device or "Tablet" in device or ("Android" in os_family and "Mobile" not in ua):
        dtype = "tablet"
    elif os_family in _MOBILE_OS:
        dtype = "mobile"
    elif os_family in _DESKTOP_OS:
        dtype = "desktop"
    else:
        dtype = "other"
    def clean(x):
        return UNKNOWN if x in (None, "", "Other") else x
    return (dtype, clean(os_family), clean(browser))
