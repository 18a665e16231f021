"""The DPO's console: the "Privacy" page inside the Airflow UI, served by the project's Airflow plugin.

Live status of every deletion request by layer, the evidence chain checked, retention destroyed per table
and day, consent exclusions, downloads (CSV, JSON) and signed certificates; and the intake form, which
normalizes and pseudonymizes the identifier on the server and triggers ``plus_erasure`` with the request
id only, so no identifier ever enters Airflow's records. Every route checks the caller through
Airflow's auth manager; POSTs are protected against cross-site requests.
"""
