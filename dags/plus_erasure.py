"""
### plus_erasure (Airflow DAG)

Honors deletion requests registered by the DPO (in the **Privacy** page of this UI, or with
`plus-analytics erase`): identifiers are normalized and pseudonymized at intake, and only request ids
ever reach Airflow. Daily, and on demand. Each step is a task that takes every request waiting for it,
so a failed or killed run is resumed by the next one where each request stands:

**resolve** (every linked identifier of the subject) → **select** (what to remove, recorded first) →
**remove** (landing files, restricted zone, quarantine) → **restage** (staging) → **write_audit_publish**
(marts rebuilt, gated, published) → **confirm_published** → **rewrite** (database files rewritten so no
deleted value survives in free blocks) → **verify** (rows, staging, marts and every byte under the data
directory: verified, no data found, or failed and carried out again from resolve by the next run) → **dpo_report** (report and signed
certificates; an overdue or failed request fails the run loudly).
"""

from airflow.sdk import Param, chain, dag

from plus_analytics.orchestration import house, tasks
from plus_analytics.orchestration.groups import write_audit_publish

NOTE = Param("", type="string", maxLength=200, title="Note for the run log (no identifiers)",
             description="Requests are registered in the Privacy page or with `plus-analytics erase`; this run "
                         "moves every waiting request on. Never type an identifier here.")

#: Set by the Privacy page when it triggers a run for the request it just registered (shown in the run's
#: conf): a request id, never an identifier; the run moves every waiting request on, that one included.
REQUEST_ID = Param(None, type=["null", "string"], pattern=r"^DSR-[0-9]{8}-[a-p]{10}$", title="Request id (optional)",
                   description="The DSR-... id the run was triggered for; leave empty for a routine run.")


@dag(schedule="@daily", doc_md=__doc__, params={"note": NOTE, "request_id": REQUEST_ID}, **house.defaults("privacy", "erasure", "dpo"))
def plus_erasure():
    steps = [tasks.erasure_step(name)() for name in ("resolve", "select", "remove", "restage")]
    after = [tasks.erasure_step(name)() for name in ("confirm_published", "rewrite", "verify")]
    chain(*steps, write_audit_publish(), *after, tasks.dpo_report())


dag = plus_erasure()
