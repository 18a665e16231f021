"""The embedded deployment's API token secret: long enough for the HS512 tokens Airflow signs with it."""

from __future__ import annotations

import json
import stat
import warnings

import jwt
import pytest

from plus_analytics.config import Paths
from plus_analytics.embedded import JWT_SECRET_BYTES, jwt_secret


@pytest.fixture
def paths(tmp_path):
    return Paths(tmp_path).ensure()


def test_a_new_secret_is_long_enough_for_hs512_and_kept(paths):
    value = jwt_secret(paths)
    assert len(value.encode()) >= JWT_SECRET_BYTES
    assert jwt_secret(paths) == value  # generated once
    f = paths.secrets / "airflow_jwt_secret.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyJWT's InsecureKeyLengthWarning would fail here
        token = jwt.encode({"sub": "admin"}, value, algorithm="HS512")
        assert jwt.decode(token, value, algorithms=["HS512"])["sub"] == "admin"


def test_a_short_secret_from_an_earlier_version_is_replaced(paths):
    f = paths.secrets / "airflow_jwt_secret.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    old = "x" * 44  # what earlier versions wrote: 32 random bytes, base64
    f.write_text(json.dumps({"value": old}))
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        jwt.encode({"sub": "admin"}, old, algorithm="HS512")
    new = jwt_secret(paths)
    assert new != old and len(new.encode()) >= JWT_SECRET_BYTES
    assert json.loads(f.read_text())["value"] == new
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
