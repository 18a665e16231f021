"""The restricted zone's rows: one Delta Lake table per source, partitioned by landing day (decision 0012).

``restricted/lake/raw_<source>/`` beside ``raw.duckdb``: Parquet data files under ``_dt=<day>/`` and the
table's transaction log (``_delta_log/``). DuckDB writes the data files (its Parquet writer, streaming
within its memory limit) and delta-rs makes the commits that add and remove them. A session that
attaches the restricted zone sees each source's rows as the view ``lake.raw_<source>`` over the data files
of the table's snapshot when the session opened (DuckDB's own Parquet reader, the day taken from the
file's directory). Rows are only ever written a whole day at a time: :func:`replace_days` commits the
days' new files and the removal of their old ones in one Delta commit, so an ingest of a day, an
erasure's rewrite of the days it touched and retention's of the days it expires each touch their
partitions and nothing else, and a reader sees a day before or after, never half of it.

What the format keeps besides the data files, and how erasure reaches it:

* the log's file statistics: a file's row count only (``delta.dataSkippingNumIndexedCols = 0``, and
  the commits made here write ``numRecords`` alone: a column's minimum and maximum would be personal
  values in a JSON file; they stay in the data file's own footer, which erasure rewrites with the file);
* the log's recorded actions: file paths, sizes, days and row counts, never a value (a commit names the
  files it adds and removes; no predicate is recorded) and erasure rewrites whole days;
* files removed by a commit, files no commit names (a writer killed before its commit), and the commits
  themselves: :func:`purge` vacuums in full with zero retention, writes a checkpoint and deletes the log
  before it (both retentions are zero in the table's configuration), so after an erasure only the live
  files of the latest snapshot are left;
* compression: data files are written uncompressed, so the byte scan of verification reads every value
  as written (with compression a value in the middle of a column is invisible to it).

Each source's quarantined lines and the identifiers its free text mentions are tables of their own too
(``quarantine_<source>``, ``mentions_<source>``, the same days: a :class:`Family`; the views
``lake.quarantine`` and ``lake.text_mentions`` show every source's with its name). The rest of the
restricted zone (identifier maps, logs) stays in ``raw.duckdb``, whose lock still orders its writers.
Ingest writes its tables' data files with that lock held for reading (:func:`write_ahead`) and takes it
for writing to commit them (:func:`commit_ahead`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plus_analytics.storage import faults
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import sql_string

log = logging.getLogger(__name__)

SCHEMA = "lake"  #: the in-memory database a session's views of the tables live in: ``lake.raw_<source>``
DIRECTORY = "lake"  #: the tables' directory, beside the restricted database
PARTITION = "_dt"
COMMIT_ATTEMPTS = 8
CONFIG = {
    "delta.dataSkippingNumIndexedCols": "0",
    "delta.logRetentionDuration": "interval 0 seconds",
    "delta.deletedFileRetentionDuration": "interval 0 seconds",
}
SQL = "storage/lake.sql"


def root_of(raw_db: Path) -> Path:
    """The tables' directory of the restricted database ``raw_db``."""
    return Path(raw_db).parent / DIRECTORY


def _root(con) -> Path:
    """The tables' directory of the restricted database this session attached as ``raw``."""
    from plus_analytics.storage.duck import database_path

    path = database_path(con, "raw")
    if path is None:
        raise RuntimeError("this session has no restricted zone attached (alias raw)")
    return root_of(path)


def table_dir(root: Path, table: str) -> Path:
    return Path(root) / table


def exists(path: Path) -> bool:
    return (Path(path) / "_delta_log").is_dir()


def _tables(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if exists(p)) if Path(root).is_dir() else []


def _schema(snapshot):
    """The Arrow schema of a table's snapshot (a ``DeltaTable``), in the table's column order."""
    import pyarrow as pa

    return pa.schema(snapshot.schema().to_arrow())


def _columns(con, empty_sql: str):
    """The Arrow schema of the query ``empty_sql`` (no rows); DuckDB 2 first wants an earlier result finished."""
    con.complete()
    return con.sql(empty_sql).to_arrow_table().schema


def _schema_file(root: Path, table: str, schema) -> str:
    """A Parquet file of no rows with the table's columns, under ``.schema/`` (outside the table), laid out
    as a partition: every snapshot's file list includes it, so a table with no data file reads as its
    typed columns and no row."""
    import pyarrow.parquet as pq

    path = Path(root) / ".schema" / table / f"{PARTITION}=1970-01-01" / "no-rows.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.writing")
        pq.write_table(schema.remove(schema.get_field_index(PARTITION)).empty_table(), tmp)
        os.replace(tmp, path)
    return str(path)


