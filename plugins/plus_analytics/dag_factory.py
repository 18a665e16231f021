"""DAG wiring shared by the thin files in ``dags/``. Parse-time cheap: no I/O, no connections, no
Variables; heavy imports happen inside the tasks."""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from plus_analytics.config import DUCKDB_POOL
from plus_analytics.policy import PRODUCT_SOURCES

START = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_ARGS = {"owner": "data-engineering", "retries": 2, "retry_delay": dt.timedelta(minutes=2)}
PRODUCTS = tuple(PRODUCT_SOURCES)


def daily() -> CronDataIntervalTimetable:
    """Daily data intervals [D 00:00, D+1 00:00) UTC; the run for day D starts when it has ended."""
    return CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def house_dag(dag_id: str, schedule, tags: list[str], doc_md: str, **kwargs):
    """The @dag decorator with the house rules every DAG shares: start date, no catchup, one active run,
    retries by default, the plus-analytics tag."""
    return dag(dag_id=dag_id, schedule=schedule, start_date=START, catchup=False, max_active_runs=1,
               default_args=DEFAULT_ARGS, tags=["plus-analytics", *tags], doc_md=doc_md, **kwargs)


def staging_asset(source: str) -> Asset:
    return Asset(name=f"plus_stg_{source}", uri=f"x-duckdb://warehouse/staging/stg_{source}")


MARTS_ASSET = Asset(name="plus_marts", uri="x-duckdb://analytics/marts")
ALL_STAGING_ASSETS = [staging_asset(s) for p in PRODUCTS for s in PRODUCT_SOURCES[p]]


def ingest_dag(product: str, doc_md: str):
    """One DAG per product: for each of its sources, ingest the day into the restricted zone, then stage it."""

    @house_dag(f"plus_ingest_{product}", daily(), ["ingest", product], doc_md)
    def _ingest():
        for source in PRODUCT_SOURCES[product]:
            asset = staging_asset(source)

            @task(task_id=f"ingest_{source}", pool=DUCKDB_POOL)
            def ingest(source: str = source, data_interval_start=None) -> dict:
                from plus_analytics import tasks

                return tasks.ingest_source(source, data_interval_start)

            @task(task_id=f"stage_{source}", pool=DUCKDB_POOL, outlets=[asset])
            def stage(loaded: dict, source: str = source, asset: Asset = asset, data_interval_start=None, outlet_events=None) -> dict:
                from plus_analytics import tasks

                out = tasks.stage_source(source, data_interval_start)
                outlet_events[asset].extra = {"day": out["day"][:10], "rows_staged": out["rows_staged"],
                                              "rows_quarantined": loaded["rows_quarantined"]}
                return out

            stage(ingest())

    return _ingest()


def backfill_dag(doc_md: str):
    """Manual: ingest and stage a range of landing days per source in batches of whole days that fit
    memory, then build, gate and publish once. For a first load or a replay; the result equals the daily
    runs of those days."""
    from airflow.sdk import Param

    day = {"type": ["null", "string"], "format": "date"}
    params = {
        "first_day": Param(None, **day, title="First landing day (empty: the first day that landed)"),
        "last_day": Param(None, **day, title="Last landing day (empty: the last day that landed)"),
    }

    @house_dag("plus_backfill", None, ["ingest", "backfill"], doc_md, params=params)
    def _backfill():
        staged = []
        for product in PRODUCTS:
            for source in PRODUCT_SOURCES[product]:
                @task(task_id=f"ingest_{source}", pool=DUCKDB_POOL)
                def ingest(source: str = source, params=None) -> dict:
                    from plus_analytics import tasks

                    bounds = tasks.backfill_bounds(source, params.get("first_day"), params.get("last_day"))
                    if bounds is None:
                        return {"source": source, "days": 0}
                    return tasks.ingest_source(source, bounds[0], until=bounds[1])

                @task(task_id=f"stage_{source}", pool=DUCKDB_POOL)
                def stage(loaded: dict, source: str = source) -> dict:
                    from plus_analytics import tasks

                    if not loaded.get("days"):
                        return {"source": source, "rows_staged": 0}
                    return tasks.stage_source(source, loaded["day"], until=loaded["until"])

                staged.append(stage(ingest()))
        staged >> build_gate_publish()

    return _backfill()


