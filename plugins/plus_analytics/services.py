"""Servers the embedded default starts itself for a Celery deployment, from the OS packages the project's
setup installs: PostgreSQL (Airflow's metadata database and Celery's results) and Redis (Celery's broker),
each with its files under a directory of the data path, listening on a free port of the loopback
interface only, stopped with the deployment. The tests start throwaway ones the same way."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from plus_analytics.config import ConfigError


def free_port(span: int = 3) -> int:
    """A port such that it and the ``span - 1`` after it are free (Airflow's API server, worker log server
    and triggerer log server use port, port+1, port+2)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + span < 65535 and all(_free(port + i) for i in range(span)):
            return port
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user the package creates."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    """A PostgreSQL cluster in ``root`` (created on first start; trust authentication on the loopback
    interface only, so nothing but this machine's own processes reach it) with a database ``airflow``."""

    def __init__(self, root: Path, durable: bool = True):
        self.root, self.durable = Path(root), durable
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port: int | None = None
        self.bin = postgres_binaries()
        if self.bin is None:
            raise ConfigError("PostgreSQL is not installed: `make system-packages` installs the postgresql package "
                              "(as root), or set PLUS_AIRFLOW_DATABASE to a PostgreSQL server of yours")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def start(self) -> Postgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _traversable_by_others(self.root)
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(_as_postgres_user([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                                              "postgres", *([] if self.durable else ["--no-sync"])]),
                           check=True, capture_output=True)
        # The port of the last start when it is free: the URL stays the same, and Airflow's migration with it.
        last = self.root / "port"
        self.port = int(last.read_text()) if last.exists() and _free(int(last.read_text())) else free_port()
        last.write_text(str(self.port))
        # TCP on the loopback interface only, no Unix socket (nothing but data files under the data directory).
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" + \
            ("" if self.durable else " -c fsync=off")
        done = subprocess.run(_as_postgres_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                                                 "-o", options, "start"]), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()} {self._log_tail()}")
        for _ in range(100):
            made = subprocess.run(_as_postgres_user([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                                     "postgres", "-tAc", "select 1 from pg_database where datname = 'airflow'"]),
                                  capture_output=True, text=True)
            if made.returncode == 0:
                if made.stdout.strip() != "1":
                    self.psql("create database airflow")
                return self
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not accept connections: {self._log_tail()}")

    def psql(self, sql: str, database: str = "postgres") -> str:
        return subprocess.run(_as_postgres_user([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                                 "postgres", "-d", database, "-tAc", sql]),
                              check=True, capture_output=True, text=True).stdout

    def pids(self) -> list[int]:
        """The server's main process, while it runs."""
        try:
            return [int((self.data / "postmaster.pid").read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []

    def stop(self) -> None:
        subprocess.run(_as_postgres_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]),
                       capture_output=True)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class Redis:
    """A Redis server in ``root`` (its snapshot file there), on the loopback interface only, with a
    password generated for this start: Celery's broker."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.port: int | None = None
        self.password = ""
        self.proc: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise ConfigError("Redis is not installed: `make system-packages` installs the redis-server package (as root)")

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        import secrets

        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.port, self.password = free_port(), secrets.token_hex(16)
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-", "--port", str(self.port)], stdin=subprocess.PIPE,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # The configuration on stdin, so the password is in no process listing.
        self.proc.stdin.write(f"bind 127.0.0.1\nprotected-mode yes\ndir {self.root}\ndbfilename dump.rdb\n"
                              f"requirepass {self.password}\nsave 60 1\nappendonly no\n".encode())
        self.proc.stdin.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Redis exited at start: {(self.root / 'server.log').read_text(errors='replace')[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError("Redis did not accept connections within 30 s")

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _traversable_by_others(path: Path) -> None:
    """As root, PostgreSQL runs as the ``postgres`` user, which must reach ``path``: every directory above
    it must let others pass (execute bit). Said plainly, never changed behind the user's back."""
    for parent in Path(path).resolve().parents:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            raise ConfigError(f"PostgreSQL runs as the postgres user and cannot reach {path}: {parent} does not let other "
                              f"users pass (chmod o+x {parent}), or set PLUS_AIRFLOW_DATABASE to a server of yours")
