"""The tasks the DAGs wire: each a thin ``@task`` around one step of :mod:`plus_analytics.steps`, which is
imported inside the task (no heavy import at parse time). A step that has nothing to do marks its task
skipped; return values (counts, dates, file names) go to XCom, never an identifier."""

from __future__ import annotations

from functools import partial

from airflow.sdk import task as _task
from airflow.sdk.exceptions import AirflowSkipException

from plus_analytics.orchestration.house import MARTS_ASSET, staging_asset

#: Every task returns one dict of counts: one XCom, not one per key (Airflow would split a ``-> dict``).
task = partial(_task, multiple_outputs=False)


def _done(out: dict) -> dict:
    if "skipped" in out:
        raise AirflowSkipException(out["skipped"])
    return out


def _ctx(run_id: str | None = None):
    from plus_analytics import context

    return context.context(run_id=run_id)


@task()
def ingest(source: str, data_interval_start=None) -> dict:
    """One landing day of ``source`` into the restricted zone (bad rows to quarantine, with reasons)."""
    from plus_analytics import steps

    return steps.ingest.ingest(source, data_interval_start)


@task()
def stage(source: str, loaded: dict, data_interval_start=None, outlet_events=None) -> dict:
    """The day's rows of ``source`` through the privacy rules into staging; its Asset carries counts only."""
    from plus_analytics import steps

    out = steps.ingest.stage(source, data_interval_start)
    outlet_events[staging_asset(source)].extra = {"day": out["day"][:10], "rows_staged": out["rows_staged"],
                                                  "rows_quarantined": loaded["rows_quarantined"]}
    return out


@task()
def ingest_range(source: str, params=None) -> dict:
    """Every landed day of ``source`` in the backfill's range, in batches of whole days that fit memory."""
    from plus_analytics import steps

    bounds = steps.ingest.backfill_bounds(source, params.get("first_day"), params.get("last_day"))
    if bounds is None:
        raise AirflowSkipException(f"nothing has landed for {source}")
    return steps.ingest.ingest(source, bounds[0], until=bounds[1])


@task()
def stage_range(source: str, loaded: dict) -> dict:
    from plus_analytics import steps

    return steps.ingest.stage(source, loaded["day"], until=loaded["until"])


@task()
def build() -> dict:
    """The marts into a fresh build file (skipped when the published marts are up to date)."""
    from plus_analytics import steps

    return _done(steps.marts.build())


@task(retries=0)
def gate(build: dict) -> dict:
    """GX suites, PII detectors and the canary; a failure keeps the build unpublished and names the report."""
    from plus_analytics import steps

    return _done(steps.marts.gate(build))


@task(outlets=[MARTS_ASSET])
def publish(build: dict, gate: dict, outlet_events=None) -> dict:
    """Atomic swap onto analytics.duckdb, never backwards (a build from older staging is superseded)."""
    from plus_analytics import steps

    out = _done(steps.marts.publish(build, gate))
    outlet_events[MARTS_ASSET].extra = {"build_id": out["build_id"], "tables": out["tables"]}
    return out


@task()
def rekey_restricted() -> dict:
    from plus_analytics import steps

    return steps.rotation.rekey()


@task()
def restage_all(rekeyed: dict) -> dict:
    from plus_analytics import steps

    return steps.rotation.restage()


@task()
def enforce_retention(params=None, data_interval_end=None) -> dict:
    from plus_analytics import steps

    return steps.retention.enforce((params or {}).get("as_of") or data_interval_end)


@task(retries=1)
def pii_audit(data_interval_start=None) -> dict:
    """PII audit of the analytics zone, task logs and Airflow's records (through the REST API)."""
    import datetime as dt

    from plus_analytics import steps

    since = data_interval_start - dt.timedelta(days=1) if data_interval_start else None
    return steps.audit.pii_audit("api", since=since)


def erasure_step(name: str):
    """The task of erasure step ``name`` (resolve, select, remove, restage, confirm_published, rewrite,
    verify): it runs whenever no upstream step failed, so every request waiting for it moves on even
    when the steps before had nothing to do."""

    @task(task_id=name, trigger_rule="none_failed")
    def step(run_id=None) -> dict:
        from plus_analytics import steps

        return _done(steps.erasure.STEPS[name](_ctx(run_id)))

    step.__doc__ = f"Erasure step {name}: every request waiting for it."
    return step


@task(trigger_rule="none_failed")
def dpo_report() -> dict:
    """The DPO report and certificates; overdue or failed requests fail the run loudly."""
    from plus_analytics import steps

    return steps.erasure.report()
