"""The tasks the DAGs wire, called as Airflow calls them (the decorated function with the context values
it asks for), with the steps faked: what each passes to its step, what it returns to XCom, what it puts
in asset extras, and when it marks itself skipped. No Airflow metadata DB, no DuckDB."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from plus_analytics import steps
from plus_analytics.orchestration import tasks
from plus_analytics.orchestration.house import MARTS_ASSET, staging_asset

DAY = pendulum.datetime(2026, 9, 3, tz="UTC")


class OutletEvents(defaultdict):
    """What Airflow hands a task as ``outlet_events``: an accessor per asset whose ``extra`` it sets."""

    def __init__(self):
        super().__init__(lambda: SimpleNamespace(extra={}))


@pytest.fixture
def calls(monkeypatch):
    """Every step a task calls, by name, with its arguments; steps return what the test sets."""
    import plus_analytics.context

    made, results = [], {}

    def fake(name):
        def step(*args, **kwargs):
            made.append((name, args, kwargs))
            return results.get(name, {"ok": True})
        return step

    for name in ("ingest.ingest", "ingest.stage", "ingest.backfill_bounds", "marts.build", "marts.gate", "marts.publish",
                 "audit.pii_audit", "retention.enforce", "erasure.report"):
        module, attr = name.split(".")
        monkeypatch.setattr(getattr(steps, module), attr, fake(name))
    monkeypatch.setitem(steps.erasure.STEPS, "resolve", fake("erasure.resolve"))
    monkeypatch.setattr(plus_analytics.context, "context", lambda run_id=None, **_: SimpleNamespace(run_id=run_id))
    return SimpleNamespace(made=made, results=results)


def test_ingest_passes_the_data_interval_start(calls):
    calls.results["ingest.ingest"] = {"rows_read": 3, "rows_loaded": 2, "rows_quarantined": 1}
    assert tasks.ingest.function("crm_deals", data_interval_start=DAY) == calls.results["ingest.ingest"]
    assert calls.made == [("ingest.ingest", ("crm_deals", DAY), {})]


def test_stage_sets_an_asset_extra_of_counts_only(calls):
    calls.results["ingest.stage"] = {"source": "crm_deals", "day": "2026-09-03T00:00:00+00:00", "rows_staged": 7,
                                     "staging_version": 12}
    events = OutletEvents()
    out = tasks.stage.function("crm_deals", {"rows_quarantined": 2, "rows_loaded": 7}, data_interval_start=DAY,
                               outlet_events=events)
    assert out["rows_staged"] == 7
    assert events[staging_asset("crm_deals")].extra == {"day": "2026-09-03", "rows_staged": 7, "rows_quarantined": 2}


@pytest.mark.parametrize("job, task_fn, args", [
    ("marts.build", tasks.build, ()),
    ("marts.gate", tasks.gate, ({"build_id": "b"},)),
])
def test_a_job_with_nothing_to_do_marks_its_task_skipped(calls, job, task_fn, args):
    calls.results[job] = {"skipped": "the published marts are up to date"}
    with pytest.raises(AirflowSkipException, match="up to date"):
        task_fn.function(*args)


def test_publish_sets_the_marts_asset_extra(calls):
    calls.results["marts.publish"] = {"published": "x", "build_id": "20260903-abc", "tables": {"mart_a": 3},
                                      "staging_version": 4}
    events = OutletEvents()
    out = tasks.publish.function({"build_id": "20260903-abc"}, {"passed": True}, outlet_events=events)
    assert out["build_id"] == "20260903-abc"
    assert events[MARTS_ASSET].extra == {"build_id": "20260903-abc", "tables": {"mart_a": 3}}


def test_backfill_range_comes_from_params_and_skips_when_nothing_landed(calls):
    calls.results["ingest.backfill_bounds"] = (dt.date(2026, 9, 1), dt.date(2026, 9, 30))
    tasks.ingest_range.function("crm_deals", params={"first_day": "2026-09-01", "last_day": None})
    assert calls.made[0] == ("ingest.backfill_bounds", ("crm_deals", "2026-09-01", None), {})
    assert calls.made[1] == ("ingest.ingest", ("crm_deals", dt.date(2026, 9, 1)), {"until": dt.date(2026, 9, 30)})
    calls.results["ingest.backfill_bounds"] = None
    with pytest.raises(AirflowSkipException, match="nothing has landed"):
        tasks.ingest_range.function("crm_deals", params={})


def test_retention_runs_as_of_the_param_else_the_interval_end(calls):
    tasks.enforce_retention.function(params={"as_of": "2026-10-01"}, data_interval_end=DAY)
    tasks.enforce_retention.function(params={"as_of": None}, data_interval_end=DAY)
    assert [c[1] for c in calls.made] == [("2026-10-01",), (DAY,)]


def test_audit_covers_the_interval_and_the_day_before(calls):
    tasks.pii_audit.function(data_interval_start=DAY)
    assert calls.made == [("audit.pii_audit", ("api",), {"since": DAY - dt.timedelta(days=1)})]


def test_an_erasure_step_records_its_run_id(calls):
    step = tasks.erasure_step("resolve")
    calls.results["erasure.resolve"] = {"requests": 2}
    assert step.function(run_id="scheduled__2026-09-03") == {"requests": 2}
    ((name, (ctx,), _),) = calls.made
    assert name == "erasure.resolve" and ctx.run_id == "scheduled__2026-09-03"
    calls.results["erasure.resolve"] = {"skipped": "no request waiting for resolve"}
    with pytest.raises(AirflowSkipException):
        step.function(run_id="r")
