"""The write-audit-publish task group every DAG that changes the marts ends with."""

from __future__ import annotations

from airflow.sdk import task_group

from plus_analytics.orchestration import tasks


@task_group(group_id="write_audit_publish")
def write_audit_publish():
    """build -> gate -> publish: the marts are written into a fresh file, audited by the PII gate, and
    only then swapped in for analysts. Build is skipped when the published marts are already up to date."""
    b = tasks.build()
    tasks.publish(b, tasks.gate(b))  # returns nothing: calling the group gives the group, so >> and chain link all of it
