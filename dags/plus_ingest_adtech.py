"""
### plus_ingest_adtech (Airflow DAG)

Plus Adtech exports: campaigns and daily delivery (CSV), and user-level ad interactions (cookie, device ad id, IP, user agent).

For each source, per daily data interval: **ingest** validates the day's landing files against the
privacy policy into the restricted zone (bad rows to quarantine with file, line and reason), then
**stage** applies the declared privacy rules into staging. Re-running an interval replaces it exactly.
Emits one staging Asset per source (extras: counts only).
"""

from airflow.sdk import dag

from plus_analytics.orchestration import house, tasks
from plus_analytics.policy import product_sources


@dag(schedule=house.daily(), doc_md=__doc__, **house.defaults("ingest", "adtech"))
def plus_ingest_adtech():
    for source in product_sources()["adtech"]:
        loaded = tasks.ingest.override(task_id=f"ingest_{source}")(source)
        tasks.stage.override(task_id=f"stage_{source}", outlets=[house.staging_asset(source)])(source, loaded)


dag = plus_ingest_adtech()
