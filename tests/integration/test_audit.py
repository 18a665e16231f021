"""The audit scans beyond the tables: a raw value planted in a task log is found, by location only; a
source it cannot read fails it."""

import duckdb
import pytest

from plus_analytics import audit, steps
from tests.helpers import ctx

pytestmark = pytest.mark.integration


def test_pipeline_leaves_nothing_in_airflow(pipeline):
    out = steps.audit.pii_audit("database", ctx=ctx(pipeline))
    assert out["clean"], out
    assert out["texts_scanned"] > 0


def test_planted_value_in_a_task_log_is_found_and_not_echoed(pipeline):
    con = duckdb.connect(str(pipeline.raw_db), read_only=True)
    email = con.execute("select raw_value from id_map where kind = 'email' and error is null limit 1").fetchone()[0]
    line_id = con.execute("select raw_value from id_map where kind = 'platform_user' and raw_value like 'U%' limit 1").fetchone()[0]
    con.close()
    log = pipeline.airflow_home / "logs" / "dag_id=plus_marts" / "run_id=x" / "task_id=build" / "attempt=1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"[2026-10-02] INFO starting\n[2026-10-02] INFO processing {email} now\n[2026-10-02] INFO contact {line_id}\n")
    try:
        with pytest.raises(RuntimeError, match="finding") as exc:
            steps.audit.pii_audit("database", ctx=ctx(pipeline))
        reports = sorted((pipeline.reports / "audit").glob("audit-*.html"))
        report = reports[-1].read_text(encoding="utf-8") + reports[-1].with_suffix(".json").read_text()
        assert "attempt=1.log:2" in report and "attempt=1.log:3" in report
        assert "email" in report and "line_user_id" in report and "canary:" in report
        assert email not in report and line_id not in report and email not in str(exc.value)
    finally:
        log.unlink()


def test_an_unreadable_source_fails_the_audit(pipeline, monkeypatch):
    """No REST API connection (or an API that answers with an error): never 'clean' for what was not read."""
    monkeypatch.delenv("AIRFLOW_CONN_PLUS_AIRFLOW_API", raising=False)
    with pytest.raises(audit.AuditIncomplete, match="plus_airflow_api"):
        steps.audit.pii_audit("api", ctx=ctx(pipeline))
