"""What every step works with: the data directory's zones, the keys, and the Airflow run it belongs to.

One object, passed to the steps (:mod:`plus_analytics.steps`) and on to the domain functions, in place of
long lists of paths, keys and run ids. The keys come from Airflow connections on first use (any secrets
backend), unless given (tests, benchmarks).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from plus_analytics.config import TOMBSTONE_CONN_ID, Paths
from plus_analytics.privacy.keys import MasterKey, load_master_key


@dataclass
class Context:
    """Where a step works and with which keys (loaded from Airflow connections on first use)."""

    paths: Paths = field(default_factory=lambda: Paths.from_env().ensure())
    _key: MasterKey | None = None
    _tomb: MasterKey | None = None
    run_id: str | None = None

    @property
    def key(self) -> MasterKey:
        """The pseudonymization key (connection ``plus_pseudonym_key``)."""
        if self._key is None:
            self._key = load_master_key()
        return self._key

    @property
    def tomb(self) -> MasterKey:
        """The tombstones' blind-index key (connection ``plus_tombstone_key``)."""
        if self._tomb is None:
            self._tomb = load_master_key(TOMBSTONE_CONN_ID)
        return self._tomb


def context(paths: Paths | None = None, key: MasterKey | None = None, tomb: MasterKey | None = None,
            run_id: str | None = None) -> Context:
    return Context(paths.ensure() if paths else Paths.from_env().ensure(), key, tomb, run_id)


def as_day(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def day_range(first, last) -> list[dt.date]:
    first, last = as_day(first), as_day(last)
    if last < first:
        raise ValueError(f"the last day {last} is before the first day {first}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
