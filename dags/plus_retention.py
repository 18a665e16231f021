"""
### plus_retention (Airflow DAG)

Daily: destroys every kind of data that has outlived its retention period (policy/retention.yaml):
landing partitions, restricted rows and single columns (message text, notes, device data), quarantine,
visitor salts, staging rows; rewrites the DuckDB files so nothing survives in freed blocks; removes old
gate reports and task logs; records per table and day how many rows were destroyed and when (in the
same transaction as the destruction, so a run killed at any point is finished by the next). Then
rebuilds, gates and publishes the marts (which also keep only their own period).
"""

from airflow.sdk import Param, dag

from plus_analytics.orchestration import house, tasks
from plus_analytics.orchestration.groups import write_audit_publish

AS_OF = Param("", type="string", title="Enforce as of (YYYY-MM-DD; empty: end of the data interval)")


@dag(schedule=house.daily(), doc_md=__doc__, params={"as_of": AS_OF}, **house.defaults("privacy", "retention", "dpo"))
def plus_retention():
    tasks.enforce_retention() >> write_audit_publish()


dag = plus_retention()