@dataclass(frozen=True)
class Family:
    """Tables of one kind, one per source (``lake.<prefix><source>``), seen together, each row with its
    source's name first, as the view ``lake.<view>`` (the earlier layout's single table ``raw.<view>``)."""

    view: str
    prefix: str
    columns: str  #: the named query of a table's columns (no row, typed)

    def table(self, source: str) -> str:
        return self.prefix + source


QUARANTINE = Family("quarantine", "quarantine_", "quarantine_columns")  #: each source's lines that failed validation
MENTIONS = Family("text_mentions", "mentions_", "mention_columns")  #: identifiers mentioned in free text, by row
FAMILIES = (QUARANTINE, MENTIONS)


def columns_of(family: Family) -> str:
    """The columns of ``family``'s tables: a query of no rows, typed."""
    return sqlf.named(SQL, family.columns)


def _variable(table: str) -> str:
    return f"lake_{table}"


def _point(con, root: Path, table: str, create: bool) -> str | None:
    """Point ``lake.<table>`` at the table's current snapshot: the session variable its view reads its file
    list from is set (not a catalog change, so allowed inside a transaction that writes the restricted
    database; the list bound as a parameter, which DuckDB takes several times faster than a literal of as
    many strings). With ``create``, returns the statement that creates the view, its columns in the table's
    order."""
    files, columns = _latest(root, table)
    sqlf.run(con, SQL, "point_at", {"files": files}, variable=_variable(table))
    if not create:
        return None
    return sqlf.named(SQL, "view_over_files", lake=SCHEMA, table=sqlf.q(table), variable=sql_string(_variable(table)),
                      columns=", ".join(sqlf.q(n) for n in columns))


_seen: dict[str, tuple] = {}  # a table's directory: (its log's files as last seen, data files, column names)


