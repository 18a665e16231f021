"""Airflow listeners: scrub the DPO's params form from the metadata DB when an intake run ends.

A deletion request typed into the ``plus_erasure_intake`` form reaches Airflow as DAG-run conf, which
Airflow stores before any task runs. The intake task pseudonymizes it at once; when the run ends (success
or failure) this listener, running where the run's state is committed (scheduler, or the process of
``dag.test``), replaces the conf with a marker. On SQLite it turns on ``secure_delete`` first, so the old
bytes are zeroed rather than left in free pages (erasure's byte scan covers the metadata DB file too).
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl

from plus_analytics.metadata_db import truncate_sqlite_wal

log = logging.getLogger(__name__)
INTAKE_DAG_ID = "plus_erasure_intake"
SCRUBBED = {"scrubbed": True, "note": "the identifier was pseudonymized at intake and removed from this run's conf"}


def scrub(dag_run) -> bool:
    if getattr(dag_run, "dag_id", None) != INTAKE_DAG_ID or not dag_run.conf or dag_run.conf == SCRUBBED:
        return False
    from sqlalchemy import inspect as sa_inspect
    from sqlalchemy import text

    session = sa_inspect(dag_run).session
    if session is not None and session.bind is not None and session.bind.dialect.name == "sqlite":
        from sqlalchemy import event

        session.execute(text("PRAGMA secure_delete = ON"))
        path = session.bind.url.database
        # The original insert still sits in the write-ahead log: once the scrub is committed, fold the
        # log into the file (secure_delete zeroes the old row there) and truncate it. Best effort: open
        # readers can block it, so whoever ran the DAG (runner.run_dag) and every erasure run repeat it.
        event.listen(session, "after_commit", lambda _s: truncate_sqlite_wal(path), once=True)
    dag_run.conf = dict(SCRUBBED)
    if session is not None:
        session.flush()
    log.info("scrubbed the conf of %s run %s", dag_run.dag_id, dag_run.run_id)
    return True


@hookimpl
def on_dag_run_success(dag_run, msg: str):
    scrub(dag_run)


@hookimpl
def on_dag_run_failed(dag_run, msg: str):
    scrub(dag_run)
