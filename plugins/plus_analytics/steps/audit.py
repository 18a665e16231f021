"""The PII audit step: the analytics zone, task logs and Airflow's own records scanned for personal data."""

from __future__ import annotations

import datetime as dt

from plus_analytics.context import Context, context
from plus_analytics.storage import locks


def pii_audit(records: str = "api", since: dt.datetime | None = None, ctx: Context | None = None) -> dict:
    """Scan the analytics zone, task logs and Airflow's records (``records``: ``api`` through the REST API,
    as tasks must; ``database`` through Airflow's session, for the CLI). Findings fail the task."""
    from plus_analytics import audit
    from plus_analytics.config import AIRFLOW_API_CONN_ID

    ctx = ctx or context()
    paths = ctx.paths
    source = audit.RestApiRecords.from_connection(AIRFLOW_API_CONN_ID, since) if records == "api" else audit.DatabaseRecords()
    try:
        texts = list(audit.log_texts(paths.airflow_home / "logs")) + list(source.texts())
    except audit.AuditIncomplete:
        raise
    except Exception as exc:  # noqa: BLE001 - a source that cannot be read must fail the audit, loudly
        raise audit.AuditIncomplete(f"Airflow's records could not be read ({type(exc).__name__}: {exc})") from None
    if not paths.raw_db.exists():
        raise audit.AuditIncomplete("the restricted zone is missing: the canary has nothing to compare against")
    with locks.zone(read=paths.zones("raw", "analytics")) as con:
        findings = audit.audit(con, texts, analytics=paths.analytics_db.exists())
    out = audit.write_report(paths.reports / "audit", findings, len(texts))
    if not out["clean"]:
        raise RuntimeError(f"PII audit found {out['findings']} finding(s); locations only in {out['report']}")
    return out
