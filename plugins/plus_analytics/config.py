"""Configuration: where things live and the few settings the pipeline has, from one resolver.

Every path hangs off one data directory (``PLUS_ANALYTICS_HOME``) so a run touches nothing outside it,
and erasure can prove a negative over exactly that tree. This is the only module that reads the
pipeline's environment variables; a setting that is missing or malformed raises :class:`ConfigError`
naming it (nothing falls back silently to a default location).

Secrets are not settings: the keys come from Airflow connections (any secrets backend), see
:mod:`plus_analytics.privacy.keys`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


def _shipped(package: str) -> Path:
    """A folder shipped inside the installed package, found through ``importlib.resources``: sql/ and
    expectations/ are top-level in the repository and mapped into the package at build time
    (pyproject.toml), so a wheel works wherever it is installed and no code reads a source tree."""
    return Path(str(resources.files(package)))


SQL_DIR = _shipped("plus_analytics.sql")
EXPECTATIONS_DIR = _shipped("plus_analytics.expectations")
POLICY_DIR = Path(__file__).resolve().parent / "policy"  # inside the package itself

#: Airflow connection ids. ``plus_duckdb`` carries DuckDB's resource limits (``extra``: memory_limit,
#: threads) for every zone file, opened through the Airflow DuckDB provider; the file itself always
#: comes from :class:`Paths`. The key connections carry a master secret in ``password``.
DUCKDB_CONN_ID = "plus_duckdb"
KEY_CONN_ID = "plus_pseudonym_key"
#: Key of the tombstones' blind index (and of the sealed identifier forms erasure verifies against):
#: separate from the pseudonym key and not rotated with it, so erased subjects' late arrivals are still
#: recognised after a pseudonym-key rotation.
TOMBSTONE_CONN_ID = "plus_tombstone_key"
#: Ed25519 private key (PEM in ``password``) that signs erasure certificates.
CERTIFICATE_CONN_ID = "plus_certificate_key"
#: Airflow's public REST API (``host`` = base URL, ``login``/``password``): how the PII audit reads
#: XComs, DAG-run conf, asset events, rendered fields and the audit log from a worker.
AIRFLOW_API_CONN_ID = "plus_airflow_api"

WORKER_NAME_VAR = "PLUS_AIRFLOW_WORKER_NAME"
HOME_VAR = "PLUS_ANALYTICS_HOME"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it and what to do."""


@dataclass(frozen=True)
class Paths:
    """The zones of one data directory."""

    home: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        home = (os.environ if env is None else env).get(HOME_VAR)
        if not home:
            raise ConfigError(f"{HOME_VAR} is not set: the pipeline needs its data directory (the CLI defaults it to "
                              f"./data; Airflow workers get it from their environment)")
        return cls(Path(home).resolve())

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def restricted(self) -> Path:
        return self.home / "restricted"

    @property
    def raw_db(self) -> Path:
        """Identifier maps and logs of the restricted zone, beside its Delta tables of rows, quarantined lines
        and mentions (``lake/``): the only place that holds raw personal values."""
        return self.restricted / "raw.duckdb"

    @property
    def privacy_db(self) -> Path:
        """The DPO's ledger: deletion requests, their steps and hash-chained evidence, retention evidence.
        Pseudonyms, blind indexes and sealed (encrypted) forms only; apart from raw.duckdb so intake and
        the DPO's console never wait behind a long ingest."""
        return self.restricted / "privacy.duckdb"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def staging_db(self) -> Path:
        return self.warehouse / "staging.duckdb"

    @property
    def analytics(self) -> Path:
        return self.home / "analytics"

    @property
    def analytics_db(self) -> Path:
        return self.analytics / "analytics.duckdb"

    def zones(self, *aliases: str) -> dict[str, Path]:
        """{alias: file} for the named zones, under the alias every session attaches each one (SQL names
        each table with it: ``ledger.tombstones``): ``raw`` (raw_db), ``ledger`` (privacy_db), ``stg``
        (staging_db), ``analytics`` (analytics_db)."""
        files = {"raw": self.raw_db, "ledger": self.privacy_db, "stg": self.staging_db, "analytics": self.analytics_db}
        return {a: files[a] for a in aliases}

    @property
    def builds(self) -> Path:
        return self.analytics / "builds"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @classmethod
    def for_cli(cls, given: str | None = None) -> Paths:
        """The command line's data directory: ``given`` (``--home``), else ``PLUS_ANALYTICS_HOME``, else
        ``./data``; exported into this process's environment, where the tasks ``dag.test()`` runs in it
        look for it, and created."""
        home = Path(given or os.environ.get(HOME_VAR) or "data").resolve()
        os.environ[HOME_VAR] = str(home)
        return cls(home).ensure()

    def ensure(self) -> Paths:
        for p in (self.landing, self.warehouse, self.analytics, self.builds, self.reports):
            p.mkdir(parents=True, exist_ok=True)
        self.restricted.mkdir(parents=True, exist_ok=True)
        os.chmod(self.restricted, 0o700)  # raw personal data: the pipeline's user only
        return self


