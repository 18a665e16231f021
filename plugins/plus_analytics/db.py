"""Opening DuckDB files.

Inside Airflow tasks the connection comes from the Airflow DuckDB provider's hook (so paths, memory and
thread limits are deployment settings). Outside Airflow (CLI, tests) the same settings come from the
environment. Either way the caller gets a plain ``duckdb`` connection and closes it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import duckdb


def _settings() -> dict:
    cfg = {}
    if os.environ.get("PLUS_DUCKDB_MEMORY_LIMIT"):
        cfg["memory_limit"] = os.environ["PLUS_DUCKDB_MEMORY_LIMIT"]
    if os.environ.get("PLUS_DUCKDB_THREADS"):
        cfg["threads"] = int(os.environ["PLUS_DUCKDB_THREADS"])
    return cfg


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config=_settings())
    con.execute("set TimeZone = 'UTC'")
    return con


def hook_connect(conn_id: str, database: Path | str | None = None, read_only: bool = False):
    """A connection through the Airflow DuckDB provider (used inside tasks)."""
    from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

    kwargs = {"duckdb_conn_id": conn_id, "read_only": read_only}
    if database is not None:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["database"] = str(database)
    con = DuckDBHook(**kwargs).get_conn()
    con.execute("set TimeZone = 'UTC'")
    return con


@contextmanager
def opened(path: Path | str, read_only: bool = False, conn_id: str | None = None):
    con = hook_connect(conn_id, path, read_only) if conn_id else connect(path, read_only)
    try:
        yield con
    finally:
        con.close()


def attach(con, path: Path | str, alias: str, read_only: bool = True) -> None:
    mode = " (READ_ONLY)" if read_only else ""
    con.execute(f"ATTACH '{Path(path)}' AS {alias}{mode}")


def with_frame(con, name: str, frame, sql: str, params: dict | None = None) -> None:
    """Run one statement that reads the DataFrame ``frame`` as the relation ``name`` (registered for that
    statement only, unregistered even when it fails)."""
    con.register(name, frame)
    try:
        con.execute(sql, params or {})
    finally:
        con.unregister(name)


def tables(con) -> set[str]:
    """Names of the tables in the connection's current database."""
    return {r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = current_database()").fetchall()}


def table_columns(con, table: str) -> list[str]:
    """Column names of ``table`` in the current database, in order (empty if it does not exist)."""
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ? and table_catalog = current_database() "
        "order by ordinal_position", [table]).fetchall()]
