"""The Privacy page as the DPO uses it, and the dashboards as an analyst does: the real Airflow (API server
with the UI, scheduler, DAG processor, triggerer; as `make airflow` starts it) on PostgreSQL, headless
Chromium from the OS packages. The DPO logs in through Airflow's login form, opens Browse → Privacy,
registers a request through the form, waits for the plus_erasure run it starts, sees the request verified
and opens its certificate; then no byte of the identifier is anywhere in the metadata database's files or
Airflow's logs. The analyst opens Browse → Dashboards and changes the date range.

Screenshots of each step are saved under ``test-artifacts/console/`` and ``test-artifacts/dashboards/``."""

from __future__ import annotations

import re
import shutil
import time
from contextlib import contextmanager
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


def _console(page, prefix: str = "/plus-privacy/"):
    """A plugin page's frame inside the Airflow UI (the Privacy page by default)."""
    for _ in range(100):
        frame = next((f for f in page.frames if prefix in f.url and "/plugin/" not in f.url), None)
        if frame is not None:
            frame.wait_for_load_state()
            return frame
        page.wait_for_timeout(200)
    raise AssertionError(f"the page {prefix} did not load in its frame: {[f.url for f in page.frames]}")


@contextmanager
def logged_in(af, home, user: str, menu_item: str, height: int):
    """Headless Chromium, ``user`` logged in through Airflow's form, on Browse > ``menu_item``: the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.goto(af.base_url + "/")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", user_passwords(home)[user])
            page.keyboard.press("Enter")
            page.wait_for_url(af.base_url + "/", timeout=60_000)
            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name=menu_item).click()
            page.wait_for_url(re.compile(rf".*/plugin/{menu_item.lower()}$"))
            yield page
        finally:
            browser.close()


def test_the_dpo_registers_a_request_and_sees_it_verified(airflow):
    af, home, pg_data = airflow
    email = _an_email(home)
    with logged_in(af, home, "admin", "Privacy", 1000) as page:
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
    states = [r["state"] for r in af.client().get("/api/v2/dags/plus_erasure/dagRuns").json()["dag_runs"]]
    assert states == ["success"], states
    forms = [email.encode(), email.upper().encode()]
    assert scan_bytes(pg_data, forms) == {}, "the identifier is in PostgreSQL's files"
    assert scan_bytes(home.airflow_home, forms) == {}, "the identifier is in Airflow's home (logs, config)"


def _cards(frame) -> dict[str, dict]:
    """Every chart card of the dashboards: drawn or not, its points, and whether plotly made its SVG."""
    return frame.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.chart-card')].map(c => [
        c.dataset.chart, {rendered: c.dataset.rendered === 'true', points: Number(c.dataset.points),
                          svg: c.querySelectorAll('svg.main-svg').length, source: c.querySelector('.source').textContent}]))""")


def test_the_analyst_opens_the_dashboards_and_changes_the_date_range(airflow):
    """Logged in as the analyst: Browse > Dashboards, every chart drawn with data from the published build,
    a narrower date range changes them; the Privacy page refuses the analyst. Screenshots are written under
    the data directory (reports/screenshots/dashboards) and copied to test-artifacts/dashboards."""
    af, home, _ = airflow
    shots = home.reports / "screenshots" / "dashboards"
    shots.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(home.analytics_db), read_only=True) as con:
        build_id = con.execute("select build_id from meta_build_info").fetchone()[0]
        first, last = con.execute("select min(day), max(day) from mart_daily_active_usage").fetchone()
    with logged_in(af, home, "analyst", "Dashboards", 1100) as page:
        frame = _console(page, "/plus-dashboards/")
        frame.wait_for_function("[...document.querySelectorAll('.chart-card')].every(c => c.dataset.rendered === 'true')",
                                timeout=60_000)
        whole = _cards(frame)
        assert len(whole) >= 13
        for chart, card in whole.items():
            assert card["rendered"] and card["svg"] >= 1, f"{chart} was not drawn"
            assert f"build {build_id}" in card["source"], f"{chart} does not say which build it shows"
        assert sum(card["points"] > 0 for card in whole.values()) >= len(whole) - 2, whole
        page.screenshot(path=str(shots / "01-dashboards.png"), full_page=True)

        frame.fill("input[name=from]", str(first))
        frame.fill("input[name=to]", str(first))
        frame.get_by_role("button", name="Apply").click()
        frame = _console(page, "/plus-dashboards/?")
        frame.wait_for_function("[...document.querySelectorAll('.chart-card')].every(c => c.dataset.rendered === 'true')",
                                timeout=60_000)
        one_day = _cards(frame)
        assert one_day["usage_accounts"]["points"] < whole["usage_accounts"]["points"], (one_day, whole)
        assert first != last and one_day != whole
        page.screenshot(path=str(shots / "02-one-day.png"), full_page=True)

        page.goto(af.base_url + "/plus-dashboards/")  # the page alone, whole, for the screenshot
        page.wait_for_function("[...document.querySelectorAll('.chart-card')].every(c => c.dataset.rendered === 'true')",
                               timeout=60_000)
        page.screenshot(path=str(shots / "03-dashboards-whole-page.png"), full_page=True)

        page.goto(af.base_url + "/plus-privacy/")
        assert "for the DPO" in page.content(), "the analyst sees nothing of the Privacy page"
        page.screenshot(path=str(shots / "04-privacy-refused.png"))
    ARTIFACTS.parent.joinpath("dashboards").mkdir(parents=True, exist_ok=True)
    for f in shots.glob("*.png"):
        shutil.copy(f, ARTIFACTS.parent / "dashboards" / f.name)
