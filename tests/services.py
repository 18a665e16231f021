"""Throwaway services the tests start themselves: a PostgreSQL server (from the OS packages, which
``make test`` installs as root), free ports."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


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


@contextmanager
def postgres():
    """A fresh PostgreSQL cluster on a free port (trust authentication, loopback only), its data directory,
    and a SQLAlchemy URL for a database ``airflow``; removed afterwards."""
    bin_dir = postgres_binaries()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (make test installs the postgresql package as root)")
    root = Path(tempfile.mkdtemp(prefix="plus-pg-"))
    data = root / "data"
    port = free_port(1)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o755)
    subprocess.run(_as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                      "--no-sync"]), check=True, capture_output=True)
    log = root / "server.log"
    subprocess.run(_as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                                      f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
                   check=True, capture_output=True)
    try:
        for _ in range(50):
            done = subprocess.run(_as_postgres_user([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U",
                                                     "postgres", "-c", "create database airflow"]), capture_output=True)
            if done.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"PostgreSQL did not accept connections: {log.read_text()[-2000:]}")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/airflow", data
    finally:
        subprocess.run(_as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
