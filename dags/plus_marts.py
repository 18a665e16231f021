"""
### plus_marts (Airflow DAG)

Builds the dashboard marts from staging into a fresh build file, audits it with the PII gate (GX suites,
PII detectors on every text column, canary join against the restricted identifier dictionary) and, only
if it passes, publishes it atomically as `analytics/analytics.duckdb`. A failing build is kept in
`analytics/builds/` and the task log links the gate report. Runs when every source's staging Asset has
been updated.
"""

from plus_analytics.dag_factory import marts_dag

dag = marts_dag(__doc__)
