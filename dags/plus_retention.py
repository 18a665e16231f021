"""
### plus_retention (Airflow DAG)

Daily: destroys every kind of data that has outlived its retention period (policy/retention.yaml):
landing partitions, restricted rows and single columns (message text, notes, device data), quarantine,
visitor salts, staging rows; rewrites the DuckDB files so nothing survives in freed blocks; removes old
gate reports and task logs; records per table and day how many rows were destroyed and when. Then
rebuilds, gates and publishes the marts (which also keep only their own period).
"""

from plus_analytics.dag_factory import retention_dag

dag = retention_dag(__doc__)
