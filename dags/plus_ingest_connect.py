"""
### plus_ingest_connect (Airflow DAG)

Plus Connect exports: conversations and messages across LINE, Facebook, Instagram and web chat. Message text never leaves the restricted zone; only length bucket and language do.

For each source, per daily data interval: **ingest** validates the day's landing files against the
privacy policy into the restricted zone (bad rows to quarantine with file, line and reason), then
**stage** applies the declared privacy rules into staging. Re-running an interval replaces it exactly.
Emits one staging Asset per source (extras: counts only).
"""

from plus_analytics.dag_factory import ingest_dag

dag = ingest_dag("connect", __doc__)
