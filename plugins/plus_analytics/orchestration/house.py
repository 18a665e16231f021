"""House rules every DAG shares: start date, no catchup, one active run, retries, tags, assets."""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable

from plus_analytics.policy import product_sources

START = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_ARGS = {"owner": "data-engineering", "retries": 2, "retry_delay": dt.timedelta(minutes=2)}
PRODUCTS = tuple(product_sources())


def defaults(*tags: str) -> dict:
    """Keyword arguments of ``@dag`` every DAG of the project takes."""
    return {"start_date": START, "catchup": False, "max_active_runs": 1, "default_args": DEFAULT_ARGS,
            "tags": ["plus-analytics", *tags]}


def daily() -> CronDataIntervalTimetable:
    """Daily data intervals [D 00:00, D+1 00:00) UTC; the run for day D starts when it has ended."""
    return CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def staging_asset(source: str) -> Asset:
    return Asset(name=f"plus_stg_{source}", uri=f"x-duckdb://warehouse/staging/stg_{source}")


MARTS_ASSET = Asset(name="plus_marts", uri="x-duckdb://analytics/marts")
ALL_STAGING_ASSETS = [staging_asset(s) for p in PRODUCTS for s in product_sources()[p]]
