"""
### plus_rotate_keys (Airflow DAG)

Re-keys every pseudonym to the active key version of the `plus_pseudonym_key` connection: the restricted
identifier dictionary (one transaction; deletion requests in progress follow), then all of staging (one
transaction), then the marts (built, gated and published atomically). Trigger it manually after putting
the new secret, with key_version N+1, into the connection; the old secret can be destroyed afterwards.
Ingest refuses to run while the restricted zone holds another version, so versions never mix.
"""

from airflow.sdk import dag

from plus_analytics.orchestration import house, tasks
from plus_analytics.orchestration.groups import write_audit_publish


@dag(schedule=None, doc_md=__doc__, **house.defaults("privacy", "keys"))
def plus_rotate_keys():
    tasks.restage_all(tasks.rekey_restricted()) >> write_audit_publish()


dag = plus_rotate_keys()
