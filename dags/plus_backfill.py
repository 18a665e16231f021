"""
### plus_backfill (Airflow DAG)

Manual. Ingests and stages a range of landing days (params `first_day`, `last_day`; empty means the
first or last day that landed) for every source, **one batch per source** instead of one run per day,
then builds, gates and publishes the marts once. Use it for a first load, or to replay a range after a
fix. The restricted zone, quarantine and staging end up exactly as the daily `plus_ingest_*` runs of
those days would leave them (tested); only the per-day statement and lookup costs are paid once.
"""

from airflow.sdk import Param, dag

from plus_analytics.orchestration import house, tasks
from plus_analytics.orchestration.groups import write_audit_publish
from plus_analytics.policy import product_sources

DAY = {"type": ["null", "string"], "format": "date"}


@dag(schedule=None, doc_md=__doc__, **house.defaults("ingest", "backfill"),
     params={"first_day": Param(None, **DAY, title="First landing day (empty: the first day that landed)"),
             "last_day": Param(None, **DAY, title="Last landing day (empty: the last day that landed)")})
def plus_backfill():
    staged = []
    for product in house.PRODUCTS:
        for source in product_sources()[product]:
            loaded = tasks.ingest_range.override(task_id=f"ingest_{source}")(source)
            staged.append(tasks.stage_range.override(task_id=f"stage_{source}")(source, loaded))
    staged >> write_audit_publish()


dag = plus_backfill()
