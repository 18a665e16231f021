"""What the dashboards show, read from the published analytics database only.

Each read opens the published file read-only with no access to any other file (the restricted zone and
staging are files too), so a dashboard can show nothing a mart does not hold, and a publish (an atomic
rename) never disturbs it: each request sees one whole build. The charts are plotly.js figure specs
(plain data: the browser draws them); a count the marts left out because it would describe fewer than k
people is shown as suppressed, never as zero.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from plus_analytics.config import Paths
from plus_analytics.marts.publish import analyst_connection
from plus_analytics.policy import product_sources
from plus_analytics.storage import sql as sqlf

SQL = "dashboards/dashboards.sql"
PRODUCTS = ("connect", "crm", "adtech", "platform")

#: The marts served as JSON and CSV, and how the product filter applies to each: its own product column,
#: its sources (consent exclusions), or the one product the mart is about.
MARTS = {
    "mart_daily_active_usage": {"product_column": True},
    "mart_feature_usage": {"product_column": True},
    "mart_chat_volume": {"owner": "connect"},
    "mart_crm_activity": {"owner": "crm"},
    "mart_crm_pipeline": {"owner": "crm"},
    "mart_ad_performance": {"owner": "adtech"},
    "meta_consent_exclusions": {"source_column": True},
}


class NotPublished(LookupError):
    """Nothing is published yet."""


class BadFilter(ValueError):
    """A filter value that is not a date or a product; the message says which."""


@dataclass(frozen=True)
class Filters:
    first: dt.date
    last: dt.date
    product: str

    @classmethod
    def parse(cls, first: str | None, last: str | None, product: str | None, covered: tuple[dt.date, dt.date]) -> Filters:
        """The request's filters; defaults: the last 30 days the marts cover, every product."""
        try:
            last_day = dt.date.fromisoformat(last) if last else covered[1]
            first_day = dt.date.fromisoformat(first) if first else max(covered[0], last_day - dt.timedelta(days=29))
        except ValueError:
            raise BadFilter("from and to must be dates (YYYY-MM-DD)") from None
        if first_day > last_day:
            raise BadFilter("from must not be after to")
        product = product or "all"
        if product != "all" and product not in PRODUCTS:
            raise BadFilter(f"product must be all or one of {', '.join(PRODUCTS)}")
        return cls(first_day, last_day, product)

    def params(self) -> dict:
        return {"first": self.first, "last": self.last, "product": self.product,
                "sources": list(product_sources().get(self.product, ()))}


@dataclass(frozen=True)
class Build:
    """The published build the dashboards show."""

    build_id: str
    built_at: dt.datetime
    published_at: dt.datetime
    k: int
    covered: tuple[dt.date, dt.date]

    def label(self) -> str:
        return (f"build {self.build_id}, published {self.published_at:%Y-%m-%d %H:%M} UTC; days "
                f"{self.covered[0]} to {self.covered[1]}")


class Published:
    """One read-only session on the published database (a context manager)."""

    def __init__(self, paths: Paths):
        self.paths = paths
        if not paths.analytics_db.exists():
            raise NotPublished("nothing is published yet: the marts appear after the first successful plus_marts run")

    def __enter__(self) -> Published:
        # The time of the rename that published the file: its inode's change time (reads do not change it).
        published_at = dt.datetime.fromtimestamp(self.paths.analytics_db.stat().st_ctime, dt.UTC).replace(tzinfo=None)
        self.con = analyst_connection(self.paths.analytics_db)
        build_id, built_at, k, _ = sqlf.run(self.con, SQL, "build").fetchone()
        first, last = sqlf.run(self.con, SQL, "days").fetchone()
        today = dt.datetime.now(dt.UTC).date()
        self.build = Build(build_id, built_at, published_at, int(k), (first or today, last or today))
        return self

    def __exit__(self, *exc) -> None:
        self.con.close()

    def rows(self, name: str, filters: Filters) -> list[dict]:
        cur = sqlf.run(self.con, SQL, name, sqlf.bound(sqlf.named(SQL, name), filters.params()))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def mart(self, mart: str, filters: Filters) -> tuple[list[str], list[tuple]]:
        """A mart's rows with the filters, for the platform's own dashboards (JSON and CSV)."""
        how = MARTS[mart]
        params = {**filters.params(), "owner": how.get("owner", "")}
        sql = sqlf.named(SQL, "mart_rows", mart=sqlf.q(mart), product_column=how.get("product_column", False),
                         source_column=how.get("source_column", False))
        cur = self.con.execute(sql, sqlf.bound(sql, params))
        return [d[0] for d in cur.description], cur.fetchall()


