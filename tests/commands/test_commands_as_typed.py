"""Every command the README and ``--help`` show, run as a subprocess exactly as a user types it: from the
checkout, with no extra arguments, in the environment a new user has (the test's own Airflow and key
settings removed; at most ``PLUS_ANALYTICS_HOME`` and ``PLUS_AIRFLOW_PORT`` set), Ctrl-C delivered as
SIGINT to the command's process group, as a terminal does.

One data directory goes through what a newcomer does in order: ``make demo``, the analyst's query, the
DPO's report, an erasure and its certificate, retention, the audit, a key rotation, ``make airflow`` from
start to Ctrl-C. Machine-readable output (JSON) must be stdout alone, so it is parsed as such.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from plus_analytics.cli import build_parser
from tests import REPO_ROOT
from tests.commands.shell import run, user_env
from tests.services import free_port

pytestmark = pytest.mark.commands

CLI = ".venv/bin/plus-analytics"  # as the README writes it, run from the checkout

#: Every subcommand of ``plus-analytics --help`` and the test below that types it.
TYPED = {"generate": "test_generate_as_typed", "demo": "test_make_demo", "airflow": "test_make_airflow_to_ctrl_c",
         "query": "test_query", "pipeline": "test_pipeline_again_skips_what_ran", "erase": "test_erase_and_its_certificate",
         "report": "test_report_dpo_is_json_on_stdout", "certificate": "test_erase_and_its_certificate",
         "retention": "test_retention", "audit": "test_audit_is_json_on_stdout", "rotate-keys": "test_rotate_keys",
         "keys": "test_keys_is_a_connection_on_stdout", "install-dags": "test_install_dags"}


def typed(line: list[str], home: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """``line`` typed in the checkout by a new user whose data directory is ``home``."""
    return run(line, user_env(home), REPO_ROOT, timeout)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("newcomer") / "data"


def test_every_command_of_help_is_typed_here():
    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    assert set(sub.choices) == set(TYPED), "a command --help shows has no test that types it (add it to TYPED)"
    assert all(name in globals() for name in TYPED.values())


def test_make_demo(home):
    done = typed(["make", "demo"], home, timeout=1500)
    assert "demo finished in" in done.stdout and "sample analyst query" in done.stdout
    assert re.search(r"mart_daily_active_usage\s+[1-9][\d,]* rows", done.stdout), done.stdout
    assert (home / "analytics" / "analytics.duckdb").exists()


def test_query(home):
    done = typed([CLI, "query", "select * from mart_chat_volume order by day desc limit 5"], home)
    header, *rows = done.stdout.strip().splitlines()
    assert "day" in header.split() and len(rows) == 5
    assert done.stderr == ""


def test_report_dpo_is_json_on_stdout(home):
    report = json.loads(typed([CLI, "report", "dpo"], home).stdout)
    assert Path(report["html"]).exists() and report["overdue"] == 0


def test_keys_is_a_connection_on_stdout(home):
    conn = json.loads(typed([CLI, "keys"], home).stdout)
    assert conn["conn_type"] == "generic" and len(conn["password"]) >= 43


def _an_email(home: Path) -> str:
    con = duckdb.connect(str(home / "restricted" / "raw.duckdb"), read_only=True)
    try:
        return con.execute("select raw_value from id_map where kind = 'email' and error is null order by 1 limit 1").fetchone()[0]
    finally:
        con.close()


def test_erase_and_its_certificate(home):
    email = _an_email(home)
    done = typed([CLI, "erase", "--email", email, "--run"], home)
    assert email not in done.stdout + done.stderr
    rid = re.search(r"registered deletion request (DSR-\d{8}-[a-p]{10})", done.stdout).group(1)
    report = json.loads(typed([CLI, "report", "dpo"], home).stdout)
    assert report["verified"] == 1 and report["chain_intact"] is True
    ledger = json.loads(Path(report["json"]).read_text())
    assert {r["request_id"]: r["status"] for r in ledger["requests"]}[rid] == "verified"
    cert = home / "reports" / "dpo" / "certificates" / f"{rid}.json"
    key = home / "reports" / "dpo" / "certificate_public_key.pem"
    done = typed([CLI, "certificate", "verify", str(cert), "--public-key", str(key)], home)
    assert done.stdout.startswith(f"valid: erasure certificate for request {rid}")


def test_retention(home):
    assert "retention enforced as of" in typed([CLI, "retention"], home).stdout


def test_audit_is_json_on_stdout(home):
    audit = json.loads(typed([CLI, "audit"], home).stdout)
    assert audit["clean"] is True


def test_rotate_keys(home):
    assert "re-keyed restricted zone, staging and marts" in typed([CLI, "rotate-keys"], home).stdout


def test_pipeline_again_skips_what_ran(home):
    done = typed([CLI, "pipeline"], home)
    assert "'ingest_runs': 0" in done.stdout, done.stdout


def test_generate_as_typed(tmp_path):
    done = typed([CLI, "generate"], tmp_path / "data")
    assert re.match(r"generated [\d,]+ rows \([\d,]+ deliberately malformed\) for 30 days", done.stdout)


def test_install_dags(tmp_path):
    done = typed([CLI, "install-dags", str(tmp_path)], tmp_path / "data")
    assert "wrote" in done.stdout and (tmp_path / "plus_analytics_dags.py").read_text().count("load(globals())") == 1


def _ours(home: Path) -> list[psutil.Process]:
    """Every process whose environment names this data directory (Airflow's components and their workers
    inherit it)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PLUS_ANALYTICS_HOME") == str(home):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return [p for p in found if p.pid != os.getpid()]


