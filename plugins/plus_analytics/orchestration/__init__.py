"""The Airflow side of the library: house defaults, the tasks every DAG wires, and the shared
write-audit-publish task group. DAG files in ``dags/`` import these and show their graph; the work each
task does lives in :mod:`plus_analytics.steps`. Parse-time cheap: no I/O, no connections, no Variables;
the steps (and their heavy imports) load inside the tasks."""
