"""DuckDB connections, transactions and the small helpers every zone module shares.

A session is an in-memory database opened through the Airflow DuckDB provider's hook on the
``plus_duckdb`` connection (its ``extra`` holds the deployment's memory and thread limits: DuckDB's own
``memory_limit`` and ``threads``, and ``memory_budget``, the whole process's, see :func:`memory_limit`),
with zone files attached under their aliases; which files always comes from
:class:`~plus_analytics.config.Paths`.
Open zones with :func:`plus_analytics.storage.locks.zone`, which takes each file's lock first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from plus_analytics.config import DUCKDB_CONN_ID, ConfigError, size_bytes
from plus_analytics.storage import faults
from plus_analytics.storage import sql as sqlf

MEMORY = ":memory:"
CATALOG = "storage/catalog.sql"
MiB = 2**20
#: What a process under a memory budget keeps outside DuckDB's limit while a session runs: DuckDB's own
#: allocations outside its buffer pool and what Python, Arrow and delta-rs allocate meanwhile (measured at
#: 10M events: up to 60 MiB over the limit in the marts' build and the zones' rewrite, and 140 MiB that an
#: erasure's removal adds to the process and keeps).
BUDGET_RESERVE = 256 * MiB
#: The least memory a session's DuckDB is given under a budget; with less, the session is refused.
BUDGET_FLOOR = 128 * MiB


def connect(spill_to: Path) -> duckdb.DuckDBPyConnection:
    """A session: an in-memory DuckDB database with the deployment's limits, to which zone files are
    attached under their aliases (:func:`attach`). It spills (temporary tables, large sorts and joins)
    into ``spill_to``, a directory beside the most sensitive file it attaches: DuckDB's default for an
    in-memory database is ``.tmp`` in the working directory, outside every zone, and what it spills can
    hold raw values of the restricted zone."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

    try:
        hook = DuckDBHook(duckdb_conn_id=DUCKDB_CONN_ID, database=MEMORY, read_only=None)
        con = hook.get_conn()
    except AirflowNotFoundException:
        raise ConfigError(f"the Airflow connection {DUCKDB_CONN_ID!r} is not defined: it carries DuckDB's resource "
                          f"limits for every zone file (conn_type duckdb, extra {{\"memory_limit\": ..., \"threads\": ...}})"
                          ) from None
    budget = hook.connection_extra.get("memory_budget")
    if budget:
        try:
            limit = memory_limit(budget, hook.memory_limit, _process_rss())
        except ConfigError:
            con.close()
            raise
        con.execute(f"set memory_limit = '{limit // MiB}MiB'")
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set temp_directory = {sql_string(str(spill_to))}")
    return con


def store_uncompressed(con) -> None:
    """What the session writes from now on is stored uncompressed: the restricted database's sessions
    (:func:`plus_analytics.storage.locks.zone`), as the Delta tables' data files are, so erasure's byte
    scan reads every raw value in the file as written. DuckDB's default compression codes strings by
    symbol tables: a plain search of a checkpointed file found 1 of 201 of its e-mail addresses. It also
    halves the checkpoint of a batch's new identifiers under the zone's write lock. The other zones hold
    no raw value and stay compressed (staging uncompressed was 3.1 GB at 10M events, and the marts' build
    and erasure's scan read it all)."""
    con.execute("set force_compression = 'uncompressed'")


def memory_limit(budget: str, limit: str | None, rss: int) -> int:
    """The bytes a new session's DuckDB may use when the process may use ``budget`` in all (the connection
    extra ``memory_budget``: a worker's or a pod's memory, say ``2GiB``) and already holds ``rss``: the
    budget less what the process holds and :data:`BUDGET_RESERVE`, and no more than DuckDB's own ``limit``
    when one is set too. DuckDB's ``memory_limit`` bounds its buffers only: beside Airflow, pandas, Great
    Expectations and Arrow in a task's process (400 to 550 MiB at an erasure's peak), a limit sized to the
    worker's memory alone lets the process outgrow it. A process that holds so much of its budget that
    DuckDB would get less than :data:`BUDGET_FLOOR` is refused with why, rather than killed later."""
    where = f"the connection {DUCKDB_CONN_ID!r}'s extra"
    total = size_bytes(budget, f"memory_budget in {where}")
    left = total - rss - BUDGET_RESERVE
    if left < BUDGET_FLOOR:
        raise ConfigError(
            f"this process already holds {rss // MiB} MiB of its memory budget of {total // MiB} MiB (memory_budget "
            f"in {where}): DuckDB would get {max(left, 0) // MiB} MiB, less than {BUDGET_FLOOR // MiB} MiB; raise "
            f"the budget (and the worker's memory with it)")
    return min(left, size_bytes(limit, f"memory_limit in {where}")) if limit else left


