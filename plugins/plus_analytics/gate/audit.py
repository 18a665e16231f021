"""The PII audit beyond the gate: the analytics zone plus what Airflow keeps.

Scans, with the same detectors as the gate and a canary against the restricted identifiers:
* the published analytics database (every text column);
* Airflow task logs (every file under the logs folder, line by line);
* the metadata DB: XCom values, DAG-run conf, asset event extras, rendered template fields, audit-log extras.

Findings name the location (table.column and row, file:line, xcom dag/run/task/key, ...), the detector
and a count, never the value. ``plus-analytics audit`` exits 1 when anything is found; the
``plus_pii_audit`` DAG fails.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
from pathlib import Path

import duckdb
import pandas as pd

from plus_analytics import db
from plus_analytics.config import Paths
from plus_analytics.gate import scan

log = logging.getLogger(__name__)
#: Metadata columns that can carry user-supplied or task-produced text.
METADATA_SOURCES = {
    "xcom": ("select dag_id || '/' || run_id || '/' || task_id || '/' || key, cast(value as text) from xcom", "xcom"),
    "dag_run.conf": ("select dag_id || '/' || run_id, cast(conf as text) from dag_run where conf is not null", "dag_run.conf"),
    "asset_event.extra": ("select coalesce(source_dag_id, '') || '/' || coalesce(source_run_id, '') || '/' || coalesce(source_task_id, ''), "
                          "cast(extra as text) from asset_event", "asset_event.extra"),
    "rendered_fields": ("select dag_id || '/' || run_id || '/' || task_id, cast(rendered_fields as text) from rendered_task_instance_fields",
                        "rendered_task_instance_fields"),
    "log.extra": ("select coalesce(dag_id, '') || '/' || coalesce(run_id, '') || '/' || event, extra from log where extra is not null", "log.extra"),
}


def _metadata_rows() -> list[tuple[str, str]]:
    """(location, text) from the Airflow metadata DB, read through SQLAlchemy (any backend)."""
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if not url:
        try:
            from airflow.configuration import conf

            url = conf.get("database", "sql_alchemy_conn")
        except Exception:
            return []
    import sqlalchemy

    rows: list[tuple[str, str]] = []
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as c:
            for name, (sql, table) in METADATA_SOURCES.items():
                try:
                    for where, text in c.execute(sqlalchemy.text(sql)):
                        if text and text not in ("{}", "null"):
                            rows.append((f"metadata:{name}:{where}", text))
                except sqlalchemy.exc.DatabaseError as exc:
                    log.warning("audit: cannot read %s (%s)", table, type(exc).__name__)
    finally:
        engine.dispose()
    return rows


def _log_rows(logs: Path) -> list[tuple[str, str]]:
    rows = []
    if logs.exists():
        for dirpath, _, files in os.walk(logs):
            for f in files:
                p = Path(dirpath) / f
                with open(p, encoding="utf-8", errors="replace") as fh:
                    for i, line in enumerate(fh, start=1):
                        if line.strip():
                            rows.append((f"log:{p.relative_to(logs)}:{i}", line.rstrip("\n")))
    return rows


def run_audit(paths: Paths, include_metadata: bool = True) -> dict:
    con = duckdb.connect()
    findings: list[scan.Finding] = []
    try:
        scan.load_detectors(con)
        have_raw = paths.raw_db.exists()
        if have_raw:
            db.attach(con, paths.raw_db, "raw", read_only=True)
        if paths.analytics_db.exists():
            db.attach(con, paths.analytics_db, "analytics", read_only=True)
            findings += scan.scan_catalog(con, "analytics")
            if have_raw:
                findings += scan.canary(con, "analytics", "raw")
        texts = _log_rows(paths.airflow_home / "logs") + (_metadata_rows() if include_metadata else [])
        db.with_frame(con, "_t", pd.DataFrame(texts, columns=["location", "text"], dtype=object),
                      "create temp table texts as select row_number() over () as rn, location, cast(text as varchar) as v from _t")
        for where, kind in con.execute(
                "select location, unnest(pii_kinds(v, 1000000)) from texts order by 1").fetchall():
            findings.append(scan.Finding(where, kind, 1, ()))
        if have_raw:  # token canary: every raw identifier (length >= 6) against every log line and value
            hits = scan.token_hits_sql("select location as key, v from texts", f"({scan.canary_ids_sql('raw')})")
            for where, kind in con.execute(f"select key, 'canary:' || kind from ({hits}) order by 1",
                                           {"split": scan.LOG_SPLIT}).fetchall():
                findings.append(scan.Finding(where, kind, 1, ()))
        scanned = con.execute("select count(*) from texts").fetchone()[0]
    finally:
        con.close()
    out_dir = paths.reports / "audit"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    report = {"generated_at": stamp, "texts_scanned": scanned, "findings": [f.as_dict() for f in findings],
              "clean": not findings}
    (out_dir / f"audit-{stamp}.json").write_text(json.dumps(report, indent=2))
    rows = "".join(f"<tr><td>{html.escape(f.location)}</td><td>{html.escape(f.detector)}</td><td>{f.rows}</td></tr>" for f in findings)
    (out_dir / f"audit-{stamp}.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>PII audit</title><h1>PII audit: {'clean' if not findings else f'{len(findings)} findings'}</h1>"
        f"<p>{scanned} log lines and metadata values scanned, plus every text column of the analytics database. "
        f"Locations only; values are never shown.</p><table border=1><tr><th>location</th><th>detector</th><th>rows</th></tr>{rows}</table>",
        encoding="utf-8")
    return {"clean": not findings, "findings": len(findings), "texts_scanned": scanned,
            "report": str(out_dir / f"audit-{stamp}.html")}
