"""Where things live and the few settings the pipeline has.

Every path hangs off one data directory (``PLUS_ANALYTICS_HOME``, default ``./data``) so a run touches
nothing outside it, and erasure can prove a negative over exactly that tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = REPO_ROOT / "sql"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
POLICY_DIR = Path(__file__).resolve().parent / "policy"

#: Airflow connection ids. The DuckDB ones carry the database path in ``host`` and resource limits in
#: ``extra``; the key connection carries the pseudonymization master secret in ``password``.
RAW_CONN_ID = "plus_duckdb_raw"
STAGING_CONN_ID = "plus_duckdb_staging"
BUILD_CONN_ID = "plus_duckdb_build"
KEY_CONN_ID = "plus_pseudonym_key"
#: Key of the tombstones' blind index: separate from the pseudonym key and not rotated with it, so erased
#: subjects' late arrivals are still recognised after a pseudonym-key rotation.
TOMBSTONE_CONN_ID = "plus_tombstone_key"
#: One-slot pool: DuckDB lets a single process hold a file read-write, so every task that writes one
#: of our files queues here instead of failing on the lock.
DUCKDB_POOL = "plus_duckdb"


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def from_env(cls) -> "Paths":
        return cls(Path(os.environ.get("PLUS_ANALYTICS_HOME", "data")).resolve())

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def restricted(self) -> Path:
        return self.home / "restricted"

    @property
    def raw_db(self) -> Path:
        return self.restricted / "raw.duckdb"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def staging_db(self) -> Path:
        return self.warehouse / "staging.duckdb"

    @property
    def analytics(self) -> Path:
        return self.home / "analytics"

    @property
    def analytics_db(self) -> Path:
        return self.analytics / "analytics.duckdb"

    @property
    def builds(self) -> Path:
        return self.analytics / "builds"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    def ensure(self) -> "Paths":
        for p in (self.landing, self.restricted, self.warehouse, self.analytics, self.builds, self.reports):
            p.mkdir(parents=True, exist_ok=True)
        return self


def k_anonymity() -> int:
    """Smallest number of distinct people a published mart row may describe (default 5)."""
    k = int(os.environ.get("PLUS_ANALYTICS_K", "5"))
    if k < 2:
        raise ValueError("PLUS_ANALYTICS_K must be at least 2")
    return k
