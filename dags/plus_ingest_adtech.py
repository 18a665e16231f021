"""
### plus_ingest_adtech (Airflow DAG)

Plus Adtech exports: campaigns and daily delivery (CSV), and user-level ad interactions (cookie, device ad id, IP, user agent).

For each source, per daily data interval: **ingest** validates the day's landing files against the
privacy policy into the restricted zone (bad rows to quarantine with file, line and reason), then
**stage** applies the declared privacy rules into staging. Re-running an interval replaces it exactly.
Emits one staging Asset per source (extras: counts only).
"""

from plus_analytics.dag_factory import ingest_dag

dag = ingest_dag("adtech", __doc__)
