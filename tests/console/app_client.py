"""Airflow's own API server app (with the plugin's pages mounted) under FastAPI's test client, and a logged-in
user's header."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from plus_analytics.config import Paths
from plus_analytics.embedded import user_passwords

BASE = "http://testserver"


@contextmanager
def api_client(home: Paths):
    """The API server app on the data directory ``home``."""
    from fastapi.testclient import TestClient

    mp = pytest.MonkeyPatch()
    mp.setenv("PLUS_ANALYTICS_HOME", str(home.home))
    from airflow.api_fastapi.app import create_app

    try:
        with TestClient(create_app(), base_url=BASE) as c:
            yield c
    finally:
        mp.undo()


def bearer(client, home: Paths, user: str) -> dict:
    """The Authorization header of ``user`` of the embedded default, logged in through Airflow."""
    r = client.post("/auth/token", json={"username": user, "password": user_passwords(home)[user]})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