def _number(env: Mapping[str, str], name: str, default: float, minimum: float, kind=float):
    text = env.get(name)
    if text is None or text == "":
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a {'whole ' if kind is int else ''}number") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (the first is the default)."""
    value = (env.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name}={env.get(name)!r} is not one of {', '.join(allowed)}")
    return value


def _roles(env: Mapping[str, str], name: str, default: str, what: str) -> tuple[str, ...]:
    roles = tuple(r.strip().upper() for r in env.get(name, default).split(",") if r.strip())
    if not roles:
        raise ConfigError(f"{name} is empty: name at least one role allowed to see {what}")
    return roles


@dataclass(frozen=True)
class Settings:
    """Tunables, each from one environment variable with a documented default."""

    #: Smallest number of distinct people a published mart row may describe (PLUS_ANALYTICS_K).
    k: int = 5
    #: Longest wait for a zone file held by another process, in seconds (PLUS_ZONE_LOCK_TIMEOUT).
    lock_timeout: float = 1800.0
    #: Where the zone files' locks are kept besides the files' own (PLUS_ZONE_LOCKS): empty, on this
    #: machine only; a PostgreSQL URL, in that server's advisory locks, which every machine of a deployment
    #: that shares the data path shares (the Celery deployment sets it to its PostgreSQL).
    zone_locks: str = ""
    #: Landing bytes ingested per batch of days (PLUS_INGEST_BATCH_MB).
    ingest_batch_bytes: int = 192 * 2**20
    #: Roles allowed to use the DPO's console when the auth manager has roles (PLUS_PRIVACY_ROLES).
    privacy_roles: tuple[str, ...] = ("ADMIN",)
    #: Roles allowed to see the dashboards when the auth manager has roles (PLUS_DASHBOARD_ROLES).
    dashboard_roles: tuple[str, ...] = ("ADMIN", "OP", "USER", "VIEWER")
    #: DuckDB limits the embedded default puts into the plus_duckdb connection (PLUS_DUCKDB_MEMORY_LIMIT,
    #: PLUS_DUCKDB_THREADS); empty: DuckDB's own defaults. PLUS_DUCKDB_MEMORY_BUDGET: the whole memory a
    #: task's process may use, DuckDB given what the process leaves of it
    #: (:func:`plus_analytics.storage.duck.memory_limit`); empty: no budget.
    duckdb_memory_limit: str = ""
    duckdb_threads: int = 0
    duckdb_memory_budget: str = ""
    #: The embedded default's Airflow: API server port (PLUS_AIRFLOW_PORT) and metadata database
    #: (PLUS_AIRFLOW_DATABASE, a SQLAlchemy URL; empty: SQLite under the data directory).
    airflow_port: int = 8080
    airflow_database: str = ""
    #: How many tasks the embedded default runs at once (PLUS_AIRFLOW_PARALLELISM): the LocalExecutor's
    #: processes, or each Celery worker's.
    airflow_parallelism: int = 4
    #: The embedded default's executor (PLUS_AIRFLOW_EXECUTOR): ``local`` (LocalExecutor) or ``celery``
    #: (CeleryExecutor, with PostgreSQL and Redis started under the data directory and
    #: PLUS_AIRFLOW_WORKERS workers).
    airflow_executor: str = "local"
    airflow_workers: int = 2
    #: The name ``make airflow`` gives each Celery worker it starts (PLUS_AIRFLOW_WORKER_NAME, set for it):
    #: part of the host name its task instances record.
    airflow_worker_name: str = ""
    #: CLI: log level (PLUS_ANALYTICS_LOG_LEVEL) and tracebacks instead of one-line errors (PLUS_ANALYTICS_DEBUG).
    log_level: str = "WARNING"
    debug: bool = False
    #: Kill tests only (plus_analytics.storage.faults): PLUS_ANALYTICS_KILL_AT, PLUS_ANALYTICS_FAULT_LOG.
    kill_at: str = ""
    fault_log: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        roles = _roles(env, "PLUS_PRIVACY_ROLES", "ADMIN", "the Privacy page")
        dashboard_roles = _roles(env, "PLUS_DASHBOARD_ROLES", "ADMIN,OP,USER,VIEWER", "the dashboards")
        return cls(
            k=_number(env, "PLUS_ANALYTICS_K", 5, 2, int),
            lock_timeout=_number(env, "PLUS_ZONE_LOCK_TIMEOUT", 1800, 0),
            zone_locks=_zone_locks(env),
            ingest_batch_bytes=int(_number(env, "PLUS_INGEST_BATCH_MB", 192, 0.001) * 2**20),
            privacy_roles=roles,
            dashboard_roles=dashboard_roles,
            duckdb_memory_limit=env.get("PLUS_DUCKDB_MEMORY_LIMIT", ""),
            duckdb_threads=_number(env, "PLUS_DUCKDB_THREADS", 0, 0, int),
            duckdb_memory_budget=_size(env, "PLUS_DUCKDB_MEMORY_BUDGET"),
            airflow_port=_number(env, "PLUS_AIRFLOW_PORT", 8080, 1, int),
            airflow_database=env.get("PLUS_AIRFLOW_DATABASE", ""),
            airflow_parallelism=_number(env, "PLUS_AIRFLOW_PARALLELISM", 4, 1, int),
            airflow_executor=_choice(env, "PLUS_AIRFLOW_EXECUTOR", ("local", "celery")),
            airflow_workers=_number(env, "PLUS_AIRFLOW_WORKERS", 2, 1, int),
            airflow_worker_name=env.get(WORKER_NAME_VAR, ""),
            log_level=env.get("PLUS_ANALYTICS_LOG_LEVEL", "WARNING").upper(),
            debug=bool(env.get("PLUS_ANALYTICS_DEBUG")),
            kill_at=env.get("PLUS_ANALYTICS_KILL_AT", ""),
            fault_log=env.get("PLUS_ANALYTICS_FAULT_LOG", ""),
        )


def size_bytes(text: str, what: str) -> int:
    """Bytes of a size as DuckDB writes them (``1500MB``, ``2GiB``, ``1.5 GB``: kB, MB, GB, TB by
    thousands, KiB, MiB, GiB, TiB by 1,024), else a clear error naming ``what``."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        return int(TypeAdapter(ByteSize).validate_python(str(text).strip()))
    except ValidationError:
        raise ConfigError(f"{what} is {text!r}, which is not a size (say 1500MB or 2GiB)") from None


def _size(env: Mapping[str, str], name: str) -> str:
    text = env.get(name, "").strip()
    if text:
        size_bytes(text, name)
    return text


def _zone_locks(env: Mapping[str, str]) -> str:
    url = env.get("PLUS_ZONE_LOCKS", "").strip()
    if url and not url.startswith(("postgresql://", "postgresql+", "postgres://")):
        raise ConfigError("PLUS_ZONE_LOCKS must be a PostgreSQL URL (postgresql://user@host:port/database), or empty "
                          "for locks on this machine only")
    return url


def settings() -> Settings:
    return Settings.from_env()

