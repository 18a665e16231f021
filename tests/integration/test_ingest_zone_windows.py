"""Ingest holds the restricted zone's write lock for its writes only: a batch's landing files are read,
validated, its identifiers learned and its rows written as data files while another session holds the
zone (here a reader, which a writer must wait for), and only the writes (the rows' commit, the maps,
quarantine and logs) wait. What lets ingests of different sources, on different
workers, overlap all but their writes (decision 0001)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.storage import locks
from tests.conftest import DAYS, START
from tests.helpers import ctx, opened

pytestmark = pytest.mark.integration
SOURCE = "platform_usage_events"


class _Said(logging.Handler):
    def __init__(self, words: str):
        super().__init__()
        self.words, self.at = words, None

    def emit(self, record):
        if self.words in record.getMessage() and self.at is None:
            self.at = time.monotonic()


def test_a_batch_is_checked_while_another_session_holds_the_zone_and_only_its_writes_wait(tmp_path, landing, key):
    paths = Paths(tmp_path / "home").ensure()
    paths.landing.rmdir()
    paths.landing.symlink_to(landing)
    first = steps.ingest.ingest(SOURCE, START, ctx(paths, key))  # the zone exists, the maps hold the first day's ids
    assert first["rows_loaded"] > 0
    checked = _Said(f"{SOURCE}: ")
    logging.getLogger("plus_analytics.ingest.loader").addHandler(checked)
    logging.getLogger("plus_analytics.ingest.loader").setLevel(logging.INFO)
    holding, released, ahead = threading.Event(), {}, set()
    table = paths.raw_db.parent / "lake" / f"raw_{SOURCE}"

    def reader():
        with locks.hold({paths.raw_db: False}):  # what a staging task or the DPO's console would hold
            holding.set()
            deadline = time.monotonic() + 120
            while checked.at is None and time.monotonic() < deadline:
                time.sleep(0.05)
            while not ahead and time.monotonic() < deadline:  # its rows' files, written with a read lock too
                ahead.update(_on_disk(table) - _live(table))
                time.sleep(0.05)
            time.sleep(1.5)  # the ingest is at its writes now, waiting for this session
            released["at"] = time.monotonic()

    before = locks.tally()["waited_s"]
    t = threading.Thread(target=reader)
    t.start()
    try:
        assert holding.wait(30)
        out = steps.ingest.ingest(SOURCE, START, ctx(paths, key), until=START + dt.timedelta(days=DAYS - 1))
    finally:
        t.join()
        logging.getLogger("plus_analytics.ingest.loader").removeHandler(checked)
    assert checked.at is not None and checked.at < released["at"], "the batch waited for the zone to be checked"
    assert locks.tally()["waited_s"] - before >= 1.0, "the writes did not wait for the reader"
    assert out["rows_read"] == out["rows_loaded"] + out["rows_quarantined"] + out["rows_suppressed"]
    with opened(paths.raw_db, read_only=True) as con:
        logged = con.execute("select count(*), sum(rows_loaded) from raw.ingest_log where source = ?", [SOURCE]).fetchone()
        rows = con.execute(f"select count(*) from lake.raw_{SOURCE}").fetchone()[0]
    assert logged == (DAYS, rows)
    assert ahead and ahead <= _live(table), "the rows' files were written while the zone was held, then committed"


def _on_disk(table) -> set[str]:
    return {str(f.relative_to(table)) for f in table.glob("_dt=*/*.parquet")}


def _live(table) -> set[str]:
    import pyarrow as pa
    from deltalake import DeltaTable

    return set(pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))["path"].to_pylist())

