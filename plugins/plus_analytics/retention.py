"""Retention: destroy what has outlived its purpose, in every layer, with evidence.

Periods come from ``policy/retention.yaml``. One run, as of a date, in steps that can each be repeated:

1. landing partitions past their period are renamed out of the way (``.expired-dt=...``) and, with the
   evidence of how many files they held, deleted;
2. restricted rows (and single columns such as message text or device data) older than their period are
   deleted or nulled; quarantined lines, visitor salts, mentions and orphaned identifiers go too;
3. staging rows past the staging period are deleted;
4. the DuckDB files are rewritten (the same physical erasure as tombstones, so destroyed values do not
   survive in freed blocks), and old gate reports and task logs removed.

Every destruction writes its evidence (per table and day, how many rows, when) in the same transaction,
into the database it changed; the evidence is then copied into the privacy ledger
(:mod:`plus_analytics.ledger.outbox`). A run that dies at any point is finished by the next run as of
the same date or later: nothing is left half-applied or unrecorded. The marts are rebuilt afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pandas as pd

from plus_analytics.config import Paths
from plus_analytics.policy import load_policy
from plus_analytics.policy.retention import RetentionSpec
from plus_analytics.privacy.identifiers import collect_orphans
from plus_analytics.storage import lake
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import tables, transaction, with_frame
from plus_analytics.storage.files import mark_dirty
from plus_analytics.storage.sql import q

log = logging.getLogger(__name__)
SQL = "retention/retention.sql"
EXPIRED = ".expired-"


class Evidence:
    """Evidence rows of one run, written into the database a step changed, in that step's transaction."""

    def __init__(self, run_id: str, as_of: dt.date):
        self.run_id, self.as_of = run_id, as_of
        self.rows: list[tuple] = []

    def add(self, layer: str, location: str, day, rule: str, n: int) -> None:
        self.rows.append((f"{self.run_id}-{uuid.uuid4().hex[:10]}", self.run_id, self.as_of, layer, location, day, rule,
                          int(n), dt.datetime.now(dt.UTC).replace(tzinfo=None)))

    def write(self, con, database: str) -> int:
        """Into ``database``'s retention_log (the outbox of the zone the rows were destroyed in)."""
        if not self.rows:
            return 0
        cols = ["log_id", "run_id", "as_of", "layer", "location", "day", "rule", "rows_destroyed", "destroyed_at"]
        with_frame(con, "_retention_frame", pd.DataFrame(self.rows, columns=cols, dtype=object), sqlf.named(SQL, "log_frame", db=database))
        n, self.rows = len(self.rows), []
        return n


def new_run(as_of: dt.date) -> Evidence:
    return Evidence(f"retention-{as_of.isoformat()}-{int(time.time())}", as_of)


def _cutoff(as_of: dt.date, days: int) -> dt.date:
    return as_of - dt.timedelta(days=int(days))


def expire_landing(landing: Path, spec: RetentionSpec, as_of: dt.date) -> list[Path]:
    """Rename the landing partitions past their period out of the way (atomic); returns every expired
    directory waiting to be deleted, including ones a dead run left behind."""
    cut = _cutoff(as_of, spec.landing.days)
    for part in sorted(landing.glob("*/dt=*")):
        try:
            day = dt.date.fromisoformat(part.name[3:])
        except ValueError:
            continue
        if day < cut:
            part.rename(part.with_name(EXPIRED + part.name))
    return sorted(landing.glob(f"*/{EXPIRED}dt=*"))


def _destroy_raw_rows(con, ev: Evidence, spec: RetentionSpec, as_of: dt.date, present: set[str]) -> list[tuple]:
    """Inside the evidence's transaction: the destructions of rows, quarantined lines and mentions decided,
    those of rows and lines counted into ``ev``, all returned as (table, day, columns or None) for
    :func:`_carry_out` after the commit."""
    policy = load_policy()
    pending: list[tuple] = []
    for name, period in spec.raw.items():
        src = policy[name]
        if src.raw_table not in present:
            continue
        cut = _cutoff(as_of, period.days)
        for day, n in sqlf.run(con, SQL, "rows_per_day", {"cut": cut}, db=lake.SCHEMA, table=src.raw_table).fetchall():
            ev.add("restricted", src.raw_table, day, f"rows {period.days}d", n)
            pending.append((src.raw_table, day, None))
        pending += _mentions_before(con, src, cut, present)
    for rule in spec.raw_columns:
        src = policy[rule.table]
        if src.raw_table not in present:
            continue
        cut = _cutoff(as_of, rule.days)
        some = " or ".join(f"{q(c)} is not null" for c in rule.columns)
        for day, n in sqlf.run(con, SQL, "column_rows_per_day", {"cut": cut}, db=lake.SCHEMA, table=src.raw_table,
                               some=some).fetchall():
            ev.add("restricted", f"{src.raw_table}.{'+'.join(rule.columns)}", day, f"{rule.data} {rule.days}d", n)
            pending.append((src.raw_table, day, list(rule.columns)))
        if any(src.column(c).pii == "free_text" for c in rule.columns):
            pending += _mentions_before(con, src, cut, present)
    cut = _cutoff(as_of, spec.quarantine.days)
    for src in policy.values():
        if src.quarantine_table not in present:
            continue
        for day, n in sqlf.run(con, SQL, "rows_per_day", {"cut": cut}, db=lake.SCHEMA, table=src.quarantine_table).fetchall():
            ev.add("restricted", src.quarantine_table, day, f"quarantine {spec.quarantine.days}d", n)
            pending.append((src.quarantine_table, day, None))
    return pending


