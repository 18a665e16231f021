"""Real Airflow on the embedded default: scheduler, DAG processor, API server (with the UI) and triggerer,
each its own process, as a data engineer runs it (``make airflow``), and as the scheduler tests drive it.
Tasks run in parallel worker processes that reach Airflow only through the Task SDK, exactly as in
production.

Two executors (``PLUS_AIRFLOW_EXECUTOR``): the LocalExecutor (default; the metadata DB is SQLite under the
data directory, or any SQLAlchemy URL in ``PLUS_AIRFLOW_DATABASE``), or the CeleryExecutor: PostgreSQL
(metadata and Celery's results, unless ``PLUS_AIRFLOW_DATABASE`` names one) and Redis (the broker) started
under ``data/airflow``, and ``PLUS_AIRFLOW_WORKERS`` Celery workers, each a process group of its own with
its own name, temporary and working directory, sharing with the others only the data path, PostgreSQL
and Redis.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from plus_analytics.config import WORKER_NAME_VAR, ConfigError, Paths, settings
from plus_analytics.embedded import environment, migrate, user_passwords
from plus_analytics.services import Postgres, Redis

COMPONENTS = ("scheduler", "dag-processor", "api-server", "triggerer")
DAILY_DAGS = ("plus_ingest_platform", "plus_ingest_connect", "plus_ingest_crm", "plus_ingest_adtech", "plus_marts",
              "plus_erasure", "plus_retention", "plus_pii_audit")
ALL_DAGS = (*DAILY_DAGS, "plus_backfill", "plus_rotate_keys")


class RestartBudget:
    """How often ``make airflow`` starts a component that exited again: ``limit`` times within any
    ``window`` seconds; one exit more, and something is wrong that a restart will not mend."""

    def __init__(self, limit: int = 3, window: float = 600.0):
        self.limit, self.window = limit, window
        self.times: list[float] = []

    def spend(self, now: float) -> bool:
        self.times = [t for t in self.times if t > now - self.window]
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


class LocalAirflow:
    """The components as child processes (and, with Celery, the servers and workers); component logs under
    ``data/airflow/components``."""

    def __init__(self, paths: Paths, port: int | None = None, env: dict[str, str] | None = None,
                 executor: str | None = None, workers: int | None = None):
        self.paths, self.port = paths, port or settings().airflow_port
        self.extra = dict(env or {})
        self.executor = executor or settings().airflow_executor
        self.workers = [f"worker-{i}" for i in range(1, (workers or settings().airflow_workers) + 1)] \
            if self.executor == "celery" else []
        self.procs: dict[str, subprocess.Popen] = {}
        self.base_url = f"http://localhost:{self.port}"
        self._tokens: dict[str, str] = {}
        self._orphaned: list[int] = []  # process groups of components that exited and were started again
        self.servers: dict[str, Postgres | Redis] = {}

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.extra}
        env.update(environment(self.paths, self.port))  # the data directory's own settings win
        env.update(self._celery_env(env))
        env.update(self.extra)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # components start `airflow ...`
        return env

    def _celery_env(self, env: dict[str, str]) -> dict[str, str]:
        if self.executor != "celery":
            return {}
        database = self._database_given() or self.servers["postgres"].url
        if not database.startswith("postgresql"):
            raise ConfigError("the Celery deployment needs PostgreSQL for Airflow's metadata (PLUS_AIRFLOW_DATABASE "
                             f"names {database.split(':', 1)[0]})")
        return {"PLUS_ZONE_LOCKS": env.get("PLUS_ZONE_LOCKS") or database,  # the workers share the zones' locks there
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
                "AIRFLOW__CELERY__BROKER_URL": self.servers["redis"].url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": env["AIRFLOW__CORE__PARALLELISM"]}

    def _database_given(self) -> str:
        """The metadata database named by the caller or PLUS_AIRFLOW_DATABASE; empty: none."""
        return self.extra.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or settings().airflow_database

    def start(self) -> None:
        if self.executor == "celery":
            self._start_servers()
        env = self.env()
        migrate(self.paths, env)
        self._start([*COMPONENTS, *self.workers], env)

    def _start_servers(self) -> None:
        """PostgreSQL (unless a database is given) and Redis under ``data/airflow``; stopped by :meth:`stop`."""
        home = self.paths.airflow_home
        if not self._database_given():
            self.servers["postgres"] = Postgres(home / "postgres").start()
        self.servers["redis"] = Redis(home / "redis").start()

    def _start(self, names, env: dict[str, str]) -> None:
        logs = self.paths.airflow_home / "components"
        logs.mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).with_name("airflow"))
        for name in names:
            command, child_env, cwd = [airflow, name], env, None
            if name in self.workers:  # its own name, temporary and working directory; logs on the shared data path
                cwd = self.paths.airflow_home / "workers" / name
                (cwd / "tmp").mkdir(parents=True, exist_ok=True)
                command = [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
                child_env = {**env, "TMPDIR": str(cwd / "tmp"), WORKER_NAME_VAR: name,
                             "AIRFLOW__CORE__HOSTNAME_CALLABLE": "plus_analytics.embedded.worker_hostname"}
            with open(logs / f"{name}.log", "ab") as out:  # the child keeps its own copy of the descriptor
                self.procs[name] = subprocess.Popen(command, env=child_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                                    start_new_session=True)

    def revive(self) -> list[str]:
        """Start again every component that has exited; returns their names. Airflow's components are built
        to be restarted: a new scheduler adopts the running tasks (their supervisors kept heartbeating
        through the API server) and resets the ones its predecessor had queued but not started."""
        dead = self.dead()
        for name in dead:
            self.procs[name].wait()
            self._orphaned.append(self.procs[name].pid)  # its process group: tasks it ran may still be running
        if dead:
            self._start(dead, self.env())
        return dead

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to every component and every process it started (the API server's workers start their
        own sessions, so a process-group signal would orphan them), and to what is left of the components
        that exited and were started again (a killed scheduler's executor workers); SIGKILL to what is left
        at ``timeout``."""
        import psutil

        family: list[psutil.Process] = []
        for p in self.procs.values():
            try:
                parent = psutil.Process(p.pid)
                family += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        family += [proc for proc in psutil.process_iter() if _group(proc.pid) in self._orphaned and proc not in family]
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        for p in self.procs.values():
            p.wait()
        self.procs.clear()
        self.stopped = [proc.pid for proc in family]
        for server in reversed(list(self.servers.values())):  # after every client of theirs
            self.stopped += server.pids()
            server.stop()
        self.servers.clear()

    def leftovers(self) -> list[int]:
        """Processes of the last :meth:`stop` still running (none, or stop has a bug)."""
        import psutil

        return [pid for pid in getattr(self, "stopped", []) if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    # --------------------------------------------------------------------------------------- the API

    def client(self, user: str = "admin"):
        import httpx

        if user not in self._tokens:
            r = httpx.post(f"{self.base_url}/auth/token", json={"username": user, "password": user_passwords(self.paths)[user]},
                           timeout=30)
            r.raise_for_status()
            self._tokens[user] = r.json()["access_token"]
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self._tokens[user]}"}, timeout=60)

    def wait_ready(self, timeout: float = 240, dags: tuple[str, ...] = ALL_DAGS) -> None:
        """Until the API answers, the scheduler and DAG processor report healthy and every DAG is parsed."""
        import httpx

        deadline = time.monotonic() + timeout
        last = "not started"
        while time.monotonic() < deadline:
            if self.dead():
                raise RuntimeError(f"Airflow component(s) {self.dead()} exited; see {self.paths.airflow_home / 'components'}")
            try:
                health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
                ok = all(health.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "dag_processor"))
                with self.client() as c:
                    have = {d["dag_id"] for d in c.get("/api/v2/dags", params={"limit": 100}).json().get("dags", [])}
                if ok and set(dags) <= have:
                    return
                last = f"health {health}, DAGs parsed {sorted(have)}"
            except (httpx.HTTPError, ValueError) as exc:
                last = type(exc).__name__
            time.sleep(2)
        raise TimeoutError(f"Airflow was not ready after {timeout:.0f}s ({last})")

    def unpause(self, dag_ids) -> None:
        with self.client() as c:
            for d in dag_ids:
                c.patch(f"/api/v2/dags/{d}", json={"is_paused": False}).raise_for_status()

    def trigger(self, dag_id: str, logical_date: str | None = None, conf: dict | None = None) -> str:
        """Create a run and return its id. Retried when the API server is slow to answer (SQLite makes its
        writers queue): the run id is chosen here, so a retry finds the run instead of making another."""
        import httpx

        run_id = f"manual__{logical_date or dt.datetime.now(dt.UTC).isoformat()}__{os.urandom(3).hex()}"
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
        for attempt in range(5):
            try:
                with self.client() as c:
                    r = c.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body, timeout=180)
                if r.status_code == 409 or r.is_success:
                    return run_id
                if r.status_code < 500:
                    r.raise_for_status()
            except httpx.TimeoutException:
                pass
            time.sleep(2 * (attempt + 1))
        raise RuntimeError(f"could not trigger {dag_id}: the API server did not answer")

    def run_state(self, dag_id: str, run_id: str) -> str:
        import httpx

        try:
            with self.client() as c:
                return c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=120).json()["state"]
        except httpx.TimeoutException:
            return "unknown (API busy)"

    def wait(self, runs: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], str]:
        """Until every (dag_id, run_id) has finished; returns their states."""
        deadline = time.monotonic() + timeout
        states: dict[tuple[str, str], str] = {}
        while time.monotonic() < deadline:
            states = {r: self.run_state(*r) for r in runs}
            if all(s in ("success", "failed") for s in states.values()):
                return states
            if self.dead():
                raise RuntimeError(f"Airflow component(s) {self.dead()} exited; see {self.paths.airflow_home / 'components'}")
            time.sleep(3)
        raise TimeoutError(f"runs not finished after {timeout:.0f}s: {states}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        with self.client() as c:
            tis = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}).json()
        return {t["task_id"]: t["state"] for t in tis.get("task_instances", [])}


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def serve(paths: Paths, port: int | None = None, say=print) -> int:
    """``make airflow``: start everything, unpause the daily DAGs, say where to look, report DAG runs as
    they finish, stop every component on Ctrl-C. ``say`` prints a line of the command's output."""
    af = LocalAirflow(paths, port)
    _stop_on_signals()
    if af.workers:
        say(f"starting Airflow on {paths.home} (PostgreSQL and Redis under {paths.airflow_home}; scheduler, DAG processor, "
            f"API server, triggerer; CeleryExecutor with {len(af.workers)} workers: {', '.join(af.workers)}; the zones' "
            f"locks in PostgreSQL) ...")
    else:
        say(f"starting Airflow on {paths.home} (scheduler, DAG processor, API server, triggerer; LocalExecutor) ...")
    try:
        af.start()
        af.wait_ready()
        af.unpause(DAILY_DAGS)
        pw = user_passwords(paths)
        say(f"""
Airflow is running: {af.base_url}
  log in as admin / {pw['admin']}   (passwords: {paths.secrets / 'airflow_passwords.json'})
  the DPO's Privacy page: Browse > Privacy in the UI ({af.base_url}/plugin/privacy)
  the dashboards: Browse > Dashboards in the UI ({af.base_url}/plugin/dashboards; log in as analyst / {pw['analyst']})
  daily DAGs unpaused, running on their schedule: {', '.join(DAILY_DAGS)}
  manual DAGs: plus_backfill, plus_rotate_keys (trigger them in the UI)
  task logs: {paths.airflow_home / 'logs'}; component logs: {paths.airflow_home / 'components'}
Ctrl-C stops every component.
""")
        seen: set[str] = set()
        since = dt.datetime.now(dt.UTC).isoformat()
        budget = RestartBudget()
        while True:
            if af.dead():
                if not budget.spend(time.monotonic()):
                    print(f"Airflow component(s) {af.dead()} exited again ({budget.limit} restarts in "
                          f"{budget.window / 60:.0f} minutes); stopping. See {paths.airflow_home / 'components'}",
                          file=sys.stderr)
                    return 1
                print(f"Airflow component(s) {af.revive()} exited and were started again; see "
                      f"{paths.airflow_home / 'components'}", file=sys.stderr, flush=True)
            for line in _finished_runs(af, seen, since):
                say(line)
            time.sleep(10)
    except KeyboardInterrupt:
        say("\nstopping Airflow ...")
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        af.stop()
        say("Airflow stopped.")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM (``kill``, systemd, a container's stop) both stop every component before
    exiting: the components run in sessions of their own and would otherwise outlive this process. SIGINT
    is set even where it was inherited as ignored (a job started in the background by a script)."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def _finished_runs(af: LocalAirflow, seen: set[str], since: str) -> list[str]:
    lines = []
    try:
        with af.client() as c:
            runs = c.get("/api/v2/dags/~/dagRuns", params={"limit": 50, "order_by": "-end_date",
                                                           "end_date_gte": since}).json().get("dag_runs", [])
    except Exception:  # noqa: BLE001 - progress output must not stop the server
        return lines
    for r in reversed(runs):
        key = f"{r['dag_id']}/{r['dag_run_id']}"
        if r.get("state") in ("success", "failed") and key not in seen:
            seen.add(key)
            lines.append(f"  {r.get('end_date', '')[:19]}  {r['dag_id']:22s} {r['state']:8s} {r['dag_run_id']}")
    return lines
