"""Deletion requests (tombstones): intake, resolution, removal, verification, evidence, certificates.

Each step is a function over connections the caller opened (:mod:`plus_analytics.steps` opens them under
the zone locks); the ``plus_erasure`` DAG runs one task per step, so Airflow's retries and UI show where
a request stands, and a rerun resumes every request at the first step it has not done.
"""
