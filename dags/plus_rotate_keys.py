"""
### plus_rotate_keys (Airflow DAG)

Re-keys every pseudonym to the active key version of the `plus_pseudonym_key` connection: the restricted
identifier dictionary (one transaction), then all of staging (one transaction), then the marts (built,
gated and published atomically). Trigger it manually after putting the new secret, with key_version
N+1, into the connection; the old secret can be destroyed afterwards. Ingest refuses to run while the
restricted zone holds another version, so versions never mix.
"""

from plus_analytics.dag_factory import rotate_keys_dag

dag = rotate_keys_dag(__doc__)
