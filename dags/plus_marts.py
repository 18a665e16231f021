"""
### plus_marts (Airflow DAG)

Builds the dashboard marts from staging into a fresh build file, audits it with the PII gate (GX suites
with every text column's closed domain, PII detectors on every text value, canary join against the
restricted identifier dictionary) and, only if it passes, publishes it atomically as
`analytics/analytics.duckdb`. Runs when every source's staging Asset has been updated, and every hour
as a freshness check: whenever staging is newer than the published build (an interrupted run, an
erasure or retention run that could not publish) it rebuilds; otherwise the build is skipped.
"""

from airflow.sdk import AssetAll, AssetOrTimeSchedule, CronTriggerTimetable, dag

from plus_analytics.orchestration import house
from plus_analytics.orchestration.groups import write_audit_publish

SCHEDULE = AssetOrTimeSchedule(timetable=CronTriggerTimetable("30 * * * *", timezone="UTC"),
                               assets=AssetAll(*house.ALL_STAGING_ASSETS))


@dag(schedule=SCHEDULE, doc_md=__doc__, **house.defaults("marts", "gate"))
def plus_marts():
    write_audit_publish()


dag = plus_marts()
