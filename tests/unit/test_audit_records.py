"""The audit's reader of Airflow's REST API, against a fake API: an XCom entry deleted between the
listing and the read (its task was retried) is nothing to scan; any other error fails the audit."""

from __future__ import annotations

import httpx
import pytest

from plus_analytics.audit import AuditIncomplete, RestApiRecords

XCOM = {"dag_id": "plus_marts", "run_id": "r1", "task_id": "build", "key": "return_value", "map_index": -1}


def _api(xcom_status: int, other_status: int = 200) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/xcomEntries"):
            return httpx.Response(200, json={"xcom_entries": [XCOM], "total_entries": 1})
        if "/xcomEntries/" in path:
            return httpx.Response(xcom_status, json={"value": "{'rows': 3}"} if xcom_status == 200 else {})
        if path.endswith("/dagRuns"):
            return httpx.Response(other_status, json={"dag_runs": [{"dag_id": "d", "dag_run_id": "r", "conf": {"as_of": "2026-10-04"}}],
                                                      "total_entries": 1})
        key = {"taskInstances": "task_instances", "events": "asset_events", "eventLogs": "event_logs"}[path.rsplit("/", 1)[-1]]
        return httpx.Response(200, json={key: [], "total_entries": 0})

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://airflow")


def test_every_record_is_read():
    texts = dict(RestApiRecords(_api(200)).texts())
    assert texts == {"metadata:dag_run.conf:d/r": '{"as_of": "2026-10-04"}',
                     "metadata:xcom:plus_marts/r1/build/return_value": "{'rows': 3}"}


def test_an_xcom_entry_gone_since_the_listing_is_nothing_to_scan():
    assert list(RestApiRecords(_api(404)).texts()) == [("metadata:dag_run.conf:d/r", '{"as_of": "2026-10-04"}')]


@pytest.mark.parametrize(("xcom", "other"), [(500, 200), (200, 503), (403, 200)])
def test_any_other_error_fails_the_audit(xcom, other):
    with pytest.raises(AuditIncomplete, match="HTTP"):
        list(RestApiRecords(_api(xcom, other)).texts())