def gate_blocked(paths: Paths, build: Build) -> dict | None:
    """The newest build the PII gate blocked after the published one was published, if any: the dashboards
    then say they show the last published build. Reads the gate's report (build id and verdict only)."""
    newest = None
    for report in (paths.reports / "gate").glob("*/gate_report.json"):
        when = dt.datetime.fromtimestamp(report.stat().st_mtime, dt.UTC).replace(tzinfo=None)
        if when > build.published_at and (newest is None or when > newest[0]):
            newest = (when, report)
    if newest is None:
        return None
    try:
        verdict = json.loads(newest[1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if verdict.get("passed") or verdict.get("build_id") == build.build_id:
        return None
    return {"build_id": str(verdict.get("build_id")), "blocked_at": newest[0]}


# ------------------------------------------------------------------------------------------ the charts

def _days(filters: Filters, covered: tuple[dt.date, dt.date]) -> list[dt.date]:
    first, last = max(filters.first, covered[0]), min(filters.last, covered[1])
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)] if first <= last else []


def _series(rows: list[dict], days: list[dt.date], key: str, value: str) -> tuple[dict[str, list], list[str]]:
    """{series: values per day} with None where the marts hold no row for that day and series: a cell they
    left out (fewer than k people) is a gap, never a zero. Returns the series and the suppressed cells."""
    by = {}
    for r in rows:
        by.setdefault(str(r[key]), {})[r["day"]] = r[value]
    out, suppressed = {}, []
    for name in sorted(by):
        values = [by[name].get(d) for d in days]
        suppressed += [f"{name} {d}" for d, v in zip(days, values) if v is None]
        out[name] = [None if v is None else float(v) for v in values]
    return out, suppressed


def _lines(series: dict[str, list], days: list[dt.date], kind: str = "scatter") -> list[dict]:
    x = [d.isoformat() for d in days]
    if kind == "bar":
        return [{"type": "bar", "name": name, "x": x, "y": ys} for name, ys in series.items()]
    return [{"type": "scatter", "mode": "lines+markers", "name": name, "x": x, "y": ys, "connectgaps": False}
            for name, ys in series.items()]