def _log_state(log_dir: Path) -> tuple:
    """Each file of a table's log: name, inode, size and modification time (a file another writer renames or
    deletes while it is listed is left out: the next look sees the log as it is then)."""
    out = []
    for entry in os.scandir(log_dir):
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        out.append((entry.name, entry.inode(), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def _latest(root: Path, table: str) -> tuple[list[str], list[str]]:
    """The data files of a table's latest snapshot (with its no-row schema file) and its column names. Read
    from the log when the log changed since this process last read it (every commit, checkpoint and cleanup
    adds or deletes a file of it: each file's name, inode, size and modification time are compared), else
    remembered: a zone session opens every table, and most have not changed since the last session."""
    from deltalake import DeltaTable

    path = table_dir(root, table)
    state = _log_state(path / "_delta_log")
    known = _seen.get(str(path))
    if known is not None and known[0] == state:
        return known[1], known[2]
    snapshot = DeltaTable(str(path))
    schema = _schema(snapshot)
    files = [*snapshot.file_uris(), _schema_file(root, table, schema)]
    _seen[str(path)] = (state, files, schema.names)
    return files, schema.names


def _define(con, root: Path, table: str) -> None:
    """Point ``lake.<table>`` at the table's current snapshot (after a commit of this session's)."""
    have = present(con)
    view = _point(con, root, table, create=table not in have)
    if view is None:
        return
    con.execute(view)
    for family in FAMILIES:  # a new table of a family: the family's view shows it too
        if table.startswith(family.prefix):
            con.execute(_family_view(family, have | {table}, legacy=False))


def _family_view(family: Family, tables, legacy: bool) -> str:
    """The statement that defines ``lake.<view>``: every source's table of ``family`` among ``tables``
    with the source's name (or the earlier layout's single table, read where it is)."""
    if legacy:
        rows = sqlf.named(SQL, "legacy_family_rows", view=family.view)
    else:
        rows = " union all ".join(
            sqlf.named(SQL, "family_of", lake=SCHEMA, table=sqlf.q(t), source=sql_string(t[len(family.prefix):]))
            for t in sorted(tables) if t.startswith(family.prefix)) or sqlf.named(SQL, "no_family", columns=columns_of(family))
    return sqlf.named(SQL, "family_view", lake=SCHEMA, view=family.view, rows=rows)


def attach(con, raw_db: Path, writable: bool) -> None:
    """Views of every table in this session; those an earlier zone session of the same session created are
    kept and only pointed at the current snapshots (DuckDB binds a view as it is created, reading its file
    list). A zone still in the earlier layout (rows in ``raw.duckdb``) is moved into the tables first when
    the session writes it, and read where it is when it only reads."""
    root = root_of(raw_db)
    if sqlf.run(con, SQL, "lake_root").fetchone()[0] != str(root):
        # nothing to keep: the session's first zone, another data directory, or views of tables read in place
        sqlf.run(con, SQL, "drop_views_database", lake=SCHEMA)
    sqlf.run(con, SQL, "set_lake_root", {"root": None})  # kept only once every view below is made
    sqlf.run(con, SQL, "views_database", lake=SCHEMA)
    in_raw = {r[0] for r in sqlf.run(con, SQL, "raw_tables").fetchall()}
    legacy = sorted(t for t in in_raw if t.startswith("raw_"))  # a source's rows in the earlier layout
    legacy_families = [f for f in FAMILIES if f.view in in_raw]
    if (legacy or legacy_families) and writable:
        from plus_analytics.storage.files import mark_dirty

        mark_dirty(raw_db)  # the old tables' rows stay in freed blocks until the file is rewritten
        for table in legacy:
            _migrate(con, root, table)
        for family in legacy_families:
            _migrate_family(con, family)
        legacy, legacy_families = [], []
    for table in legacy:
        sqlf.run(con, SQL, "view_over_legacy", lake=SCHEMA, table=sqlf.q(table))
    defined = _views(con)  # those of an earlier zone session of this session are kept: only pointed again
    tables = [t for t in _tables(root) if t not in legacy]
    views = [_point(con, root, t, create=t not in defined) for t in tables]
    if any(views) or legacy_families or not {f.view for f in FAMILIES} <= defined:
        views += [_family_view(f, tables, legacy=f in legacy_families) for f in FAMILIES]
    if any(views):  # one call for every view (DuckDB binds each as it is created: a file list read per view)
        con.execute(";\n".join(v for v in views if v))
    if not legacy and not legacy_families:  # a view of a table read in place must not outlive its move
        sqlf.run(con, SQL, "set_lake_root", {"root": str(root)})


def present(con) -> set[str]:
    """The tables this session sees (``raw_<source>``, ``quarantine_<source>``, ``mentions_<source>``; not
    the views of a family's tables together)."""
    return _views(con) - {f.view for f in FAMILIES}


def _views(con) -> set[str]:
    return {r[0] for r in sqlf.run(con, SQL, "views", {"database": SCHEMA}).fetchall()}


def ensure(con, table: str, empty_sql: str) -> None:
    """``table`` exists, with the columns of ``empty_sql`` (a query of no rows, typed), else a clear error."""
    from deltalake import DeltaTable

    root = _root(con)
    path = table_dir(root, table)
    want = _columns(con, empty_sql)
    if not exists(path):
        path.mkdir(parents=True, exist_ok=True)
        try:
            DeltaTable.create(str(path), schema=want, partition_by=[PARTITION], configuration=CONFIG, mode="ignore")
        except Exception:
            if not exists(path):
                raise
            # another writer created it first (its first commit won): its columns are checked below
    have = _schema(DeltaTable(str(path))).names
    if have != want.names:
        raise RuntimeError(
            f"{table} has columns {have} but the policy declares {want.names}: migrate the restricted zone "
            f"(re-ingest its source into a fresh zone) before ingesting")
    _define(con, root, table)


def replace_days(con, table: str, days: list[dt.date], sql: str, params: dict | None = None) -> None:
    """Replace the rows of ``days`` with the result of ``sql`` (the table's columns, each row of one of
    ``days``) in one commit. DuckDB writes the rows as new data files of the days (streamed, within its
    memory limit), then one Delta commit adds them and removes the days' files of the snapshot they replace.
    A commit refused because another writer committed first is made again against the new snapshot when
    that writer touched none of ``days`` (the same files, no rows computed again); when it replaced any of
    them, this write's files are deleted and its rows computed again (the later commit wins whole). The
    session's view then shows the new snapshot."""
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError

    if not days:
        return
    root = _root(con)
    path = table_dir(root, table)
    days = sorted(set(days))
    snapshot = DeltaTable(str(path))
    schema = _schema(snapshot)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        written = _write_files(con, path, schema, days, sql, params)
        try:
            _commit(path, snapshot, schema, days, written)
            break
        except CommitFailedError:
            _delete(path, written)
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("%s: a concurrent commit replaced some of the same days; writing them again (%d)", table, attempt)
            snapshot = DeltaTable(str(path))
            time.sleep(0.05 * attempt)
    faults.reached("lake")
    _define(con, root, table)


@dataclass(frozen=True)
class Ahead:
    """A replacement's data files written ahead of its commit (:func:`write_ahead`): the table, the days
    they replace, the snapshot version they were computed against and each file's (path relative to the
    table, rows, bytes, day)."""

    table: str
    days: tuple[dt.date, ...]
    version: int
    written: tuple[tuple, ...]


def version(con, table: str) -> int | None:
    """The version of ``table``'s latest snapshot; None when the table does not exist yet."""
    from deltalake import DeltaTable

    path = table_dir(_root(con), table)
    return DeltaTable(str(path)).version() if exists(path) else None


def write_ahead(con, table: str, days: list[dt.date], sql: str, params: dict | None = None) -> Ahead:
    """The data files :func:`replace_days` would write, written now and committed later by
    :func:`commit_ahead`: an ingest writes its rows while it holds the restricted zone's read lock only, and
    takes the write lock for the commit. Until then no snapshot names the files; a purge (which takes the
    write lock, so never while they are being written) deletes them if they are never committed."""
    from deltalake import DeltaTable

    path = table_dir(_root(con), table)
    snapshot = DeltaTable(str(path))
    days = sorted(set(days))
    written = _write_files(con, path, _schema(snapshot), days, sql, params)
    return Ahead(table, tuple(days), snapshot.version(), tuple(written))


def commit_ahead(con, ahead: Ahead) -> bool:
    """Commit files written ahead (:func:`write_ahead`) if the table is still at the snapshot they were
    computed against and every one of them is still there (a purge in between deletes them). Otherwise
    they are deleted and False returned: the caller writes its rows again (:func:`replace_days`)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError

    root = _root(con)
    path = table_dir(root, ahead.table)
    snapshot = DeltaTable(str(path))
    if snapshot.version() != ahead.version or not all((path / f[0]).is_file() for f in ahead.written):
        discard(con, ahead)
        return False
    try:
        _commit(path, snapshot, _schema(snapshot), list(ahead.days), list(ahead.written))
    except CommitFailedError:
        discard(con, ahead)
        return False
    faults.reached("lake")
    _define(con, root, ahead.table)
    return True


def discard(con, ahead: Ahead) -> None:
    """Files written ahead that will not be committed, deleted."""
    _delete(table_dir(_root(con), ahead.table), ahead.written)


def _delete(path: Path, written) -> None:
    for relative, *_ in written:
        (path / relative).unlink(missing_ok=True)


def _day_files(snapshot, days: list[dt.date]) -> dict[str, tuple[int, str]]:
    """The snapshot's data files of ``days``: path (relative to the table) to its size and day."""
    import pyarrow as pa

    wanted = {d.isoformat() for d in days}
    out = {}
    for action in pa.table(snapshot.get_add_actions(flatten=True)).to_pylist():
        day = action.get(f"partition.{PARTITION}")
        if day is not None and str(day) in wanted:
            out[action["path"]] = (action["size_bytes"], str(day))
    return out


def _commit(path: Path, snapshot, schema, days: list[dt.date], written: list[tuple]):
    """One Delta commit: ``written`` added, the files ``snapshot`` holds of ``days`` removed. Refused
    because another writer committed first, it is made again against the new snapshot if that holds the
    same files of ``days`` (the other writer replaced other days); otherwise the refusal is raised."""
    import json

    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import AddAction, RemoveAction

    now = int(time.time() * 1000)
    adds = [AddAction(relative, size, {PARTITION: day}, now, True, json.dumps({"numRecords": rows}))
            for relative, rows, size, day in written]
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        replaced = _day_files(snapshot, days)
        removes = [RemoveAction(p, True, now, size, {PARTITION: day}) for p, (size, day) in replaced.items()]
        try:
            snapshot.create_write_transaction([*adds, *removes], mode="append", schema=schema, partition_by=[PARTITION])
            return
        except CommitFailedError:
            latest = DeltaTable(str(path))
            if attempt == COMMIT_ATTEMPTS or _day_files(latest, days) != replaced:
                raise
            snapshot = latest


def _write_files(con, path: Path, schema, days: list[dt.date], sql: str, params: dict | None) -> list[tuple]:
    """The rows of ``sql`` written under ``path`` as uncompressed Parquet files, one directory per day, cast
    to the table's types; returns (path relative to the table, rows, bytes, day) per file."""
    types = con.from_arrow(schema.empty_table()).types
    typed = ", ".join(f"cast({sqlf.q(n)} as {t}) as {sqlf.q(n)}" for n, t in zip(schema.names, types))
    con.complete()
    sqlf.run(con, SQL, "write_buffers")
    out = sqlf.run(con, SQL, "write_days", {**(params or {}), "lake_days": days}, typed=typed, rows=sql,
                   directory=sql_string(str(path)))
    return [(os.path.relpath(f, path), count, size, keys[PARTITION]) for f, count, size, _footer, _stats, keys, *_ in out.fetchall()]


def drop_days(con, table: str, days: list[dt.date]) -> None:
    """Delete every row of ``days`` (one commit; the days' files leave the snapshot, :func:`purge` deletes them)."""
    replace_days(con, table, days, sqlf.named(SQL, "no_rows", lake=SCHEMA, table=sqlf.q(table)))


@contextmanager
def edit(con, table: str, days: list[dt.date]) -> Iterator[str]:
    """The rows of ``days`` as the temporary table ``_lake_edit``, to change with SQL in the block; when
    it ends, they replace those days (:func:`replace_days`). Retention nulls expired columns through it."""
    sqlf.run(con, SQL, "edit_table", {"days": sorted(set(days))}, table=sqlf.q(table))
    try:
        yield "_lake_edit"
        replace_days(con, table, days, sqlf.named(SQL, "edited_rows"))
    finally:
        sqlf.run(con, SQL, "drop_edit_table")


def purge(raw_db: Path) -> dict[str, dict[str, int]]:
    """Leave only the latest snapshot of every table: files no longer in it deleted at once (zero
    retention), a checkpoint written and the log before it deleted. Run after a rewrite that removed
    personal data (erasure, retention); the caller holds the restricted zone's write lock, so no reader
    is still reading a file this deletes. Returns, per table, the version kept (every earlier snapshot
    is gone), the data files deleted and the log files deleted: the evidence of the purge."""
    from deltalake import DeltaTable

    root = root_of(raw_db)
    done = {}
    for table in _tables(root):
        path = table_dir(root, table)
        logs = {p.name for p in (path / "_delta_log").iterdir()}
        snapshot = DeltaTable(str(path))
        # full: also files no commit names (a writer killed between its data file and its commit)
        deleted = snapshot.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True)
        snapshot = DeltaTable(str(path))  # the vacuum committed: checkpoint the version it made
        snapshot.create_checkpoint()
        snapshot.cleanup_metadata()
        done[table] = {"version": snapshot.version(), "data_files_deleted": len(deleted),
                       "log_files_deleted": len(logs - {p.name for p in (path / "_delta_log").iterdir()})}
    if done:
        faults.reached("file")
    return done


def _migrate(con, root: Path, table: str) -> None:
    """Move a table of the earlier layout (in ``raw.duckdb``) into its Delta table, all its days in one
    commit, then drop it; the caller marked ``raw.duckdb`` for rewriting (its freed blocks hold the rows)."""
    ensure(con, table, sqlf.named(SQL, "legacy_columns", table=sqlf.q(table)))
    days = [r[0] for r in sqlf.run(con, SQL, "legacy_days", table=sqlf.q(table)).fetchall()]
    replace_days(con, table, days, sqlf.named(SQL, "legacy_rows", table=sqlf.q(table)))
    sqlf.run(con, SQL, "drop_legacy", table=sqlf.q(table))
    log.info("moved %s into its Delta table (%d days)", table, len(days))


def _migrate_family(con, family: Family) -> None:
    """Move the earlier layout's table of ``family`` (one table of every source in ``raw.duckdb``) into each
    source's table, a source's days in one commit, then drop it (``raw.duckdb`` is marked for rewriting by
    the caller)."""
    sources = [r[0] for r in sqlf.run(con, SQL, "legacy_family_sources", view=family.view).fetchall()]
    for source in sources:
        table = family.table(source)
        ensure(con, table, columns_of(family))
        days = [r[0] for r in sqlf.run(con, SQL, "legacy_family_days", {"source": source}, view=family.view).fetchall()]
        replace_days(con, table, days, sqlf.named(SQL, "legacy_family_of", view=family.view), {"source": source})
    sqlf.run(con, SQL, "drop_legacy", table=family.view)
    log.info("moved %s of %d sources into their Delta tables", family.view, len(sources))
