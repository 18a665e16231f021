"""Test setup. Airflow reads its configuration when first imported, so the environment (a temporary
data directory holding the Airflow home, SQLite metadata DB and DuckDB files, and a fixed test key) is
applied here, before any test module imports Airflow."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="plus-analytics-test-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)  # the run's Airflow home and test keys go with it
os.environ["PLUS_ANALYTICS_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
os.environ["PLUS_ANALYTICS_K"] = "5"

from plus_analytics.config import Paths  # noqa: E402
from plus_analytics.embedded import environment  # noqa: E402
from plus_analytics.privacy.keys import MasterKey, connection_uri_json  # noqa: E402

TEST_SECRET_B64 = "cGx1cy1hbmFseXRpY3MtdGVzdC1zZWNyZXQtMzItYnl0ZXMhIQ"  # 35 bytes, tests only
os.environ["AIRFLOW_CONN_PLUS_PSEUDONYM_KEY"] = connection_uri_json(TEST_SECRET_B64, 1)
# b"tombstone-key-for-tests-only-32bytes!" (tests/integration/test_erasure.py uses the same key)
os.environ["AIRFLOW_CONN_PLUS_TOMBSTONE_KEY"] = connection_uri_json("dG9tYnN0b25lLWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzIQ", 1)
os.environ.update(environment(Paths(_HOME)))

START = dt.date(2026, 10, 1)
DAYS = 3
SCALE = 0.3


TOMB = MasterKey(version=1, secret=b"tombstone-key-for-tests-only-32bytes!")


@pytest.fixture(scope="session")
def key() -> MasterKey:
    from plus_analytics.privacy.keys import decode_secret

    return MasterKey(version=1, secret=decode_secret(TEST_SECRET_B64))


@pytest.fixture(scope="session")
def tomb() -> MasterKey:
    return TOMB


@pytest.fixture(scope="session")
def landing(tmp_path_factory) -> Path:
    """A small generated dataset, independent of the pipeline home (read-only for tests)."""
    from plus_analytics.generate import generate

    root = tmp_path_factory.mktemp("landing")
    generate(root, days=DAYS, scale=SCALE, seed=11, start=START)
    return root


@pytest.fixture(scope="session")
def pipeline() -> Paths:
    """The whole pipeline run through real Airflow (dag.test) on generated data, once per session."""
    from plus_analytics.generate import generate
    from plus_analytics.runner import run_pipeline

    paths = Paths(_HOME).ensure()
    generate(paths.landing, days=DAYS, scale=SCALE, seed=11, start=START)
    run_pipeline(paths, [START + dt.timedelta(days=i) for i in range(DAYS)])
    return paths


#: Folders whose tests run the pipeline, Airflow, a browser or a build, and the markers that say so: every
#: test there carries one, so ``make test-fast`` (which deselects them) stays the quick edit-test loop.
SLOW_FOLDERS = {"integration": "integration", "console": "integration", "scheduler": "scheduler", "commands": "commands"}


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items
                if (folder := Path(item.fspath).parent.name) in SLOW_FOLDERS
                and SLOW_FOLDERS[folder] not in {m.name for m in item.iter_markers()}]
    unmarked += [item.nodeid for item in items if "pipeline" in getattr(item, "fixturenames", ())
                 and "integration" not in {m.name for m in item.iter_markers()}]
    if unmarked:
        raise pytest.UsageError(f"tests that run the pipeline, Airflow or a browser must be marked: {unmarked[:5]}")
