"""The plugin as a data engineer installs it: a wheel, installed (not editable) into a fresh virtual
environment outside the checkout, runs the pipeline from there; and added to an existing Airflow deployment
(its own AIRFLOW_HOME, DAG folder and metadata DB) the way docs/operating.md says: the plugin registers
through its entry point, one file in the DAG folder loads the DAGs, connections are imported, a daily DAG
runs, and the Privacy page answers a logged-in DPO and refuses everyone else."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import duckdb
import httpx
import pytest

from tests import REPO_ROOT
from tests.commands.shell import run, user_env
from tests.services import free_port

pytestmark = pytest.mark.commands

UV = str(Path(sys.executable).with_name("uv"))
START = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([UV, "build", "--wheel", "--out-dir", str(out), str(REPO_ROOT)], user_env(out), cwd=out)
    [found] = out.glob("plus_analytics-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment outside the checkout: the locked dependencies, then the wheel itself."""
    root = tmp_path_factory.mktemp("elsewhere")
    env = user_env(root)
    run([UV, "venv", "--quiet", "--python", sys.executable, str(root / "venv")], env, cwd=root)
    python = str(root / "venv" / "bin" / "python")
    run([UV, "pip", "sync", "--quiet", "--compile-bytecode", "--python", python, str(REPO_ROOT / "requirements.lock")], env, cwd=root)
    run([UV, "pip", "install", "--quiet", "--compile-bytecode", "--no-deps", "--python", python, str(wheel)], env, cwd=root)
    return root / "venv"


def test_the_wheel_carries_sql_expectations_dags_and_the_plugin_entry_point(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("sql", "**/*.sql"), ("expectations", "*.json"), ("dags", "plus_*.py")):
        shipped = {str(p.relative_to(REPO_ROOT / folder)) for p in (REPO_ROOT / folder).glob(pattern)}
        assert shipped and {f"plus_analytics/{folder}/{p}" for p in shipped} <= names, folder
    assert "plus_analytics/policy/sources.yaml" in names and "plus_analytics/console/templates/privacy.html" in names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[airflow.plugins]" in text and "plus_analytics.plugin:PlusAnalyticsPlugin" in text


def test_the_installed_wheel_runs_the_pipeline_outside_the_checkout(venv, tmp_path):
    env = user_env(tmp_path / "data")
    where = run([str(venv / "bin" / "python"), "-c", "import plus_analytics.sql as s; print(s.__file__)"], env, tmp_path)
    assert where.stdout.startswith(str(venv)), "imported from the checkout, not the wheel"
    cli = str(venv / "bin" / "plus-analytics")
    run([cli, "generate", "--days", "2", "--scale", "0.2", "--start", START.isoformat()], env, tmp_path)
    done = run([cli, "pipeline"], env, tmp_path)
    assert "'marts': 'published'" in done.stdout, done.stdout
    done = run([cli, "retention", "--as-of", (START + dt.timedelta(days=2)).isoformat()], env, tmp_path)
    assert "retention enforced" in done.stdout
    con = duckdb.connect(str(tmp_path / "data" / "analytics" / "analytics.duckdb"), read_only=True)
    assert con.execute("select count(*) from mart_daily_active_usage").fetchone()[0] > 0


GUIDE = REPO_ROOT / "docs" / "operating.md"


def guide_block(containing: str) -> str:
    """The bash block of docs/operating.md's deployment section that contains ``containing``."""
    section = GUIDE.read_text(encoding="utf-8").split("## Adding the plugin to an Airflow deployment")[1].split("\n## ")[0]
    blocks = [textwrap.dedent(b.split("\n", 1)[1]) for b in section.split("```")[1::2] if b.startswith("bash")]
    [block] = [b for b in blocks if containing in b]
    return block


def airflow_json(bin_: Path, args: list[str], env: dict, cwd: Path):
    """Airflow's own CLI in JSON; its warnings come first on stdout, the JSON list is the last line."""
    out = run([str(bin_ / "airflow"), *args, "--output", "json"], env, cwd).stdout
    return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("[")))


def test_an_existing_deployment_loads_the_plugin_and_the_dags(venv, tmp_path):
    """An Airflow home of its own (not the embedded default), set up as docs/operating.md says."""
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    data = tmp_path / "plus-data"
    port = free_port()
    env = {**user_env(data), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "dpo:admin,analyst:viewer",
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
           "AIRFLOW__API_AUTH__JWT_SECRET": "x" * 64, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
           "PATH": f"{venv / 'bin'}:{user_env(data)['PATH']}"}
    bin_ = venv / "bin"
    run([str(bin_ / "airflow"), "db", "migrate"], env, tmp_path)
    for step in ("install-dags", "connections import"):  # the guide's own commands, as written there
        run(["bash", "-euo", "pipefail", "-c", guide_block(step)], env, tmp_path)
    assert [p.name for p in dags.iterdir()] == ["plus_analytics_dags.py"]
    conns = airflow_json(bin_, ["connections", "list"], env, tmp_path)
    assert {c["conn_id"] for c in conns} >= {"plus_duckdb", "plus_pseudonym_key", "plus_tombstone_key"}
    assert not list(tmp_path.glob("*.json")), "the guide's commands leave no key file behind"

    ids = {d["dag_id"] for d in airflow_json(bin_, ["dags", "list", "--local"], env, tmp_path)}
    assert ids == {p.stem for p in (REPO_ROOT / "dags").glob("plus_*.py")}, ids
    run([str(bin_ / "plus-analytics"), "generate", "--days", "1", "--scale", "0.2", "--start", START.isoformat()], env, tmp_path)
    run([str(bin_ / "airflow"), "dags", "test", "plus_ingest_platform", (START + dt.timedelta(days=1)).isoformat()], env, tmp_path)
    runs = airflow_json(bin_, ["dags", "list-runs", "plus_ingest_platform"], env, tmp_path)
    assert [r["state"] for r in runs] == ["success"], runs
    con = duckdb.connect(str(data / "restricted" / "raw.duckdb"), read_only=True)
    assert con.execute("select sum(rows_loaded) from ingest_log").fetchone()[0] > 0
    con.close()

    server = subprocess.Popen([str(bin_ / "airflow"), "api-server", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://localhost:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "the API server exited"
            time.sleep(2)
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())

        def bearer(user: str) -> dict:
            r = httpx.post(f"{base}/auth/token", json={"username": user, "password": passwords[user]}, timeout=30)
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        page = httpx.get(f"{base}/plus-privacy/", headers=bearer("dpo"), timeout=60)
        assert page.status_code == 200 and "Privacy: deletion requests" in page.text
        assert httpx.get(f"{base}/plus-privacy/", headers=bearer("analyst"), timeout=60).status_code == 403
        assert httpx.get(f"{base}/plus-privacy/", timeout=60).status_code == 401
        assert httpx.post(f"{base}/plus-privacy/requests", data={"id_kind": "email"}, timeout=60).status_code == 401
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        import psutil

        for proc in psutil.process_iter():  # the API server's workers start sessions of their own
            try:
                if proc.environ().get("AIRFLOW_HOME") == str(home):
                    proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