def build_gate_publish():
    """build -> gate -> publish (write-audit-publish); used by every DAG that changes the marts."""

    @task(pool=DUCKDB_POOL)
    def build() -> dict:
        from plus_analytics import tasks

        return tasks.build_marts()

    @task(retries=0)
    def gate(build: dict) -> dict:
        from plus_analytics import tasks

        return tasks.gate_build(build)

    @task(pool=DUCKDB_POOL, outlets=[MARTS_ASSET])
    def publish(build: dict, gate: dict, outlet_events=None) -> dict:
        from plus_analytics import tasks

        out = tasks.publish_build(build, gate)
        outlet_events[MARTS_ASSET].extra = {"build_id": out["build_id"], "tables": out["tables"]}
        return out

    b = build()
    g = gate(b)
    publish(b, g)
    return b


def marts_dag(doc_md: str):
    @house_dag("plus_marts", ALL_STAGING_ASSETS, ["marts", "gate"], doc_md)
    def _marts():
        build_gate_publish()

    return _marts()


def rotate_keys_dag(doc_md: str):
    @house_dag("plus_rotate_keys", None, ["privacy", "keys"], doc_md)
    def _rotate():
        @task(pool=DUCKDB_POOL, retries=0)
        def rekey_restricted() -> dict:
            from plus_analytics import tasks

            return tasks.rekey_restricted()

        @task(pool=DUCKDB_POOL, retries=0)
        def restage_all(rekeyed: dict) -> dict:
            from plus_analytics import tasks

            return tasks.restage_all()

        restage_all(rekey_restricted()) >> build_gate_publish()

    return _rotate()


def erasure_dag(doc_md: str):
    from airflow.sdk import Param

    note = Param("", type="string", title="Note for the run log (no identifiers)",
                 description="Requests are registered pseudonymized with `plus-analytics erase`; this run propagates "
                             "every pending one. Never type an identifier here.")

    @house_dag("plus_erasure", "@daily", ["privacy", "erasure", "dpo"], doc_md, params={"note": note})
    def _erasure():
        @task(pool=DUCKDB_POOL, retries=0)
        def propagate_and_verify() -> dict:
            from plus_analytics import tasks

            return tasks.erase_pending()

        @task(retries=0)
        def dpo_report(result: dict) -> dict:
            from plus_analytics import tasks

            return tasks.tombstone_report()

        dpo_report(propagate_and_verify())

    return _erasure()


def retention_dag(doc_md: str):
    from airflow.sdk import Param

    as_of = Param("", type="string", title="Enforce as of (YYYY-MM-DD; empty: end of the data interval)")

    @house_dag("plus_retention", daily(), ["privacy", "retention", "dpo"], doc_md, params={"as_of": as_of})
    def _retention():
        @task(pool=DUCKDB_POOL)
        def retention_enforce(params=None, data_interval_end=None) -> dict:
            from plus_analytics import tasks

            return tasks.enforce_retention((params or {}).get("as_of") or data_interval_end)

        retention_enforce() >> build_gate_publish()

    return _retention()


def audit_dag(doc_md: str):
    @house_dag("plus_pii_audit", daily(), ["privacy", "audit", "dpo"], doc_md)
    def _audit():
        @task(pool=DUCKDB_POOL, retries=1)
        def audit() -> dict:
            from plus_analytics import tasks

            return tasks.pii_audit()

        audit()

    return _audit()


def erasure_intake_dag(doc_md: str):
    from airflow.sdk import Param

    from plus_analytics.erasure.intake import DEFAULT_DEADLINE_DAYS, ID_KINDS

    form = {
        "id_kind": Param("email", type="string", enum=sorted(ID_KINDS), title="Identified by"),
        "identifier": Param("", type="string", minLength=1, title="Identifier",
                            description="Pseudonymized by the first task; removed from this run's record when it ends."),
        "requester": Param("DPO", type="string", title="Requester (DPO name or ticket)"),
        "deadline_days": Param(DEFAULT_DEADLINE_DAYS, type="integer", minimum=1, maximum=90, title="Deadline (days)"),
    }

    @house_dag("plus_erasure_intake", None, ["privacy", "erasure", "dpo"], doc_md, params=form)
    def _intake():
        @task(pool=DUCKDB_POOL, retries=0)
        def register_request(params=None) -> dict:
            from plus_analytics import tasks

            return tasks.register_request(params or {})

        register_request()

    return _intake()
