"""The PII audit beyond the gate: the analytics zone plus what Airflow keeps.

Scans, with the gate's detectors and a canary against the restricted identifiers:
* the published analytics database (every text column);
* Airflow task logs (every file under the logs folder, line by line);
* Airflow's records: XCom values, DAG-run conf, asset event extras, rendered template fields, audit-log
  extras, read through a supported interface. A task reads them through Airflow's public REST API
  (:class:`RestApiRecords`, on the ``plus_airflow_api`` connection): Airflow 3 workers have no
  metadata-database access. The CLI, which runs where database access is allowed, may read them
  through Airflow's own ORM session (:class:`DatabaseRecords`).

Findings name the location (table.column and row, file:line, xcom dag/run/task/key, ...), the detector
and a count, never the value. A source that cannot be read fails the audit loudly (:class:`AuditIncomplete`):
it never reports "clean" for what it did not read.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from plus_analytics.gate import scan
from plus_analytics.gate.detectors import detect
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import with_frame

log = logging.getLogger(__name__)
PAGE = 100


class AuditIncomplete(RuntimeError):
    """A source of the audit could not be read: the audit cannot say it is clean."""


class RestApiRecords:
    """Airflow's records through its public REST API (``/api/v2``), authenticated with a JWT from
    ``/auth/token``. ``client`` is an ``httpx.Client`` (tests pass FastAPI's test client)."""

    def __init__(self, client, username: str | None = None, password: str | None = None, since: dt.datetime | None = None):
        self.client, self.since = client, since
        self.headers = {}
        if username:
            r = client.post("/auth/token", json={"username": username, "password": password or ""})
            if r.status_code >= 300:
                raise AuditIncomplete(f"Airflow's API refused the audit's credentials (HTTP {r.status_code})")
            self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    @classmethod
    def from_connection(cls, conn_id: str, since: dt.datetime | None = None) -> RestApiRecords:
        import httpx
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:  # noqa: BLE001 - any failure to read it means the audit cannot run
            raise AuditIncomplete(f"the Airflow connection {conn_id!r} (the REST API the audit reads) is not defined "
                                  f"({type(exc).__name__})") from None
        base = conn.host if "://" in (conn.host or "") else f"{conn.schema or 'http'}://{conn.host}:{conn.port or 8080}"
        return cls(httpx.Client(base_url=base.rstrip("/"), timeout=60), conn.login, conn.password, since)

    def _get(self, path: str, missing_ok: bool = False, **params) -> dict:
        r = self.client.get(path, params=params, headers=self.headers)
        if missing_ok and r.status_code == 404:
            return {}
        if r.status_code >= 300:
            raise AuditIncomplete(f"Airflow's API answered HTTP {r.status_code} for {path.split('?')[0]}")
        return r.json()

    def _pages(self, path: str, key: str, **params) -> Iterator[dict]:
        offset = 0
        while True:
            page = self._get(path, limit=PAGE, offset=offset, **params)
            items = page.get(key, [])
            yield from items
            offset += len(items)
            if not items or offset >= page.get("total_entries", 0):
                return

    def texts(self) -> Iterator[tuple[str, str]]:
        since = {"run_after_gte": self.since.isoformat()} if self.since else {}
        for r in self._pages("/api/v2/dags/~/dagRuns", "dag_runs", **since):
            if r.get("conf"):
                yield f"metadata:dag_run.conf:{r['dag_id']}/{r['dag_run_id']}", json.dumps(r["conf"], ensure_ascii=False)
        for x in self._pages("/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries", "xcom_entries", **since):
            where = f"{x['dag_id']}/{x['run_id']}/{x['task_id']}/{x['key']}"
            # missing_ok: an entry listed a moment ago is gone when its task was retried or cleared since
            value = self._get(f"/api/v2/dags/{x['dag_id']}/dagRuns/{x['run_id']}/taskInstances/{x['task_id']}/xcomEntries/"
                              f"{x['key']}", missing_ok=True, map_index=x["map_index"], stringify=True).get("value")
            if value:
                yield f"metadata:xcom:{where}", str(value)
        for t in self._pages("/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances", **since):
            if t.get("rendered_fields"):
                yield (f"metadata:rendered_fields:{t['dag_id']}/{t['dag_run_id']}/{t['task_id']}",
                       json.dumps(t["rendered_fields"], ensure_ascii=False, default=str))
        for e in self._pages("/api/v2/assets/events", "asset_events"):
            if e.get("extra"):
                yield (f"metadata:asset_event.extra:{e.get('source_dag_id')}/{e.get('source_run_id')}/{e.get('source_task_id')}",
                       json.dumps(e["extra"], ensure_ascii=False))
        for e in self._pages("/api/v2/eventLogs", "event_logs"):
            if e.get("extra"):
                yield f"metadata:log.extra:{e.get('dag_id') or ''}/{e.get('run_id') or ''}/{e['event']}", str(e["extra"])


class DatabaseRecords:
    """Airflow's records through its own ORM session: for the CLI, which runs where the metadata database
    is reachable (never inside a task)."""

    def texts(self) -> Iterator[tuple[str, str]]:
        from airflow.models import DagRun, Log
        from airflow.models.asset import AssetEvent
        from airflow.models.renderedtifields import RenderedTaskInstanceFields
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as s:
            for r in s.query(DagRun).filter(DagRun.conf.isnot(None)):
                if r.conf:
                    yield f"metadata:dag_run.conf:{r.dag_id}/{r.run_id}", json.dumps(r.conf, ensure_ascii=False, default=str)
            for x in s.query(XComModel):
                yield f"metadata:xcom:{x.dag_id}/{x.run_id}/{x.task_id}/{x.key}", str(x.value)
            for t in s.query(RenderedTaskInstanceFields):
                yield (f"metadata:rendered_fields:{t.dag_id}/{t.run_id}/{t.task_id}",
                       json.dumps(t.rendered_fields, ensure_ascii=False, default=str))
            for e in s.query(AssetEvent):
                if e.extra:
                    yield (f"metadata:asset_event.extra:{e.source_dag_id}/{e.source_run_id}/{e.source_task_id}",
                           json.dumps(e.extra, ensure_ascii=False, default=str))
            for e in s.query(Log).filter(Log.extra.isnot(None)):
                yield f"metadata:log.extra:{e.dag_id or ''}/{e.run_id or ''}/{e.event}", str(e.extra)


def log_texts(logs: Path) -> Iterator[tuple[str, str]]:
    for dirpath, _, files in os.walk(logs):
        for f in files:
            p = Path(dirpath) / f
            with open(p, encoding="utf-8", errors="replace") as fh:
                for i, line in enumerate(fh, start=1):
                    if line.strip():
                        yield f"log:{p.relative_to(logs)}:{i}", line.rstrip("\n")


def audit(con, texts: list[tuple[str, str]], analytics: bool) -> list[scan.Finding]:
    """Findings in ``texts`` and (with ``analytics``) in the analytics database attached as ``analytics``;
    ``con`` has the restricted zone attached as ``raw`` for the canary."""
    findings: list[scan.Finding] = []
    if analytics:
        findings += scan.scan_catalog(con, "analytics")
        findings += scan.canary(con, "analytics", "raw")
    for where, text in texts:
        for kind in sorted(detect(text, max_len=None)):
            findings.append(scan.Finding(where, kind, 1, ()))
    with_frame(con, "_t", pd.DataFrame(texts, columns=["key", "v"], dtype=object), sqlf.named(scan.SQL, "texts_table"))
    scan.load_canary_ids(con, "raw")
    hits = scan.token_hits_sql("select key, v from _texts")
    for where, kind in con.execute(f"select key, 'canary:' || kind from ({hits}) order by 1", {"split": scan.LOG_SPLIT}).fetchall():
        findings.append(scan.Finding(where, kind, 1, ()))
    return findings


def write_report(out_dir: Path, findings: list[scan.Finding], scanned: int) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    report = {"generated_at": stamp, "texts_scanned": scanned, "findings": [f.as_dict() for f in findings], "clean": not findings}
    (out_dir / f"audit-{stamp}.json").write_text(json.dumps(report, indent=2))
    rows = "".join(f"<tr><td>{html.escape(f.location)}</td><td>{html.escape(f.detector)}</td><td>{f.rows}</td></tr>"
                   for f in findings)
    (out_dir / f"audit-{stamp}.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>PII audit</title><h1>PII audit: "
        f"{'clean' if not findings else f'{len(findings)} findings'}</h1><p>{scanned} log lines and Airflow records scanned, "
        f"plus every text column of the analytics database. Locations only; values are never shown.</p><table border=1>"
        f"<tr><th>location</th><th>detector</th><th>rows</th></tr>{rows}</table>", encoding="utf-8")
    return {"clean": not findings, "findings": len(findings), "texts_scanned": scanned,
            "report": str(out_dir / f"audit-{stamp}.html")}
