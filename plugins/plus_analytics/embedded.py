"""The embedded default deployment: real Airflow on one machine, everything under the data directory.

``make demo`` (``dag.test``), ``make airflow`` (scheduler, DAG processor, API server, triggerer) and the
test suite all run on this environment: the Airflow home (metadata DB, task logs, generated secrets)
under ``data/airflow``, the keys under ``data/secrets`` (mode 600), Airflow connections served from
environment variables. ``environment`` must be applied before Airflow is imported. A production
deployment sets the same connections in its own secrets backend and ``PLUS_ANALYTICS_HOME`` on its
workers, and runs Airflow its own way (Postgres metadata DB, its executor).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from plus_analytics.config import (
    AIRFLOW_API_CONN_ID,
    CERTIFICATE_CONN_ID,
    DUCKDB_CONN_ID,
    KEY_CONN_ID,
    TOMBSTONE_CONN_ID,
    ConfigError,
    Paths,
    settings,
)
from plus_analytics.dags import folder as dags_folder

#: Users of the embedded default's Airflow (SimpleAuthManager): the admin (who also sees the Privacy page),
#: the PII audit's read-only API user, and an analyst who may use Airflow but not the Privacy page.
USERS = {"admin": "admin", "plus_auditor": "viewer", "analyst": "viewer"}


def _write_secret(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


def _read_secret(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{path} cannot be read as a key file (JSON with key_version and secret): restore it from "
                          f"backup; it is never replaced with a new key automatically") from None
    if not isinstance(data, dict) or not isinstance(data.get("secret"), str) or not isinstance(data.get("key_version"), int):
        raise ConfigError(f"{path} is not a key file (JSON with an integer key_version and a secret)")
    return data


def local_key(paths: Paths, name: str, in_use: bool) -> str:
    """A demo secret (pseudonym or tombstone key) as an Airflow connection: created once under
    data/secrets, mode 600, and never again while data written with it exists (``in_use``): a new key
    would silently break every pseudonym, and an erasure would find nothing and report success."""
    from plus_analytics.privacy.keys import connection_uri_json, new_secret

    f = paths.secrets / f"{name}.json"
    if not f.exists():
        if in_use:
            raise ConfigError(f"{f} is missing, but {paths.restricted} holds data written with that key: restore the "
                              f"key file (or set the {name} connection) from backup; a new key would make every "
                              f"pseudonym and every deletion request wrong")
        _write_secret(f, {"key_version": 1, "secret": new_secret()})
    data = _read_secret(f)
    return connection_uri_json(data["secret"], data["key_version"])


def new_local_key_version(paths: Paths) -> int:
    """Demo only: replace the local pseudonym secret with a fresh one of version N+1 (the old one is destroyed)."""
    from plus_analytics.privacy.keys import new_secret

    f = paths.secrets / "pseudonym_key.json"
    version = _read_secret(f)["key_version"] + 1
    _write_secret(f, {"key_version": version, "secret": new_secret()})
    return version


def certificate_key(paths: Paths) -> str:
    """The demo's Ed25519 signing key for erasure certificates (PEM), as an Airflow connection."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    f = paths.secrets / "certificate_key.json"
    if not f.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()).decode()
        _write_secret(f, {"key_version": 1, "secret": pem})
    return json.dumps({"conn_type": "generic", "password": _read_secret(f)["secret"]})


#: Airflow signs its API tokens with HS512 when given a secret; RFC 7518 (3.2) wants a key at least as long
#: as the hash, 64 bytes (PyJWT warns below that).
JWT_SECRET_BYTES = 64


def jwt_secret(paths: Paths) -> str:
    """The API server's token-signing secret (generated once, data/secrets, mode 600): 64 random bytes,
    URL-safe base64 (as the users' passwords). A shorter one, written by an earlier version, is replaced
    (tokens signed with it expire with the restart that picks up the new one)."""
    f = paths.secrets / "airflow_jwt_secret.json"
    if f.exists():
        value = json.loads(f.read_text())["value"]
        if len(value.encode()) >= JWT_SECRET_BYTES:
            return value
    value = secrets.token_urlsafe(JWT_SECRET_BYTES)
    _write_secret(f, {"value": value})
    return value


