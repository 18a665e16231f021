"""The Privacy page as the DPO uses it: the real Airflow (API server with the UI, scheduler, DAG processor,
triggerer; as `make airflow` starts it) on PostgreSQL, headless Chromium from the OS packages. Log in
through Airflow's login form, open Browse → Privacy, register a request through the form, wait for the
plus_erasure run it starts, see the request verified and open its certificate. Then no byte of the
identifier is anywhere in the metadata database's files or Airflow's logs.

Screenshots of each step are saved under ``test-artifacts/console/`` (CI keeps them as artifacts)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import duckdb
import pytest

from plus_analytics.config import Paths
from plus_analytics.embedded import user_passwords
from plus_analytics.scheduler import LocalAirflow
from plus_analytics.storage.files import scan_bytes
from tests.services import free_port, postgres, postgres_binaries

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ERASURE_WAIT = 900  # seconds


@pytest.fixture(scope="module")
def airflow(pipeline, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (make test installs the chromium package when run as root)")
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed (make test installs the postgresql package when run as root)")
    home = Paths(tmp_path_factory.mktemp("browser")).ensure()
    for d in ("landing", "restricted", "warehouse", "analytics", "secrets"):
        shutil.copytree(pipeline.home / d, home.home / d, dirs_exist_ok=True)
    with postgres() as (url, pg_data):
        af = LocalAirflow(home, port=free_port(), env={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
                                                       "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
        af.start()
        try:
            af.wait_ready(dags=("plus_erasure", "plus_marts"))
            af.unpause(["plus_erasure"])
            yield af, home, pg_data
        finally:
            af.stop()
            assert af.leftovers() == [], "every Airflow process (the API server's workers too) is stopped"


def _an_email(home: Paths) -> str:
    con = duckdb.connect(str(home.raw_db), read_only=True)
    try:
        return con.execute("select raw_value from id_map where kind = 'email' and error is null order by 1 limit 1").fetchone()[0]
    finally:
        con.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _console(page):
    """The Privacy page's frame inside the Airflow UI."""
    for _ in range(100):
        frame = next((f for f in page.frames if "/plus-privacy/" in f.url and "/plugin/" not in f.url), None)
        if frame is not None:
            frame.wait_for_load_state()
            return frame
        page.wait_for_timeout(200)
    raise AssertionError(f"the Privacy page did not load in its frame: {[f.url for f in page.frames]}")


def test_the_dpo_registers_a_request_and_sees_it_verified(airflow):
    from playwright.sync_api import sync_playwright

    af, home, pg_data = airflow
    email = _an_email(home)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(af.base_url + "/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", user_passwords(home)["admin"])
            page.keyboard.press("Enter")
            page.wait_for_url(af.base_url + "/", timeout=60_000)

            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name="Privacy").click()
            page.wait_for_url(re.compile(r".*/plugin/privacy$"))
            console = _console(page)
            assert "Privacy: deletion requests" in console.content()
            _shot(page, "01-privacy-page")

            console.select_option("select[name=id_kind]", "email")
            console.fill("input[name=identifier]", email)
            console.fill("input[name=requester]", "DPO ticket 9")
            console.fill("input[name=deadline_days]", "30")
            console.get_by_role("button", name="Register and start erasure").click()
            console = _console(page)
            console.wait_for_selector("text=registered; plus_erasure was started")
            rid = re.search(r"Request (DSR-\d{8}-[a-p]{10}) registered", console.content()).group(1)
            assert email not in console.content()
            _shot(page, "02-registered")

            deadline = time.monotonic() + ERASURE_WAIT
            status = ""
            while time.monotonic() < deadline:
                console.goto(console.url)
                row = console.locator(f"tr:has-text('{rid}')").first
                status = row.inner_text()
                if "failed" in status or ("verified" in status and "view" in status):  # certified by dpo_report
                    break
                time.sleep(10)
            assert "verified" in status and "view" in status, f"request {rid} not verified and certified after {ERASURE_WAIT}s: {status!r}"
            _shot(page, "03-verified")

            console.locator(f"tr:has-text('{rid}') a:has-text('view')").first.click()  # the certificate, in the page
            console.wait_for_url(re.compile(rf".*/certificates/{rid}\.html$"))
            text = console.content()
            assert rid in text and "verified" in text and email not in text
            _shot(page, "04-certificate")
        finally:
            browser.close()
    states = [r["state"] for r in af.client().get("/api/v2/dags/plus_erasure/dagRuns").json()["dag_runs"]]
    assert states == ["success"], states
    forms = [email.encode(), email.upper().encode()]
    assert scan_bytes(pg_data, forms) == {}, "the identifier is in PostgreSQL's files"
    assert scan_bytes(home.airflow_home, forms) == {}, "the identifier is in Airflow's home (logs, config)"
