"""What a team would write instead: a straightforward pandas pipeline, row by row.

Reads the usage-event exports line by line, validates each row in Python, normalizes and
HMACs identifiers per row (no dictionary), parses every user agent and looks up every IP per row,
applies analytics consent with merge_asof, and builds mart_daily_active_usage with the same small-cell
rule. The benchmark checks that its mart equals ours and times it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from pathlib import Path

import pandas as pd

from plus_analytics.privacy.keys import MasterKey, to_pseudonym
from plus_analytics.privacy.lookups import ip_country, parse_user_agent
from plus_analytics.privacy.normalize import InvalidIdentifier, normalize

REQUIRED = ("event_id", "event_ts", "account_id", "session_id", "product", "event_type", "ip")
LIMITS = {"event_id": 64, "account_id": 64, "session_id": 64, "cookie_id": 64, "event_type": 40, "feature": 60,
          "ip": 64, "user_agent": 1024}
PRODUCTS = {"connect", "crm", "adtech", "platform"}
_DOTTED = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")


def _row_ok(row) -> bool:
    if not isinstance(row, dict) or set(row) - set(LIMITS) - {"product", "event_ts"}:
        return False
    if any(not isinstance(row.get(k), str) for k in REQUIRED):
        return False
    if any(row.get(k) is not None and (not isinstance(row[k], str) or len(row[k]) > n) for k, n in LIMITS.items()):
        return False
    if row["product"] not in PRODUCTS:
        return False
    try:
        dt.datetime.fromisoformat(row["event_ts"])
        normalize("ip", row["ip"])
        for kind, col in (("account", "account_id"), ("session", "session_id"), ("cookie", "cookie_id")):
            if row.get(col) is not None:
                normalize(kind, row[col])
    except (ValueError, InvalidIdentifier):
        return False
    return True


def load_usage(landing: Path, days: list[dt.date]) -> pd.DataFrame:
    rows, seen = [], set()
    for d in days:
        for f in sorted((landing / "platform_usage_events" / f"dt={d}").glob("*.ndjson")):
            for raw in f.read_bytes().split(b"\n"):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                    json.dumps(row, ensure_ascii=False).encode("utf-8")
                except (UnicodeError, ValueError):
                    continue
                if _row_ok(row) and row["event_id"] not in seen:
                    seen.add(row["event_id"])
                    rows.append(row)
    return pd.DataFrame(rows)


def load_consent(landing: Path, until: dt.date) -> pd.DataFrame:
    rows = []
    for f in sorted((landing / "platform_consent").glob("dt=*/*.ndjson")):
        if dt.date.fromisoformat(f.parent.name[3:]) > until:
            continue
        for raw in f.read_bytes().split(b"\n"):
            try:
                row = json.loads(raw.decode("utf-8"))
                json.dumps(row, ensure_ascii=False).encode("utf-8")
                ts = pd.Timestamp(row["recorded_at"]).tz_convert(None)
            except (UnicodeError, ValueError, TypeError, KeyError, AttributeError):
                continue
            if row.get("purpose") == "analytics" and isinstance(row.get("granted"), bool) and isinstance(row.get("cookie_id"), str) \
                    and isinstance(row.get("consent_id"), str) and len(row.get("source") or "") <= 40 and len(row["cookie_id"]) <= 64:
                rows.append({"cookie": row["cookie_id"].strip(), "recorded_at": ts, "granted": row["granted"]})
    return pd.DataFrame(rows, columns=["cookie", "recorded_at", "granted"])


def mart_daily_active_usage(landing: Path, days: list[dt.date], key: MasterKey, k: int) -> pd.DataFrame:
    df = load_usage(landing, days)
    subkeys = {kind: key.subkey(kind) for kind in ("account", "session", "cookie")}

    def pid(kind, v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return None
        return to_pseudonym(hmac.new(subkeys[kind], normalize(kind, v).encode(), hashlib.sha256).hexdigest())

    df["account_pid"] = df["account_id"].apply(lambda v: pid("account", v))
    df["session_pid"] = df["session_id"].apply(lambda v: pid("session", v))
    df["cookie_norm"] = df["cookie_id"].apply(lambda v: None if v is None or pd.isna(v) else normalize("cookie", v))
    df["ip_norm"] = df["ip"].apply(lambda v: normalize("ip", v))
    df["country"] = df["ip_norm"].apply(ip_country)
    ua = df["user_agent"].apply(lambda v: parse_user_agent(v if isinstance(v, str) else None))
    df["device_type"], df["os_family"], df["browser_family"] = zip(*ua) if len(df) else ([], [], [])
    df["visitor"] = df["ip_norm"] + "\x1f" + df["user_agent"].fillna("") + "\x1f" + df["account_id"]
    df["ts"] = pd.to_datetime(df["event_ts"], utc=True).dt.tz_convert(None)
    df["day"] = df["ts"].dt.date

    consent = load_consent(landing, max(days)).sort_values("recorded_at")
    df = df.sort_values("ts")
    with_cookie = df[df["cookie_norm"].notna()]
    merged = pd.merge_asof(with_cookie, consent.rename(columns={"cookie": "cookie_norm"}), left_on="ts", right_on="recorded_at",
                           by="cookie_norm", direction="backward")
    excluded = set(merged.loc[merged["granted"] == False, "event_id"])  # noqa: E712
    df = df[~df["event_id"].isin(excluded)]

    frames = []
    for dim in ("all", "device_type", "os_family", "browser_family", "country"):
        f = df[["day", "product", "account_pid", "session_pid", "visitor"]].copy()
        f["dimension"] = dim
        f["dimension_value"] = "all" if dim == "all" else df[dim]
        frames.append(f)
    long = pd.concat(frames)
    people = long.groupby(["day", "product", "dimension", "dimension_value"])["account_pid"].transform("nunique")
    long.loc[people < k, "dimension_value"] = "(other)"
    out = long.groupby(["day", "product", "dimension", "dimension_value"]).agg(
        active_accounts=("account_pid", "nunique"), unique_visitors=("visitor", "nunique"),
        sessions=("session_pid", "nunique"), events=("account_pid", "size")).reset_index()
    out = out[out["active_accounts"] >= k]
    return out.sort_values(["day", "product", "dimension", "dimension_value"]).reset_index(drop=True)
