"""Key rotation re-keys everything, keeps every count, and ingest refuses mixed versions."""

import shutil

import pytest

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.erasure.intake import Request
from plus_analytics.policy import load_policy
from plus_analytics.privacy.identifiers import KeyVersionMismatch, check_key_version
from plus_analytics.privacy.keys import MasterKey
from tests.helpers import build, copy_restricted, ctx, opened

pytestmark = pytest.mark.integration

MART_COUNTS = """select 'dau', sum(active_accounts), sum(unique_visitors), count(*) from mart_daily_active_usage
                 union all select 'chat', sum(contacts), sum(conversations), count(*) from mart_chat_volume
                 union all select 'ads', sum(reach), sum(impressions), count(*) from mart_ad_performance order by 1"""


def _marts(paths: Paths) -> list:
    b = build(paths)
    with opened(b.path, read_only=True) as con:
        return con.execute(MART_COUNTS).fetchall()


def test_rotation_rekeys_and_keeps_counts(pipeline, tmp_path, key):
    home = Paths(tmp_path).ensure()
    copy_restricted(pipeline, home)
    shutil.copy(pipeline.staging_db, home.staging_db)
    before = _marts(home)
    with opened(home.staging_db, read_only=True) as con:
        old_pids = {r[0] for r in con.execute("select account_pid from stg_platform_usage_events").fetchall()}

    with opened(home.raw_db, read_only=True) as con:  # a request registered before the rotation, not yet propagated
        email = con.execute("select normalized from pseudonyms where kind = 'email' order by 1 limit 1").fetchone()[0]
    [rid] = steps.erasure.register([Request("email", email, "rotation test")], ctx(home, key))
    new = MasterKey(version=2, secret=b"a-completely-new-secret-of-32-bytes!")
    out = steps.rotation.rekey(ctx(home, new))
    with opened(home.privacy_db, read_only=True) as con:
        pid, version = con.execute("select pseudonym, key_version from tombstone_subjects where request_id = ?", [rid]).fetchone()
    assert (pid, version) == (new.pseudonym("email", email), 2), "pending tombstones follow the rotation"
    assert set(out["after"]) == {"2"} and sum(out["after"].values()) == sum(out["before"].values())
    steps.rotation.restage(ctx(home, new))

    with opened(home.staging_db, read_only=True) as con:
        for src in load_policy().values():
            versions = {r[0] for r in con.execute(f"select distinct key_version from {src.staging_table}").fetchall()}
            assert versions <= {2}, src.name
        new_pids = {r[0] for r in con.execute("select account_pid from stg_platform_usage_events").fetchall()}
    assert len(new_pids) == len(old_pids) and not (new_pids & old_pids)
    with opened(home.raw_db, read_only=True) as con:
        acc = con.execute("select normalized from pseudonyms where kind = 'account' limit 1").fetchone()[0]
        pid = con.execute("select pseudonym from pseudonyms where kind = 'account' and normalized = ?", [acc]).fetchone()[0]
        assert pid == new.pseudonym("account", acc)
    assert _marts(home) == before


def test_ingest_refuses_mixed_versions(pipeline, tmp_path, key):
    shutil.copy(pipeline.raw_db, tmp_path / "raw.duckdb")
    with opened(tmp_path / "raw.duckdb") as con:
        check_key_version(con, key)  # the active key: fine
        with pytest.raises(KeyVersionMismatch, match="rotation"):
            check_key_version(con, MasterKey(version=2, secret=b"x" * 32))