def _in(home: Path) -> list[psutil.Process]:
    """Every process working in the data directory or naming it on its command line (the servers the
    Celery deployment starts: PostgreSQL names its cluster, Redis works in its directory and rewrites its
    environment with its title)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if str(home) in " ".join(proc.cmdline()) or Path(proc.cwd()).is_relative_to(home):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            pass
    return [p for p in found if p.pid != os.getpid()]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ctrl_c(proc: subprocess.Popen, timeout: float) -> int:
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
    return proc.wait(timeout=timeout)


def _stopped(code: int, out: Path) -> None:
    text = out.read_text()
    # make itself, like any make, ends by the SIGINT it received once its recipe has exited ("Interrupt")
    assert code in (0, -signal.SIGINT) and "Airflow stopped." in text, (code, text[-3000:])
    assert "Traceback" not in text


def test_make_airflow_to_ctrl_c(home):
    port = free_port()
    out = home.parent / "make-airflow.out"
    with open(out, "w") as sink:
        proc = subprocess.Popen(["make", "airflow"], cwd=REPO_ROOT, env=user_env(home, port), stdout=sink,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 420
            while "Airflow is running" not in out.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, out.read_text()[-3000:]
                time.sleep(2)
            text = out.read_text()
            assert f"Airflow is running: http://localhost:{port}" in text, text[-3000:]
            assert f"http://localhost:{port}/plugin/privacy" in text
            assert f"http://localhost:{port}/plugin/dashboards" in text
            import httpx

            base = f"http://localhost:{port}"
            assert httpx.get(f"{base}/api/v2/monitor/health", timeout=10).status_code == 200
            # docs/dashboards.md's example request, as the Plus apps make it
            password = re.search(r"log in as analyst / (\S+)\)", text).group(1)
            token = httpx.post(f"{base}/auth/token", json={"username": "analyst", "password": password}, timeout=30).json()
            rows = httpx.get(f"{base}/plus-dashboards/api/mart_chat_volume.json", params={"product": "connect"},
                             headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=60)
            assert rows.status_code == 200 and rows.json()["rows"], rows.text[:500]
            assert _ours(home), "the components run with the data directory in their environment"
        finally:
            code = _ctrl_c(proc, 180)
    _stopped(code, out)
    left = _ours(home)
    assert left == [], f"left running after Ctrl-C: {[(p.pid, p.name()) for p in left]}"


def test_make_airflow_on_celery_to_ctrl_c():
    """``PLUS_AIRFLOW_EXECUTOR=celery make airflow`` as typed, on a new data directory: it says what it
    starts, the daily DAGs' first runs succeed on the Celery workers, and Ctrl-C leaves nothing running
    (PostgreSQL and Redis included)."""
    import shutil

    from tests.services import shared_tempdir

    root = shared_tempdir("plus-celery-typed-")  # PostgreSQL runs as its own user under root: it must pass
    home, port = root / "data", free_port()
    out = root / "make-airflow.out"
    try:
        with open(out, "w") as sink:
            proc = subprocess.Popen(["make", "airflow"], cwd=REPO_ROOT, env={**user_env(home, port), "PLUS_AIRFLOW_EXECUTOR": "celery"},
                                    stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                deadline = time.monotonic() + 600
                while not re.search(r"plus_ingest_\w+ +success", out.read_text()) and time.monotonic() < deadline:
                    assert proc.poll() is None, out.read_text()[-3000:]
                    time.sleep(2)
                text = out.read_text()
                assert (f"(PostgreSQL and Redis under {home / 'airflow'}; scheduler, DAG processor, API server, triggerer; "
                        f"CeleryExecutor with 2 workers: worker-1, worker-2; the zones' locks in PostgreSQL) ...") in text, text[-3000:]
                assert f"Airflow is running: http://localhost:{port}" in text
                assert re.search(r"plus_ingest_\w+ +success", text), text[-3000:]
                names = {" ".join(p.cmdline()) for p in _ours(home)}
                assert any("celery worker --celery-hostname worker-2@" in n for n in names), names
                servers = {" ".join(p.cmdline()) for p in _in(home)}
                assert any("redis-server" in n for n in servers) and any("postgres -D" in n for n in servers), servers
            finally:
                code = _ctrl_c(proc, 240)
        _stopped(code, out)
        left = [p for p in {*_ours(home), *_in(home)} if _alive(p)]
        assert left == [], f"left running after Ctrl-C: {[(p.pid, p.name()) for p in left]}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