def _process_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def spill_directory(database: Path) -> Path:
    """Where a session working on ``database`` spills: beside it, as DuckDB does for a file it opens."""
    return Path(database).with_name(Path(database).name + ".tmp")


def attach(con, path: Path | str, alias: str, read_only: bool = True) -> None:
    con.execute(f"ATTACH {sql_string(str(path))} AS {alias}{' (READ_ONLY)' if read_only else ''}")


def detach(con, aliases: list[str]) -> None:
    """Detach ``aliases`` from the session (each file closed); a session that cannot detach one is closed
    whole, so no file stays open once its lock is released."""
    try:
        for alias in reversed(aliases):
            con.execute(f"DETACH {alias}")
    except BaseException:
        con.close()
        raise


def sql_string(text: str) -> str:
    """A string literal for the statements DuckDB cannot bind a parameter into (ATTACH, COPY)."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def transaction(con) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction: committed when the block ends, rolled back (and re-raised) when it fails."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    faults.reached("commit")


def register(con, name: str, frame) -> None:
    """Make ``frame`` (a DataFrame or Arrow table) readable as the relation ``name`` until unregistered."""
    con.complete()  # DuckDB 2 refuses to register while an earlier result is not fully fetched (a fetchone())
    con.register(name, frame)


def with_frame(con, name: str, frame, sql: str, params: dict | None = None):
    """Run one statement that reads the DataFrame ``frame`` as the relation ``name`` (registered for that
    statement only, unregistered even when it fails). Returns the cursor."""
    register(con, name, frame)
    try:
        return con.execute(sql, params or {})
    finally:
        con.unregister(name)


def insert_rows(con, table: str, rows: list[tuple]) -> int:
    """Append ``rows`` (tuples in the table's column order) to ``table`` (named with its database, or a
    session's scratch table) in one statement; nothing when
    empty. Returns how many."""
    if not rows:
        return 0
    import pandas as pd

    with_frame(con, "_insert_rows", pd.DataFrame(rows, dtype=object), f"insert into {table} select * from _insert_rows")
    return len(rows)


def update_rows(con, sql: str, rows: list[tuple], columns: list[str]) -> None:
    """One set-based ``sql`` (an ``update ... from _update_rows``) over ``rows``, read as the relation
    ``_update_rows`` with ``columns``; nothing when empty. One statement, not one per row."""
    if not rows:
        return
    import pandas as pd

    with_frame(con, "_update_rows", pd.DataFrame(rows, columns=columns, dtype=object), sql)


def tables(con, database: str, schema: str = "main") -> set[str]:
    """Names of the tables of the session's database ``database`` (an alias), in ``schema``."""
    return {r[0] for r in sqlf.run(con, CATALOG, "tables_of", {"database": database, "schema": schema}).fetchall()}


def table_columns(con, database: str, table: str) -> list[str]:
    """Column names of ``database.table``, in order (empty if it does not exist)."""
    return [r[0] for r in sqlf.run(con, CATALOG, "columns_of", {"database": database, "table": table}).fetchall()]


def database_path(con, alias: str) -> Path | None:
    """The file the session attached as ``alias`` (None: not attached, or in memory)."""
    row = sqlf.run(con, CATALOG, "database_path", {"database": alias}).fetchone()
    return Path(row[0]) if row and row[0] else None


def scalar(con, sql: str, params=None):
    """The single value of a query (the result fully fetched, so the connection is free for other work)."""
    return con.execute(sql, params or []).fetchall()[0][0]