def _mentions_before(con, src, cut: dt.date, present: set[str]) -> list[tuple]:
    """The days of the source's mentions before ``cut``, to drop with its rows or its free text (the
    mentions are an index of the text, not evidence of their own)."""
    if src.mentions_table not in present:
        return []
    return [(src.mentions_table, day, None) for (day,) in
            sqlf.run(con, SQL, "days_before", {"cut": cut}, db=lake.SCHEMA, table=src.mentions_table).fetchall()]


def _carry_out(con) -> None:
    """The recorded destructions of rows (``raw.retention_pending``), each table's days in one commit per
    kind, then the record removed. Repeating it changes nothing, so a run that died here is finished by
    the next."""
    todo: dict[tuple[str, tuple | None], list[dt.date]] = defaultdict(list)
    for table, day, columns in sqlf.run(con, SQL, "pending").fetchall():
        todo[(table, tuple(columns) if columns is not None else None)].append(day)  # (a day may be there twice)
    for (table, columns), days in sorted(todo.items(), key=lambda kv: (kv[0][0], kv[0][1] is None)):
        if columns is None:
            lake.drop_days(con, table, days)
            continue
        with lake.edit(con, table, days) as edited:
            sqlf.run(con, SQL, "null_columns", {"cut": max(days) + dt.timedelta(days=1)}, db="temp", table=edited,
                     assignments=", ".join(f"{q(c)} = null" for c in columns),
                     some=" or ".join(f"{q(c)} is not null" for c in columns))
    with transaction(con):
        sqlf.run(con, SQL, "pending_done")


def _destroy_restricted_bookkeeping(con, ev: Evidence, spec: RetentionSpec, as_of: dt.date) -> None:
    cut = _cutoff(as_of, spec.visitor_salt.days)
    for (day,) in sqlf.run(con, SQL, "salt_days", {"cut": cut}).fetchall():
        ev.add("restricted", "visitor_salt", day, f"visitor salt {spec.visitor_salt.days}d", 1)
    sqlf.run(con, SQL, "delete_salts", {"cut": cut})


def destroy_restricted(con, raw_db: Path, expired: list[Path], ev: Evidence, spec: RetentionSpec, as_of: dt.date) -> int:
    """Steps 1 and 2 on the restricted zone (``con``, read-write, its schema in place): what is destroyed is
    decided and recorded with its evidence in one transaction, the rows' destructions (Delta tables, which
    that transaction cannot include) carried out after it commits, then the identifiers no row refers to
    any more dropped; the expired landing directories are deleted once their evidence is committed.
    Returns rows destroyed."""
    present = lake.present(con)
    for part in expired:
        day = dt.date.fromisoformat(part.name[len(EXPIRED) + 3:])
        if not sqlf.run(con, SQL, "landing_logged", {"source": part.parent.name, "day": day}, db="raw").fetchone()[0]:
            ev.add("landing", part.parent.name, day, f"landing {spec.landing.days}d",
                   sum(1 for f in part.iterdir() if f.is_file()))
    mark_dirty(raw_db)
    _carry_out(con)  # what a dead run decided and recorded: done before anything new is decided
    with transaction(con):
        pending = _destroy_raw_rows(con, ev, spec, as_of, present)
        if pending:
            with_frame(con, "_pending_frame", pd.DataFrame(pending, columns=["table_name", "day", "columns"], dtype=object),
                       sqlf.named(SQL, "pending_insert"))
        _destroy_restricted_bookkeeping(con, ev, spec, as_of)
        destroyed = sum(r[7] for r in ev.rows if r[3] != "landing")
        ev.write(con, "raw")
    _carry_out(con)
    with transaction(con):
        collect_orphans(con, [s for s in load_policy().values() if s.raw_table in present])
    for part in expired:
        shutil.rmtree(part)
    return destroyed


def destroy_staging(con, staging_db: Path, ev: Evidence, spec: RetentionSpec, as_of: dt.date) -> int:
    """Step 3 on staging (``con``, read-write): rows delivered before the staging period. Age is the
    delivery day (_dt): an account created years ago but delivered (updated) recently is live data."""
    from plus_analytics.privacy.staging import bump_version, ensure_tables, log_changes, next_version

    present = tables(con, "stg")
    cut = _cutoff(as_of, spec.staging.days)
    ensure_tables(con)
    sqlf.run(con, "staging/staging.sql", "retention_log_table")
    mark_dirty(staging_db)
    with transaction(con):
        version = next_version(con)
        for src in load_policy().values():
            if src.staging_table not in present:
                continue
            for day, n in sqlf.run(con, SQL, "rows_per_day", {"cut": cut}, db="stg", table=src.staging_table).fetchall():
                ev.add("staging", src.staging_table, day, f"staging {spec.staging.days}d", n)
            log_changes(con, src, version, "_dt < $cut", {"cut": cut})
            sqlf.run(con, SQL, "delete_rows", {"cut": cut}, db="stg", table=src.staging_table)
        destroyed = sum(r[7] for r in ev.rows)
        if ev.rows:
            bump_version(con, "retention")
        ev.write(con, "stg")
    return destroyed


def remove_old_files(paths: Paths, spec: RetentionSpec) -> int:
    """Gate reports and task logs past their period (no personal data; evidence is their count)."""
    removed = 0
    for root, period in ((paths.reports / "gate", spec.reports), (paths.airflow_home / "logs", spec.airflow_logs)):
        limit = time.time() - period.days * 86400
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                if p.stat().st_mtime < limit:
                    p.unlink()
                    removed += 1
    return removed
