"""The DPO's console through Airflow's own API server app (FastAPI's test client): the auth manager decides
who may see it, cross-site POSTs are refused, malformed input never registers a request, and the
identifier never reaches Airflow's records."""

from __future__ import annotations

import json
import re
import shutil

import duckdb
import pytest

from plus_analytics.config import Paths
from plus_analytics.storage.files import scan_bytes
from tests.console.app_client import BASE, api_client, bearer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def home(pipeline, tmp_path_factory):
    """A copy of the pipeline's data: the console registers requests there, not in the shared home."""
    home = Paths(tmp_path_factory.mktemp("console")).ensure()
    for d in ("landing", "restricted", "warehouse", "analytics", "secrets"):
        shutil.copytree(pipeline.home / d, home.home / d, dirs_exist_ok=True)
    return home


@pytest.fixture(scope="module")
def client(home, pipeline):
    with api_client(home) as c:
        yield c


@pytest.fixture(scope="module")
def admin(client, home):
    return bearer(client, home, "admin")


def csrf(client, headers) -> str:
    page = client.get("/plus-privacy/", headers=headers)
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def requests_in(home) -> int:
    if not home.privacy_db.exists():
        return 0
    con = duckdb.connect(str(home.privacy_db), read_only=True)
    try:
        return con.execute("select count(*) from tombstones").fetchone()[0]
    finally:
        con.close()


def an_email(home) -> str:
    con = duckdb.connect(str(home.raw_db), read_only=True)
    try:
        return con.execute("select raw_value from id_map where kind = 'email' and error is null order by 1 limit 1").fetchone()[0]
    finally:
        con.close()


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route the console serves, from the app itself, with a sample path parameter."""
    from plus_analytics.console.app import app

    found = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, "/plus-privacy" + route.path.replace("{name}", "DSR-20261001-abcdefghij.json")))
    return found


ROUTES = _routes()
FORM = {"id_kind": "email", "identifier": "x@example.com", "requester": "DPO", "deadline_days": "30"}


def test_every_route_is_checked_here():
    assert {p for _, p in ROUTES} >= {"/plus-privacy/", "/plus-privacy/report.json", "/plus-privacy/report.csv",
                                      "/plus-privacy/evidence.csv", "/plus-privacy/public-key.pem",
                                      "/plus-privacy/requests", "/plus-privacy/certificates/DSR-20261001-abcdefghij.json"}


@pytest.mark.parametrize("body", [None, FORM, {"id_kind": "email"}], ids=["no-body", "valid-form", "broken-form"])
@pytest.mark.parametrize("method,path", ROUTES)
def test_unauthenticated_is_refused_before_the_request_is_read(client, method, path, body):
    """No session, or a forged one: 401, whatever the request carries, and nothing about the route's form."""
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Cookie": "_token=forged"}):
        r = client.request(method, path, headers={**headers, "Origin": BASE}, data=body)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert "id_kind" not in r.text and "deadline" not in r.text


@pytest.mark.parametrize("body", [None, FORM, {"id_kind": "email"}], ids=["no-body", "valid-form", "broken-form"])
@pytest.mark.parametrize("method,path", ROUTES)
def test_a_user_without_the_privacy_role_is_refused_on_every_route(client, home, method, path, body):
    analyst = {**bearer(client, home, "analyst"), "Origin": BASE}
    r = client.request(method, path, headers=analyst, data=body)
    assert r.status_code == 403, (method, path, r.status_code, r.text)
    assert "id_kind" not in r.text and "deadline" not in r.text


def test_the_page_shows_the_ledger_live(client, admin):
    page = client.get("/plus-privacy/", headers=admin)
    assert page.status_code == 200 and "Privacy: deletion requests" in page.text
    assert "UTC" in page.text and "Bangkok" in page.text and "evidence chain" in page.text
    assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'self'" in page.headers["content-security-policy"]


def test_a_forged_cross_site_post_is_refused(client, admin, home):
    before = requests_in(home)
    form = {"id_kind": "email", "identifier": an_email(home), "requester": "DPO", "deadline_days": "30"}
    token_ = csrf(client, admin)
    assert client.post("/plus-privacy/requests", headers={**admin, "Origin": "https://evil.example"},
                       data={**form, "csrf": token_}).status_code == 403
    assert client.post("/plus-privacy/requests", headers={**admin, "Origin": BASE}, data=form).status_code == 403
    assert client.post("/plus-privacy/requests", headers={**admin, "Origin": BASE},
                       data={**form, "csrf": "0" * 64}).status_code == 403
    assert client.post("/plus-privacy/requests", headers=admin, data={**form, "csrf": token_}).status_code == 403
    assert requests_in(home) == before


BAD = [
    ({"id_kind": "passport"}, 400),
    ({"identifier": "not-an-email"}, 400),
    ({"identifier": "somchai@example.com\u202e"}, 400),
    ({"identifier": "som\x00chai@example.com"}, 400),
    ({"identifier": "a" * 300 + "@example.com"}, 400),
    ({"identifier": "x" * 500}, 422),
    ({"id_kind": "phone", "identifier": "08l-234-5678"}, 400),
    ({"deadline_days": "0"}, 400),
    ({"deadline_days": "-5"}, 400),
    ({"deadline_days": "91"}, 400),
    ({"deadline_days": "thirty"}, 422),  # longer than the field allows: refused before it is parsed
    ({"requester": "somchai@example.com"}, 400),
    ({"requester": ""}, 422),  # a required field left empty
]


@pytest.mark.parametrize("change,code", BAD)
def test_malformed_input_never_registers_a_request(client, admin, home, change, code):
    form = {"id_kind": "email", "identifier": "somchai@example.com", "requester": "DPO ticket 7", "deadline_days": "30",
            "csrf": csrf(client, admin), **change}
    before = requests_in(home)
    r = client.post("/plus-privacy/requests", headers={**admin, "Origin": BASE}, data=form)
    assert r.status_code == code, r.text
    assert requests_in(home) == before
    for typed in (form["identifier"], form["requester"]):
        if typed and typed != "DPO ticket 7":
            assert typed not in r.text, "a rejected value is never echoed back"


def test_intake_registers_and_triggers_erasure_with_the_request_id_only(client, admin, home, pipeline):
    email = an_email(home)
    before = requests_in(home)
    r = client.post("/plus-privacy/requests", headers={**admin, "Origin": BASE}, follow_redirects=False,
                    data={"id_kind": "email", "identifier": "  " + email.upper(), "requester": "DPO ticket 8",
                          "deadline_days": "30", "csrf": csrf(client, admin)})
    assert r.status_code == 303, r.text
    rid = r.headers["location"].split("registered=")[1]
    assert requests_in(home) == before + 1
    page = client.get(f"/plus-privacy/?registered={rid}", headers=admin)
    assert rid in page.text and email not in page.text
    run = client.get(f"/api/v2/dags/plus_erasure/dagRuns/privacy__{rid}", headers=admin).json()
    assert run["conf"] == {"request_id": rid}
    for path in ("report.json", "report.csv", "evidence.csv"):
        body = client.get(f"/plus-privacy/{path}", headers=admin).text
        assert rid in body and email.lower() not in body.lower()
    meta = pipeline.airflow_home
    assert scan_bytes(meta, [email.encode(), email.upper().encode(), email.strip().lower().encode()]) == {}, \
        "the identifier must not be anywhere in Airflow's home (metadata DB pages, logs)"
    states = {r["request_id"]: r["status"] for r in json.loads(client.get("/plus-privacy/report.json", headers=admin).text)["requests"]}
    assert states[rid] == "pending"
