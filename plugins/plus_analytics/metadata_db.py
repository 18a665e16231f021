"""The demo's SQLite Airflow metadata DB: make sure no freed page or log frame keeps an old value.

Kept apart from the listeners (which import Airflow) so that erasure can compact the file without
paying for an Airflow import.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def truncate_sqlite_wal(path: str | None, vacuum: bool = False) -> bool:
    """Checkpoint a SQLite database's write-ahead log into the file and truncate the log to zero bytes;
    with ``vacuum``, first rebuild the file (secure_delete on) so no freed page keeps an old value."""
    import sqlite3

    if not path:
        return False
    try:
        con = sqlite3.connect(path, timeout=30)
        try:
            con.execute("PRAGMA secure_delete = ON")
            if vacuum:
                con.execute("VACUUM")
            busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        log.warning("could not checkpoint the metadata DB's WAL: %s", type(exc).__name__)
        return False
    return not busy
