"""
### plus_erasure_intake (Airflow DAG)

The DPO's form for a deletion request: choose how the person is identified (email, phone, account,
CRM customer, LINE id, cookie or device ad id), enter the identifier, the requester and the deadline, and
trigger. The first task normalizes and pseudonymizes the identifier and registers the tombstone; when
the run ends, the plugin's listener replaces this run's conf, so the identifier does not stay in
Airflow's metadata DB. `plus_erasure` then propagates the request. (`plus-analytics erase` does the same
from the command line without the identifier ever reaching Airflow.)
"""

from plus_analytics.dag_factory import erasure_intake_dag

dag = erasure_intake_dag(__doc__)
