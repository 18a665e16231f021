"""The dashboards through Airflow's own API server app (FastAPI's test client): who may see them, what they
read (the published database only, with the filters), suppressed cells shown as suppressed, and a
gate-blocked build leaving them on the last published build, saying so."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import duckdb
import pytest

from plus_analytics.config import Paths
from plus_analytics.marts import dashboards as d
from tests.console.app_client import api_client, bearer
from tests.helpers import build, copy_home, gate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def home(pipeline, tmp_path_factory) -> Paths:
    return copy_home(pipeline, tmp_path_factory.mktemp("dashboards") / "data").ensure()


@pytest.fixture(scope="module")
def client(home):
    with api_client(home) as c:
        yield c


@pytest.fixture(scope="module")
def analyst(client, home):
    return bearer(client, home, "analyst")


def _routes() -> list[str]:
    from plus_analytics.console.dashboards import app

    return ["/plus-dashboards" + r.path.replace("{name}", "mart_chat_volume.json") for r in app.routes
            if "GET" in (getattr(r, "methods", None) or ())]


ROUTES = _routes()


def test_every_route_is_checked_here():
    assert set(ROUTES) == {"/plus-dashboards/", "/plus-dashboards/api/marts.json", "/plus-dashboards/api/mart_chat_volume.json",
                           "/plus-dashboards/static/mart_chat_volume.json"}


@pytest.mark.parametrize("path", ROUTES)
def test_unauthenticated_is_refused_on_every_route(client, path):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Cookie": "_token=forged"}):
        assert client.get(path, headers=headers).status_code == 401
    assert client.post(path, data={"x": "1"}).status_code == 401


@pytest.mark.parametrize("path", ROUTES)
def test_a_user_without_the_role_is_refused_on_every_route(client, analyst, path, monkeypatch):
    monkeypatch.setenv("PLUS_DASHBOARD_ROLES", "ADMIN")
    assert client.get(path, headers=analyst).status_code == 403


def test_the_analyst_sees_the_dashboards_and_nothing_of_the_privacy_page(client, analyst, home):
    page = client.get("/plus-dashboards/", headers=analyst)
    assert page.status_code == 200 and "Plus Platform usage dashboards" in page.text
    with duckdb.connect(str(home.analytics_db), read_only=True) as con:
        build_id = con.execute("select build_id from meta_build_info").fetchone()[0]
    charts = json.loads(re.search(r'id="charts-data">(.*?)</script>', page.text, re.S).group(1))
    assert {c["id"] for c in charts} >= {"usage_accounts", "usage_visitors", "usage_device_type", "usage_os_family",
                                         "usage_browser_family", "usage_country", "feature_adoption", "chat_volume",
                                         "chat_response", "crm_activity", "crm_pipeline", "ad_performance", "consent_exclusions"}
    assert page.text.count(f"build {build_id}") == len(charts) + 1, "every chart says which build it shows"
    assert "blocked" not in page.text
    for path in ("/plus-privacy/", "/plus-privacy/report.json", "/plus-privacy/public-key.pem"):
        assert client.get(path, headers=analyst).status_code == 403
    js = client.get("/plus-dashboards/static/plotly.min.js", headers=analyst)
    assert js.status_code == 200 and b"plotly" in js.content[:2000], "plotly.js served from the plotly package"


def _published_rows(home: Paths, sql: str, params: list) -> list[tuple]:
    with duckdb.connect(str(home.analytics_db), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def test_each_mart_as_json_and_csv_with_the_filters(client, analyst, home):
    [(first, last)] = _published_rows(home, "select min(day), max(day) from mart_daily_active_usage", [])
    day = first + dt.timedelta(days=1)
    for mart in d.MARTS:
        r = client.get(f"/plus-dashboards/api/{mart}.json", params={"from": str(day), "to": str(day), "product": "all"},
                       headers=analyst)
        assert r.status_code == 200, r.text
        body = r.json()
        expected = _published_rows(home, f"select count(*) from {mart} where day = ?", [day])[0][0]
        assert len(body["rows"]) == expected and {row["day"] for row in body["rows"]} <= {str(day)}
        text = client.get(f"/plus-dashboards/api/{mart}.csv", params={"from": str(day), "to": str(day)}, headers=analyst).text
        assert len(list(csv.reader(io.StringIO(text)))) == expected + 1
    crm = client.get("/plus-dashboards/api/mart_daily_active_usage.json", params={"from": str(first), "to": str(last),
                                                                                  "product": "crm"}, headers=analyst).json()
    assert crm["rows"] and {row["product"] for row in crm["rows"]} == {"crm"}
    assert client.get("/plus-dashboards/api/mart_chat_volume.json", params={"product": "crm"}, headers=analyst).json()["rows"] == []
    consent = client.get("/plus-dashboards/api/meta_consent_exclusions.json", params={"from": str(first), "to": str(last),
                                                                                       "product": "adtech"}, headers=analyst).json()
    assert {row["source"] for row in consent["rows"]} <= {"adtech_interactions"}
    listing = client.get("/plus-dashboards/api/marts.json", headers=analyst).json()
    assert {m["name"] for m in listing["marts"]} == set(d.MARTS)


@pytest.mark.parametrize("query,code", [({"from": "yesterday"}, 400), ({"from": "2026-10-03", "to": "2026-10-01"}, 400),
                                        ({"product": "'; drop table x; --"}, 400)])
def test_bad_filters_are_refused_with_the_reason(client, analyst, query, code):
    r = client.get("/plus-dashboards/api/mart_chat_volume.json", params=query, headers=analyst)
    assert r.status_code == code and "drop table" not in r.text


def test_an_unknown_mart_or_file_is_not_found(client, analyst):
    assert client.get("/plus-dashboards/api/raw_platform_accounts.json", headers=analyst).status_code == 404
    assert client.get("/plus-dashboards/static/..%2F..%2Fconfig.py", headers=analyst).status_code == 404


def test_the_dashboards_session_can_reach_no_other_file(home):
    with d.Published(home) as pub, pytest.raises(duckdb.Error):
        pub.con.execute(f"attach '{home.raw_db}' as raw (read_only)")


def test_a_missing_cell_is_suppressed_never_zero():
    days = [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
    rows = [{"day": days[0], "product": "crm", "n": 7}, {"day": days[1], "product": "connect", "n": 0},
            {"day": days[0], "product": "connect", "n": 9}]
    series, cells = d._series(rows, days, "product", "n")
    assert series == {"connect": [9.0, 0.0], "crm": [7.0, None]}
    assert cells == ["crm 2026-11-02"]
    assert d._suppressed_note(cells, 5) == ["Suppressed (fewer than 5 people, not zero): crm 2026-11-02."]


def test_changing_the_date_range_changes_the_charts(client, analyst, home):
    [(first, last)] = _published_rows(home, "select min(day), max(day) from mart_daily_active_usage", [])
    whole = client.get("/plus-dashboards/", params={"from": str(first), "to": str(last)}, headers=analyst).text
    one = client.get("/plus-dashboards/", params={"from": str(first), "to": str(first)}, headers=analyst).text

    def points(text):
        return dict(re.findall(r'data-chart="([a-z_]+)" data-points="(\d+)"', text))

    assert points(whole) != points(one)
    assert int(points(one)["usage_accounts"]) < int(points(whole)["usage_accounts"])


def test_a_gate_blocked_build_leaves_the_dashboards_on_the_last_published_build(client, analyst, home):
    from plus_analytics.gate.run import GateFailed

    with duckdb.connect(str(home.analytics_db), read_only=True) as con:
        published = con.execute("select build_id from meta_build_info").fetchone()[0]
    b = build(home)
    con = duckdb.connect(str(b.path))
    con.execute(f"attach '{home.raw_db}' as raw (read_only)")
    email = con.execute("select raw_value from raw.id_map where kind = 'email' and error is null limit 1").fetchone()[0]
    con.execute("update mart_feature_usage set feature = $v where rowid = 0", {"v": email})
    con.execute("detach raw")
    con.execute("checkpoint")
    con.close()
    with pytest.raises(GateFailed):
        gate(home, b)
    page = client.get("/plus-dashboards/", headers=analyst).text
    assert f"A newer build ({b.build_id}) was blocked by the PII gate" in page
    assert f"build {published}" in page and email not in page
