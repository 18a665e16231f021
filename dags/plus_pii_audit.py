"""
### plus_pii_audit (Airflow DAG)

Daily audit beyond the gate: scans the published analytics database and what Airflow itself keeps
(task logs; XCom values, DAG-run conf, asset event extras, rendered template fields and audit-log
extras read through Airflow's public REST API, on the `plus_airflow_api` connection: workers have no
metadata-database access) with the gate's PII detectors and a canary against the restricted zone's raw
identifiers. Findings are reported by location only, never with the value; any finding, or any source
it could not read, fails the run.
"""

from airflow.sdk import dag

from plus_analytics.orchestration import house, tasks


@dag(schedule=house.daily(), doc_md=__doc__, **house.defaults("privacy", "audit", "dpo"))
def plus_pii_audit():
    tasks.pii_audit()


dag = plus_pii_audit()
