"""
### plus_pii_audit (Airflow DAG)

Daily audit beyond the gate: scans the published analytics database and what Airflow itself keeps
(task logs, XCom values, DAG-run conf, asset event extras, rendered template fields, audit-log extras)
with the gate's PII detectors and a canary against the restricted zone's raw identifiers. Findings are
reported by location only, never with the value; any finding fails the run.
"""

from plus_analytics.dag_factory import audit_dag

dag = audit_dag(__doc__)
