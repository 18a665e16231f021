"""Throwaway services the tests start themselves (the library's, plus_analytics.services): a PostgreSQL
server (from the OS packages, which ``make test`` installs as root), free ports."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from plus_analytics.services import Postgres, free_port, postgres_binaries  # noqa: F401 - the tests' imports


def shared_tempdir(prefix: str) -> Path:
    """A temporary directory the ``postgres`` user can pass through (PostgreSQL runs as it under root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o711)
    return root


@contextmanager
def _server(make, prefix: str):
    """A server of the library's (``make(directory)``) started in a fresh temporary directory; stopped and
    removed afterwards."""
    root = shared_tempdir(prefix)
    server = make(root / "server")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres():
    """A fresh PostgreSQL cluster on a free port (trust authentication, loopback only, no fsync): a
    SQLAlchemy URL for its database ``airflow``, and its data directory."""
    with _server(lambda d: Postgres(d, durable=False), "plus-pg-") as pg:
        yield pg.url, pg.data

