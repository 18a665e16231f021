"""
### plus_backfill (Airflow DAG)

Manual. Ingests and stages a range of landing days (params `first_day`, `last_day`; empty means the
first or last day that landed) for every source, **one batch per source** instead of one run per day,
then builds, gates and publishes the marts once. Use it for a first load, or to replay a range after a
fix. The restricted zone, quarantine and staging end up exactly as the daily `plus_ingest_*` runs of
those days would leave them (tested); only the per-day statement and lookup costs are paid once.
"""

from plus_analytics.dag_factory import backfill_dag

dag = backfill_dag(__doc__)
