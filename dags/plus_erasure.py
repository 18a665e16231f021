"""
### plus_erasure (Airflow DAG)

Honors deletion requests (tombstones) registered by the DPO with `plus-analytics erase --email ...`
(identifiers are normalized and pseudonymized at intake; no raw identifier ever reaches Airflow).
Daily, and on demand: resolves every pending request to all of the subject's linked identifiers,
removes their rows from landing files, the restricted zone, quarantine, staging and the marts
(rebuilt, gated, published), rewrites the DuckDB files so no deleted value survives in free blocks,
verifies by SQL and by scanning every byte under the data directory, and appends hash-chained evidence.
Then writes the DPO report; an overdue request fails the run loudly.
"""

from plus_analytics.dag_factory import erasure_dag

dag = erasure_dag(__doc__)
