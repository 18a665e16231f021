"""Retention: destroy what has outlived its purpose, in every layer, with evidence.

Periods come from ``policy/retention.yaml``. One run, as of a date: landing partitions are deleted;
restricted rows (and single columns such as message text or device data) older than their period are
deleted or nulled; quarantine rows, visitor salts, mentions and orphaned identifiers go too; staging
rows past the staging period are deleted; then the DuckDB files are rewritten (the same physical
erasure as tombstones, so destroyed values do not survive in freed blocks), old gate reports and task
logs are removed, and ``retention_evidence`` records per table and day how many rows were destroyed
and when. The marts are rebuilt afterwards (they also filter to their own period).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from functools import lru_cache
from pathlib import Path

import yaml

from plus_analytics import db
from plus_analytics.config import POLICY_DIR, Paths
from plus_analytics.policy import load_policy
from plus_analytics.sqlfiles import q as _q

log = logging.getLogger(__name__)
RETENTION_FILE = POLICY_DIR / "retention.yaml"

EVIDENCE_DDL = """create table if not exists retention_evidence (
    run_id varchar not null, as_of date not null, layer varchar not null, location varchar not null,
    day date, rule varchar not null, rows_destroyed bigint not null, destroyed_at timestamp not null)"""


@lru_cache(maxsize=2)
def load_retention(path: str | None = None) -> dict:
    spec = yaml.safe_load(Path(path or RETENTION_FILE).read_text(encoding="utf-8"))
    policy = load_policy()
    missing = set(policy) - set(spec["raw"])
    if missing:
        raise ValueError(f"retention.yaml has no period for source(s) {sorted(missing)}: every source needs one")
    for rule in spec["raw_columns"]:
        src = policy[rule["table"]]
        for c in rule["columns"]:
            src.column(c)  # KeyError on a typo: a rule that silently matches nothing is worse than none
    return spec




def retention_table_markdown() -> str:
    spec = load_retention()
    rows = ["| data | where | kept for | why |", "|---|---|---|---|"]
    rows.append(f"| landing files | landing/ | {spec['landing']['days']} days | {spec['landing']['why']} |")
    for name, r in spec["raw"].items():
        rows.append(f"| {name} rows | restricted zone | {r['days']} days | {r['why']} |")
    for r in spec["raw_columns"]:
        rows.append(f"| {r['data']} ({', '.join(r['columns'])} of {r['table']}) | restricted zone | {r['days']} days | nulled in kept rows |")
    for k in ("quarantine", "visitor_salt", "staging", "marts", "reports", "airflow_logs"):
        rows.append(f"| {k.replace('_', ' ')} | {k} | {spec[k]['days']} days | {spec[k]['why']} |")
    return "\n".join(rows)


def enforce(paths: Paths, as_of: dt.date | None = None, spec: dict | None = None) -> dict:
    """Destroy everything older than its period as of ``as_of`` (default: today, UTC)."""
    from plus_analytics.erasure.propagate import collect_orphans, rewrite_database

    spec = spec or load_retention()
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    run_id = f"retention-{as_of.isoformat()}-{int(time.time())}"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    evidence: list[tuple] = []

    def cutoff(days: int) -> dt.date:
        return as_of - dt.timedelta(days=int(days))

    # Landing: whole partitions.
    landing_cut = cutoff(spec["landing"]["days"])
    for part in sorted(paths.landing.glob("*/dt=*")):
        day = dt.date.fromisoformat(part.name[3:])
        if day < landing_cut:
            n = sum(1 for f in part.iterdir() if f.is_file())
            shutil.rmtree(part)
            evidence.append(("landing", part.parent.name, day, f"landing {spec['landing']['days']}d", n))

    policy = load_policy()
    if paths.raw_db.exists():
        with db.opened(paths.raw_db) as con:
            from plus_analytics.privacy import identifiers

            identifiers.ensure_schema(con)
            con.execute(EVIDENCE_DDL)
            present = db.tables(con)
            con.execute("begin transaction")
            for name, rule in spec["raw"].items():
                src = policy[name]
                if src.raw_table not in present:
                    continue
                cut = cutoff(rule["days"])
                for day, n in con.execute(f"select _dt, count(*) from {src.raw_table} where _dt < ? group by 1 order by 1", [cut]).fetchall():
                    evidence.append(("restricted", src.raw_table, day, f"rows {rule['days']}d", n))
                con.execute(f"delete from {src.raw_table} where _dt < ?", [cut])
                con.execute("delete from text_mentions where source = ? and _dt < ?", [name, cut])
            for rule in spec["raw_columns"]:
                src = policy[rule["table"]]
                if src.raw_table not in present:
                    continue
                cut = cutoff(rule["days"])
                some = " or ".join(f"{_q(c)} is not null" for c in rule["columns"])
                for day, n in con.execute(f"select _dt, count(*) from {src.raw_table} where _dt < ? and ({some}) group by 1 order by 1", [cut]).fetchall():
                    evidence.append(("restricted", f"{src.raw_table}.{'+'.join(rule['columns'])}", day, f"{rule['data']} {rule['days']}d", n))
                con.execute(f"update {src.raw_table} set {', '.join(f'{_q(c)} = null' for c in rule['columns'])} where _dt < ? and ({some})", [cut])
                if any(src.column(c).pii == "free_text" for c in rule["columns"]):
                    con.execute("delete from text_mentions where source = ? and _dt < ?", [src.name, cut])
            cut = cutoff(spec["quarantine"]["days"])
            for day, n in con.execute("select _dt, count(*) from quarantine where _dt < ? group by 1 order by 1", [cut]).fetchall():
                evidence.append(("restricted", "quarantine", day, f"quarantine {spec['quarantine']['days']}d", n))
            con.execute("delete from quarantine where _dt < ?", [cut])
            cut = cutoff(spec["visitor_salt"]["days"])
            for day, in con.execute("select day from visitor_salt where day < ? order by 1", [cut]).fetchall():
                evidence.append(("restricted", "visitor_salt", day, f"visitor salt {spec['visitor_salt']['days']}d", 1))
            con.execute("delete from visitor_salt where day < ?", [cut])
            collect_orphans(con, [s for s in policy.values() if s.raw_table in present])
            for layer, location, day, rule, n in evidence:
                con.execute("insert into retention_evidence values (?, ?, ?, ?, ?, ?, ?, ?)", [run_id, as_of, layer, location, day, rule, n, now])
            con.execute("commit")
        rewrite_database(paths.raw_db)

    staged = []
    if paths.staging_db.exists():
        cut = cutoff(spec["staging"]["days"])
        with db.opened(paths.staging_db) as con:
            tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
            con.execute("begin transaction")
            for src in policy.values():
                if src.staging_table not in tables:
                    continue
                # Age = the day the row was delivered (_dt): an account created years ago but delivered
                # (updated) recently is live data; for events _dt is the event day.
                for day, n in con.execute(f"select _dt, count(*) from {src.staging_table} where _dt < ? group by 1 order by 1", [cut]).fetchall():
                    staged.append(("staging", src.staging_table, day, f"staging {spec['staging']['days']}d", n))
                con.execute(f"delete from {src.staging_table} where _dt < ?", [cut])
            con.execute("commit")
        rewrite_database(paths.staging_db)
        if staged and paths.raw_db.exists():
            with db.opened(paths.raw_db) as con:
                for layer, location, day, rule, n in staged:
                    con.execute("insert into retention_evidence values (?, ?, ?, ?, ?, ?, ?, ?)", [run_id, as_of, layer, location, day, rule, n, now])
        evidence += staged

    files_removed = 0
    for root, key in ((paths.reports / "gate", "reports"), (paths.airflow_home / "logs", "airflow_logs")):
        limit = time.time() - int(spec[key]["days"]) * 86400
        if root.exists():
            for dirpath, _, files in os.walk(root):
                for f in files:
                    p = Path(dirpath) / f
                    if p.stat().st_mtime < limit:
                        p.unlink()
                        files_removed += 1
    out = {"run_id": run_id, "as_of": as_of.isoformat(), "rows_destroyed": sum(e[4] for e in evidence if e[0] != "landing"),
           "landing_partitions_removed": sum(1 for e in evidence if e[0] == "landing"),
           "tables": len({e[1] for e in evidence}), "old_files_removed": files_removed}
    log.info("retention: %s", out)
    return out