def user_passwords(paths: Paths) -> dict[str, str]:
    """The embedded Airflow's users and their passwords (generated once, data/secrets, mode 600)."""
    f = paths.secrets / "airflow_passwords.json"
    if not f.exists():
        _write_secret(f, {u: secrets.token_urlsafe(12) for u in USERS})
    return json.loads(f.read_text())


def _duckdb_connection() -> str:
    s = settings()
    extra = {k: v for k, v in (("memory_limit", s.duckdb_memory_limit), ("threads", s.duckdb_threads),
                               ("memory_budget", s.duckdb_memory_budget)) if v}
    return json.dumps({"conn_type": "duckdb", "extra": extra})


def environment(paths: Paths, port: int | None = None) -> dict[str, str]:
    """The environment of every Airflow process of the embedded default (and of the CLI)."""
    in_use = paths.raw_db.exists() or paths.privacy_db.exists()
    passwords = user_passwords(paths)
    port = port or settings().airflow_port
    api = f"http://localhost:{port}"
    env = {
        "PLUS_ANALYTICS_HOME": str(paths.home),
        "AIRFLOW_HOME": str(paths.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),  # the DAG files as installed with the package
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.airflow_home / "plugins"),  # ours loads by its entry point
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(settings().airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(paths.secrets / "airflow_passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",  # the embedded default serves this machine only
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port + 1),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port + 2),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(paths),
        # SQLite serializes writers: the scheduler, the API server and every running task wait up to a minute
        # for each other instead of failing with "database is locked" (Postgres is what production runs).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings().airflow_database
        or f"sqlite:///{paths.airflow_home / 'airflow.db'}?timeout=60",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(paths.airflow_home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "GX_ANALYTICS_ENABLED": "false",
        f"AIRFLOW_CONN_{DUCKDB_CONN_ID.upper()}": _duckdb_connection(),
        f"AIRFLOW_CONN_{AIRFLOW_API_CONN_ID.upper()}": json.dumps(
            {"conn_type": "http", "host": api, "login": "plus_auditor", "password": passwords["plus_auditor"]}),
    }
    if not os.environ.get(f"AIRFLOW_CONN_{KEY_CONN_ID.upper()}"):
        env[f"AIRFLOW_CONN_{KEY_CONN_ID.upper()}"] = local_key(paths, "pseudonym_key", in_use)
    if not os.environ.get(f"AIRFLOW_CONN_{TOMBSTONE_CONN_ID.upper()}"):
        env[f"AIRFLOW_CONN_{TOMBSTONE_CONN_ID.upper()}"] = local_key(paths, "tombstone_key", paths.privacy_db.exists())
    if not os.environ.get(f"AIRFLOW_CONN_{CERTIFICATE_CONN_ID.upper()}"):
        env[f"AIRFLOW_CONN_{CERTIFICATE_CONN_ID.upper()}"] = certificate_key(paths)
    return env


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` in the embedded Celery deployment: the machine's name and the
    worker's (``worker-1@host``), so a task instance's try says which worker ran it."""
    import socket

    name = settings().airflow_worker_name
    return f"{name}@{socket.getfqdn()}" if name else socket.getfqdn()


def migrate(paths: Paths, env: dict[str, str] | None = None) -> None:
    """Migrate the metadata DB (once per database) in ``env`` (default: apply the embedded environment to
    this process first)."""
    paths.airflow_home.mkdir(parents=True, exist_ok=True)
    if env is None:
        os.environ.update(environment(paths))
        env = dict(os.environ)
    url = hashlib.sha256(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].encode()).hexdigest()
    marker = paths.airflow_home / ".migrated"
    if marker.exists() and marker.read_text().split("\n", 1)[-1] == url:
        return
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run([str(airflow), "db", "migrate"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise ConfigError("could not migrate Airflow's metadata database: " + done.stderr.strip().splitlines()[-1])
    marker.write_text(dt.datetime.now(dt.UTC).isoformat() + "\n" + url)
