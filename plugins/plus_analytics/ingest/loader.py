"""Ingest: landing files of one source and one or more days into the restricted zone, bad rows into
quarantine.

The whole batch is validated set-wise inside DuckDB against the policy (types, required fields,
lengths, domains, minimums, identifier normalization, duplicate keys). Every line read ends up in
exactly one place: ``raw_<source>`` or ``quarantine_<source>`` (with file, line and reason; both Delta
tables, :mod:`plus_analytics.storage.lake`), or is counted as suppressed for an erasure request.
Re-running a day replaces that day exactly: its rows, quarantined lines and mentions in one Delta commit
each, the rest in one transaction.

A daily DAG run ingests one day; a backfill ingests many days of a source in batches of whole days
that fit memory (:func:`ingest_days`), with exactly the per-day results, rows and quarantine reasons
that ingesting them one by one, in order, would give: the statements and identifier lookups are paid
once per batch rather than once per day.

The zone's write lock is held for the writes only (:func:`ingest_days`): a batch is read, validated and
its identifiers learned in the session first, with no lock; then checked against the days loaded and its
rows written as data files with the read lock (:func:`_write_ahead`); the write lock covers their commit.
When the writes run, the session has the restricted database read-write and, when deletion requests
exist, the privacy ledger read-only as ``ledger`` (late arrivals of erased subjects are then suppressed).
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import nullcontext
from contextlib import suppress as suppress_errors
from dataclasses import asdict, dataclass, field
from pathlib import Path

from plus_analytics.config import settings
from plus_analytics.ingest import suppression
from plus_analytics.ingest.landing import rewrite_lines
from plus_analytics.ingest.mentions import extract_mentions
from plus_analytics.ingest.reading import PAYLOAD_KEEP, load_candidates, partition_files, release
from plus_analytics.ingest.validation import column_problem_pairs, validate, validate_against_loaded
from plus_analytics.policy import REDACTED, Source
from plus_analytics.privacy import identifiers
from plus_analytics.privacy.keys import MasterKey
from plus_analytics.storage import duck, lake
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import insert_rows, transaction
from plus_analytics.storage.files import mark_dirty
from plus_analytics.storage.sql import q

log = logging.getLogger(__name__)
SQL = "ingest/ingest.sql"


@dataclass
class IngestResult:
    source: str
    day: str
    files: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_suppressed: int = 0
    references_redacted: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def raw_rows_sql(src: Source) -> str:
    """The columns of a source's raw rows, typed, and no row: where each came from, the declared columns,
    when it was loaded."""
    cols = ", ".join(f"cast(null as {c.type}) as {q(c.name)}" for c in src.columns)
    return (f"select cast(null as date) as _dt, cast(null as varchar) as _file, cast(null as bigint) as _line, {cols}, "
            f"cast(null as timestamp) as _ingested_at limit 0")


def prepare(con, src: Source, key: MasterKey, tomb_key: MasterKey | None = None) -> bool:
    """Schema, key checks and the raw table, before a batch's writes (its pseudonyms were made with the key
    :func:`_check_batch` registered); returns whether late arrivals are suppressed (deletion requests
    exist: then the tombstone key is required)."""
    identifiers.ensure_schema(con)
    identifiers.check_key(con, "raw", key)
    identifiers.check_key_version(con, key)
    for table, columns, _rows, _params in _tables_written(src, None):
        lake.ensure(con, table, columns)
    suppress = suppression.has_tombstones(con)
    if suppress:
        if tomb_key is None:
            raise ValueError("deletion requests exist: ingest needs the tombstone key to drop their late arrivals")
        suppression.register_tombstone_key(con, tomb_key)
    return suppress


def ingest_partition(con, src: Source, day: dt.date, landing: Path, key: MasterKey,
                     tomb_key: MasterKey | None = None) -> IngestResult:
    """Validate and load one (source, day): see :func:`ingest_days`."""
    return ingest_days(con, src, [day], landing, key, tomb_key)[0]


def ingest_days(con, src: Source, days: list[dt.date], landing: Path, key: MasterKey,
                tomb_key: MasterKey | None = None, zone=None) -> list[IngestResult]:
    """Validate and load the landing files of ``src`` for ``days`` in batches of whole days (as many as
    fit ``PLUS_INGEST_BATCH_MB``), each in one transaction; one result per day, in order. A day without
    landing files keeps the rows already loaded for it (landing expired under retention, or not
    re-delivered): loaded data is never replaced with nothing.

    ``con`` is a session with the restricted zone attached (read-write); or, with ``zone`` (``zone(write)``
    returns a context manager that attaches the zone to ``con`` and holds its locks, read-only or
    read-write: :func:`plus_analytics.storage.locks.zone`), a session without it. A batch is then done in
    three parts, so that ingests of other sources go on meanwhile and only the writes wait for each other:
    the landing files read, every line's verdict and every field validated, identifiers normalized and
    pseudonymized, in the session with no lock (what the maps already hold of the batch's identifiers is
    read under the zone's read lock first); with the read lock, the duplicate keys of days already loaded
    and its rows written as the table's next data files (:func:`_write_ahead`); then, with the write lock
    held, late arrivals of erased subjects, the batch's new identifiers published, its rows' files committed
    and its quarantine and logs written. Another commit to the table in between, or a purge, has the batch
    checked and its rows written again under the lock. Landing files that changed between the reading
    and the lock (:func:`landing_state`: an erasure's removal rewrote their lines, retention deleted them)
    are read and checked again under the lock, so a batch never writes what was removed meanwhile."""
    zone = zone or _attached
    limit = settings().ingest_batch_bytes
    batches: list[list[dt.date]] = []
    size = 0
    for day in sorted(set(days)):
        day_size = sum(f.stat().st_size for f in partition_files(landing, src, day))
        if not batches or size + day_size > limit:
            batches.append([])
            size = 0
        batches[-1].append(day)
        size += day_size
    results: list[IngestResult] = []
    for batch in batches:
        ahead = _Ahead()
        try:
            seen = landing_state(landing, src, batch)
            files = _files(seen)
            _check_batch(con, src, files, Path(landing), key, zone)
            log.info("%s: %d landing files of %d days read and checked; now the writes", src.name, len(files), len(batch))
            _write_ahead(con, src, batch, landing, seen, tomb_key, zone, ahead)
            with zone(True):
                now = landing_state(landing, src, batch)
                if now != seen or ahead.checked_at not in (None, lake.version(con, src.raw_table)):
                    # An erasure's removal or retention rewrote or deleted landing files of these days since
                    # they were read (both do it under this lock): writing the older reading would undo them.
                    # Or another writer committed to the source's table since the batch was checked against it.
                    log.warning("%s: landing files of the batch or its table changed while it was checked (an "
                                "erasure, retention or another ingest in between): read and checked again under "
                                "the lock", src.name)
                    ahead.drop(con)
                    _drop_scratch(con)
                    _check_batch(con, src, _files(now), Path(landing), key, _attached)
                suppress = prepare(con, src, key, tomb_key)
                results += _ingest_batch(con, src, [(d, [f for f, *_ in now[d]]) for d in batch], _files(now),
                                         Path(landing), suppress, ahead)
        except BaseException:
            with suppress_errors(Exception):  # the batch's own error is the one to see
                ahead.drop(con)
            with suppress_errors(Exception):
                _drop_scratch(con)
            raise
        _drop_scratch(con)
    return results


@dataclass
class _Ahead:
    """What a batch did before the zone's write lock: the version of the source's table it was checked
    against for duplicates of earlier days (None: not checked yet), the data files written ahead of its
    rows, quarantined lines and mentions, per table (:func:`plus_analytics.storage.lake.write_ahead`;
    none: written under the lock) and the time they carry."""

    checked_at: int | None = None
    files: dict[str, lake.Ahead] = field(default_factory=dict)
    now: dt.datetime | None = None

    def drop(self, con) -> None:
        """The batch is checked again: nothing done ahead holds (files written ahead deleted)."""
        while self.files:
            lake.discard(con, self.files.popitem()[1])
        self.checked_at = None


def _write_ahead(con, src: Source, days: list[dt.date], landing: Path, seen: dict, tomb_key: MasterKey | None,
                 zone, ahead: _Ahead) -> None:
    """With the zone's read lock (and the ledger's), before its write lock: the batch checked against the
    days already loaded, and its rows written as the table's next data files, so the write lock covers their
    commit, not their writing. A purge takes the write lock, so it never runs while they are written, and
    deletes them if they are not committed by then (an erasure's verification never finds them).

    Nothing is written ahead when the batch holds anything of an erased person (its late arrivals are
    dropped under the write lock, as before), when the landing files changed since they were read, or when
    the zone does not exist yet or the table is in the earlier layout; a source's first ingest creates its
    table here (no row, nothing personal). What changes before the write lock is taken (another commit to
    the table, a purge of the files, landing rewritten) is found then, and the batch is checked and its rows
    written again there."""
    with zone(False):
        _write_ahead_in_zone(con, src, days, landing, seen, tomb_key, ahead)


def _write_ahead_in_zone(con, src: Source, days: list[dt.date], landing: Path, seen: dict,
                         tomb_key: MasterKey | None, ahead: _Ahead) -> None:
    if duck.database_path(con, "raw") is None or landing_state(landing, src, days) != seen:
        return  # (no restricted zone yet: the write lock's session creates it)
    have = lake.present(con)
    for table, columns, _rows, _params in _tables_written(src, None):
        if table not in have:  # the source's first ingest: its tables, with no row, first
            lake.ensure(con, table, columns)
    checked_at = lake.version(con, src.raw_table)
    if checked_at is None:  # a table of the earlier layout, which the write lock's session moves first
        return
    validate_against_loaded(con, src)
    ahead.checked_at = checked_at
    if suppression.has_tombstones(con):
        if tomb_key is None or "erased_row_keys" not in duck.tables(con, "raw"):
            return  # the write lock's prepare() stops the batch with why, or brings an older zone's tables up
        suppression.register_tombstone_key(con, tomb_key)
        if any(suppression.find_late(con, src)):
            return  # an erased person's rows are never written ahead: dropped under the write lock
    kept = _kept_days(con, src, [(d, seen[d]) for d in days], quiet=True)
    replaced = [d for d in days if d not in kept]
    ahead.now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for table, _columns, rows, params in _tables_written(src, ahead.now):
        ahead.files[table] = lake.write_ahead(con, table, replaced, rows, params)


def _tables_written(src: Source, now: dt.datetime | None) -> list[tuple[str, str, str, dict]]:
    """The Delta tables a batch replaces its days of (its rows, its quarantined lines, the identifiers its
    free text mentions): each with its columns (a query of no rows), the query of the batch's rows and
    their parameters."""
    out = [(src.raw_table, raw_rows_sql(src),
            sqlf.named(SQL, "loaded_rows", columns=", ".join(q(c) for c in src.column_names)), {"now": now}),
           (src.quarantine_table, lake.columns_of(lake.QUARANTINE),
            sqlf.named(SQL, "quarantine_rows", ndjson=src.format == "ndjson"), {"keep": PAYLOAD_KEEP, "now": now})]
    if src.free_text_columns:
        out.append((src.mentions_table, lake.columns_of(lake.MENTIONS), sqlf.named(SQL, "mention_rows"), {}))
    return out


def _attached(write: bool):
    """The zone for a session that already has it attached (and its locks held): nothing to do."""
    return nullcontext()


def landing_state(landing: Path, src: Source, days: list[dt.date]) -> dict[dt.date, list[tuple]]:
    """Each day's landing files with what changes when one is rewritten in place (size, modification
    time), replaced (inode) or deleted: taken before a batch is read, compared under the zone's lock."""
    out = {}
    for day in days:
        files = []
        for f in partition_files(landing, src, day):
            try:
                st = f.stat()
            except FileNotFoundError:  # deleted between the listing and here: not part of the state
                continue
            files.append((f, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        out[day] = files
    return out


def _files(state: dict[dt.date, list[tuple]]) -> list[tuple[dt.date, Path]]:
    return [(d, f) for d, found in state.items() for f, *_ in found]


def _drop_scratch(con) -> None:
    """A batch's scratch tables and lines, gone whether it was written or failed."""
    for t in ("_cand", "_checked", "_mentions"):
        con.execute(f"drop table if exists {t}")
    identifiers.drop_batch_dictionary(con)
    release(con)


def _check_batch(con, src: Source, files: list[tuple[dt.date, Path]], landing: Path, key: MasterKey, zone) -> None:
    """``_cand`` read from the files, mentions found, the batch's identifiers and user agents learned
    (their validity is part of validation), ``_checked`` validated: all but one short read of the maps
    without the zone."""
    load_candidates(con, src, files, landing)
    identifiers.batch_dictionary(con)
    for c in src.identifier_columns:
        identifiers.add_values(con, c.kind, f"select {q('v_' + c.name)} as v from _cand where _err is null")
    for c in src.columns:
        if c.rule == "generalize" and c.how == "user_agent":
            identifiers.add_user_agents(con, f"select {q('v_' + c.name)} as v from _cand where _err is null")
    extract_mentions(con, src)
    with zone(False):
        if "id_map" in duck.tables(con, "raw"):  # (a first ingest finds no zone yet)
            identifiers.check_key(con, "raw", key, register=False)  # a wrong key stops before the work
            identifiers.read_known(con)
    identifiers.register_key(con, key)
    identifiers.learn(con)
    validate(con, src)


def _kept_days(con, src: Source, chunk, quiet: bool = False) -> dict[dt.date, int]:
    """Days of the batch with no landing files: their loaded rows stay (counted, not replaced); said in the
    log unless ``quiet`` (the batch asks again under the write lock)."""
    kept = {}
    for day, found in chunk:
        if found:
            continue
        n = duck.scalar(con, sqlf.named(SQL, "kept_rows_of_day", raw_table=src.raw_table), [day])
        if not quiet:
            log.warning("no landing files for %s on %s%s", src.name, day, f"; keeping the {n} rows already loaded" if n else "")
        if n:
            kept[day] = n
    return kept


def _suppress(con, src: Source, landing: Path, now: dt.datetime) -> tuple[dict[dt.date, int], dict[dt.date, int]]:
    """Inside the batch's transaction: what the batch holds of erased people (:func:`suppression.find_late`)
    dropped or redacted, logged per request and day, blanked or redacted in landing. Returns rows dropped
    and rows with references redacted, per day."""
    dropped, redacted = suppression.find_late(con, src)
    if not dropped and not redacted:
        return {}, {}
    # The late values were learned, and are deleted below: until the restricted database is rewritten
    # they stay in its freed blocks. Marked before the deleting commit, under the zone's lock.
    mark_dirty(duck.database_path(con, "raw"))
    suppression.log_late(con, src, now)
    per_day = dict(sqlf.run(con, SQL, "suppressed_per_day").fetchall())
    redacted_per_day = dict(sqlf.run(con, suppression.SQL, "references_per_day").fetchall())
    blank: dict[str, set[int]] = {}
    for f, line in sqlf.run(con, SQL, "suppressed_lines").fetchall():
        blank.setdefault(f, set()).add(int(line))
    redact: dict[str, dict[int, set[str]]] = {}
    for f, line, col in sqlf.run(con, suppression.SQL, "referenced_fields").fetchall():
        redact.setdefault(f, {}).setdefault(int(line), set()).add(col)
    suppression.redact_references(con, src, REDACTED)
    suppression.forget_late_identifiers(con, src)
    suppression.remember_dropped_parents(con, src)
    sqlf.run(con, SQL, "drop_suppressed")
    rewrite_lines(landing, blank, redact)
    return per_day, redacted_per_day


def _write_batch(con, src: Source, replaced: list[dt.date], now: dt.datetime, ahead: _Ahead) -> None:
    """Inside the batch's transaction: the days' raw rows, quarantined lines and mentions (one commit to each
    of the source's Delta tables: of the files written ahead, or written now), then the column log replaced
    in the restricted database, whose commit follows. A process killed between them leaves the days' new
    rows with no log of them yet: the day's rerun replaces them whole."""
    batch = {"s": src.name, "days": replaced}
    for table, _columns, rows, params in _tables_written(src, now):
        files = ahead.files.pop(table, None)
        if files is None or not lake.commit_ahead(con, files):
            lake.replace_days(con, table, replaced, rows, params)
    sqlf.run(con, SQL, "replace_column_log", batch)
    sqlf.run(con, SQL, "insert_column_log", {"s": src.name, "now": now}, pairs=column_problem_pairs(src))


def _ingest_batch(con, src: Source, chunk: list[tuple[dt.date, list[Path]]], files: list[tuple[dt.date, Path]],
                  landing: Path, suppress: bool, ahead: _Ahead) -> list[IngestResult]:
    """One batch of whole days (its candidates read into ``_cand``), in one transaction."""
    days = [d for d, _ in chunk]
    kept = _kept_days(con, src, chunk)
    replaced = [d for d in days if d not in kept]
    if ahead.checked_at is None:
        validate_against_loaded(con, src)
    if src.visitor:
        salted = [r[0] for r in sqlf.run(con, SQL, "event_days", event_time=q(src.event_time)).fetchall()]
        identifiers.ensure_visitor_salts(con, salted)
    identifiers.publish(con)  # before the rows: a row's identifiers are always in the maps
    now = ahead.now if ahead.files else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with transaction(con):
        suppressed, redacted = _suppress(con, src, landing, now) if suppress else ({}, {})
        if ahead.files and (suppressed or redacted or any(list(f.days) != replaced for f in ahead.files.values())):
            ahead.drop(con)  # the rows written ahead are not the rows to write now
        _write_batch(con, src, replaced, now, ahead)
        counts = {d: (n, ok, bad) for d, n, ok, bad in sqlf.run(con, SQL, "counts_per_day").fetchall()}
        results = []
        for day in days:
            if day in kept:
                results.append(IngestResult(src.name, day.isoformat(), 0, 0, kept[day], 0))
                continue
            read, loaded, bad = counts.get(day, (0, 0, 0))
            sup = suppressed.get(day, 0)
            results.append(IngestResult(src.name, day.isoformat(), sum(1 for fd, _ in files if fd == day),
                                        read + sup, loaded, bad, sup, redacted.get(day, 0)))
        sqlf.run(con, SQL, "replace_log", {"s": src.name, "days": replaced})
        insert_rows(con, "raw.ingest_log", [
            (src.name, dt.date.fromisoformat(r.day), r.files, r.rows_read, r.rows_loaded, r.rows_quarantined,
             r.rows_suppressed, now) for r in results if dt.date.fromisoformat(r.day) not in kept])
    for r in results:
        log.info("ingested %s %s: %s", src.name, r.day, {k: v for k, v in r.as_dict().items() if k not in ("source", "day")})
    return results
