"""The steps the DAGs run, one module per domain, callable with or without Airflow.

A step resolves its settings (:mod:`plus_analytics.config`), opens the zone files it needs in ONE locked
session (:func:`plus_analytics.storage.locks.zone`: readers and writers alike, so no task ever meets a
DuckDB lock conflict, only a bounded wait), calls the domain functions with a
:class:`~plus_analytics.context.Context` and returns counts, dates and file names for XCom: never an
identifier. A step that has nothing to do returns ``{"skipped": why}``; its task marks itself skipped.

  ingest     backfill_bounds, ingest, stage
  marts      staging_version, fresh, build, gate, publish
  rotation   rekey, restage
  erasure    check_keys, register, resolve, select, remove, restage, confirm_published, rewrite, verify, report
  retention  enforce
  audit      pii_audit

They sit above every domain (they combine zones: an ingest copies evidence into the ledger, an erasure
step reads the restricted zone and writes the ledger), below the orchestration, the CLI and the console,
which call them by name.
"""

from plus_analytics.steps import audit, erasure, ingest, marts, retention, rotation

__all__ = ["audit", "erasure", "ingest", "marts", "retention", "rotation"]