def _chart(chart_id: str, title: str, data: list[dict], build: Build, y: str = "", x: str = "", notes: list[str] | None = None,
           barmode: str | None = None, days: list[dt.date] | None = None) -> dict:
    layout = {"title": {"text": title}, "margin": {"t": 48, "r": 56, "b": 96, "l": 64}, "height": 380,
              "legend": {"orientation": "h", "y": -0.22, "yanchor": "top"},
              "yaxis": {"title": {"text": y}, "rangemode": "tozero", "automargin": True},
              "xaxis": {"title": {"text": x}, "automargin": True}}
    if days:  # a time series: one tick a day, or every few days over a long range
        layout["xaxis"].update({"type": "date", "tickformat": "%b %d", "dtick": 86_400_000 * max(1, -(-len(days) // 10))})
    if barmode:
        layout["barmode"] = barmode
    points = sum(len([v for v in trace.get("y", trace.get("x", [])) if v is not None]) for trace in data)
    return {"id": chart_id, "title": title, "figure": {"data": data, "layout": layout}, "points": points,
            "notes": notes or [], "build": build.label()}


def _suppressed_note(cells: list[str], k: int) -> list[str]:
    if not cells:
        return []
    shown = ", ".join(cells[:6]) + (f" and {len(cells) - 6} more" if len(cells) > 6 else "")
    return [f"Suppressed (fewer than {k} people, not zero): {shown}."]


def charts(pub: Published, filters: Filters) -> list[dict]:
    """Every chart of the dashboards page, for the filters."""
    b = pub.build
    days = _days(filters, b.covered)
    out = []

    usage = pub.rows("usage_by_product", filters)
    series, cells = _series(usage, days, "product", "active_accounts")
    out.append(_chart("usage_accounts", "Daily active accounts by product", _lines(series, days), b, "accounts",
                      notes=_suppressed_note(cells, b.k), days=days))
    visitors, cells_v = _series(usage, days, "product", "unique_visitors")
    sessions, _ = _series(usage, days, "product", "sessions")
    out.append(_chart("usage_visitors", "Unique visitors and sessions by product",
                      _lines({f"{p} visitors": v for p, v in visitors.items()}, days)
                      + _lines({f"{p} sessions": v for p, v in sessions.items()}, days), b, "per day",
                      notes=_suppressed_note(cells_v, b.k), days=days))

    dims = pub.rows("usage_by_dimension", filters)
    for dim, label, plural in (("device_type", "device type", "device types"), ("os_family", "operating system", "operating systems"),
                               ("browser_family", "browser", "browsers"), ("country", "country", "countries")):
        mine = [r for r in dims if r["dimension"] == dim][:12]
        out.append(_chart(f"usage_{dim}", f"Active account-days by {label}",
                          [{"type": "bar", "orientation": "h", "x": [r["account_days"] for r in mine][::-1],
                            "y": [r["dimension_value"] for r in mine][::-1], "name": label}], b, x="account-days",
                          notes=[f"(other) merges the {plural} used by fewer than {b.k} accounts on a day; a day's (other) "
                                 f"below {b.k} is left out."] if any(r["dimension_value"] == "(other)" for r in mine) else []))

    features = pub.rows("feature_usage", filters)[:15]
    out.append(_chart("feature_adoption", "Feature adoption: events and average daily accounts",
                      [{"type": "bar", "name": "events", "x": [r["feature"] for r in features], "y": [r["events"] for r in features],
                        "offsetgroup": 1},
                       {"type": "bar", "name": "average daily accounts", "x": [r["feature"] for r in features],
                        "y": [float(r["avg_daily_accounts"]) for r in features], "yaxis": "y2", "offsetgroup": 2}], b, "events",
                      barmode="group"))
    out[-1]["figure"]["layout"]["yaxis2"] = {"title": {"text": "accounts"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}

    chat = pub.rows("chat_volume", filters)
    conv, cells = _series(chat, days, "channel", "conversations")
    out.append(_chart("chat_volume", "Chat conversations by channel", _lines(conv, days, "bar"), b, "conversations",
                      barmode="stack", notes=_suppressed_note(cells, b.k), days=days))
    median, _ = _series(chat, days, "channel", "median_first_response_seconds")
    p90, _ = _series(chat, days, "channel", "p90_first_response_seconds")
    out.append(_chart("chat_response", "First response time by channel (median and p90)",
                      _lines({f"{c} median": v for c, v in median.items()}, days)
                      + [{**t, "line": {"dash": "dot"}} for t in _lines({f"{c} p90": v for c, v in p90.items()}, days)],
                      b, "seconds", notes=_suppressed_note(cells, b.k), days=days))

    crm = pub.rows("crm_activity", filters)
    acts, cells = _series(crm, days, "activity_type", "activities")
    out.append(_chart("crm_activity", "CRM activity by type", _lines(acts, days, "bar"), b, "activities", barmode="stack",
                      notes=_suppressed_note(cells, b.k), days=days))
    pipeline = pub.rows("crm_pipeline", filters)
    flows = {what: _series([{**r, "what": what} for r in pipeline], days, "what", what)[0].get(what, [None] * len(days))
             for what in ("deals_created", "deals_won", "deals_lost")}
    value = _series([{**r, "what": "open pipeline (THB)"} for r in pipeline], days, "what", "open_pipeline_value_thb")[0]
    missing = [str(d) for d, v in zip(days, flows["deals_created"]) if v is None]
    out.append(_chart("crm_pipeline", "CRM pipeline: deals created, won, lost; open pipeline value",
                      _lines(flows, days, "bar") + [{**t, "yaxis": "y2"} for t in _lines(value, days)], b, "deals",
                      barmode="group", notes=_suppressed_note([f"pipeline {d}" for d in missing], b.k), days=days))
    out[-1]["figure"]["layout"]["yaxis2"] = {"title": {"text": "THB"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}

    ads = pub.rows("ad_performance", filters)
    names = [f"{r['channel']} / {r['objective']}" for r in ads]
    out.append(_chart("ad_performance", "Ad spend and conversions by channel and objective",
                      [{"type": "bar", "name": "spend (THB)", "x": names, "y": [float(r["spend_thb"] or 0) for r in ads], "offsetgroup": 1},
                       {"type": "bar", "name": "conversions", "x": names, "y": [r["conversions"] for r in ads], "yaxis": "y2",
                        "offsetgroup": 2}],
                      b, "THB", barmode="group"))
    out[-1]["figure"]["layout"]["yaxis2"] = {"title": {"text": "conversions"}, "overlaying": "y", "side": "right",
                                             "rangemode": "tozero"}
    out[-1]["table"] = {"columns": ["channel", "objective", "impressions", "clicks", "CTR", "spend (THB)", "conversions",
                                    "CPA (THB)", "reach"],
                        "rows": [[r["channel"], r["objective"], f"{r['impressions']:,}", f"{r['clicks']:,}",
                                  "" if r["ctr"] is None else f"{float(r['ctr']):.2%}", f"{float(r['spend_thb'] or 0):,.2f}",
                                  f"{r['conversions']:,}", "" if r["cpa_thb"] is None else f"{float(r['cpa_thb']):,.2f}",
                                  f"fewer than {b.k} on {r['reach_suppressed_days']} of {r['campaign_days']} campaign-days"
                                  if r["reach_suppressed_days"] else "published"] for r in ads]}

    consent = pub.rows("consent_exclusions", filters)
    excluded, _ = _series(consent, days, "purpose", "events_excluded")
    out.append(_chart("consent_exclusions", "Events excluded for lack of cookie consent, by purpose",
                      _lines(excluded, days, "bar"), b, "events", barmode="stack", days=days))
    return out


def as_json_rows(columns: list[str], rows: list[tuple]) -> list[dict]:
    """Rows as JSON-ready dicts: dates as ISO text, decimals as numbers."""
    def plain(v):
        if isinstance(v, dt.date | dt.datetime):
            return v.isoformat()
        if hasattr(v, "as_integer_ratio") and not isinstance(v, int | float):
            return float(v)
        return v

    return [{c: plain(v) for c, v in zip(columns, r)} for r in rows]


def as_csv(columns: list[str], rows: list[tuple]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()

