"""Killed at any moment, then simply run again: the result equals an uninterrupted run.

A process is SIGKILLed (no cleanup, no ``finally``) right after its n-th commit or n-th atomic file
replacement (:mod:`plus_analytics.storage.faults`), then the same command runs again to completion, and
its state is compared with an uninterrupted run of the same work from the same start: the restricted zone,
staging, the published marts, the deletion requests (verified only when nothing of the subject remains,
checked by a byte scan here too) and no stale marts.

The kill points are counted in an uninterrupted run and sampled (every point of each kind would take
longer than CI allows; ``PLUS_KILL_SWEEP=all`` runs them all).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from plus_analytics.config import Paths
from plus_analytics.policy import load_policy
from plus_analytics.storage.files import scan_bytes
from tests.conftest import START
from tests.helpers import attach_restricted, opened

pytestmark = pytest.mark.integration
DAYS = 2
DRIVER = textwrap.dedent("""
    import datetime as dt, sys
    from pathlib import Path
    from plus_analytics import steps
    from plus_analytics.context import context
    from plus_analytics.config import Paths
    from plus_analytics.policy import load_policy
    from tests.helpers import ctx, run_erasure

    home, what = Path(sys.argv[1]), sys.argv[2]
    paths = Paths(home).ensure()
    if what == "erasure":
        run_erasure(paths)
    elif what == "backfill":  # what the plus_backfill DAG's tasks do, in order
        c = ctx(paths)
        first, last = dt.date.fromisoformat(sys.argv[3]), dt.date.fromisoformat(sys.argv[4])
        for src in load_policy():
            steps.ingest.ingest(src, first, c, until=last)
        for src in load_policy():
            steps.ingest.stage(src, first, c, until=last)
        b = steps.marts.build(c)
        if "skipped" not in b:
            steps.marts.publish(b, steps.marts.gate(b, c), c)
    elif what == "retention":  # the plus_retention DAG's task, as of a date that expires rows and columns
        steps.retention.enforce(dt.date.fromisoformat(sys.argv[3]), ctx(paths))
""")


def _run(home: Path, what: str, *args, kill_at: str | None = None, fault_log: Path | None = None) -> int:
    env = {**os.environ, "PLUS_ANALYTICS_HOME": str(home)}
    env.pop("PLUS_ANALYTICS_KILL_AT", None)
    if kill_at:
        env["PLUS_ANALYTICS_KILL_AT"] = kill_at
    if fault_log:
        env["PLUS_ANALYTICS_FAULT_LOG"] = str(fault_log)
    done = subprocess.run([sys.executable, "-c", DRIVER, str(home), what, *args], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    if not kill_at:
        assert done.returncode == 0, done.stderr[-3000:]
    return done.returncode


def _points(log: Path) -> dict[str, int]:
    lines = log.read_text().split()
    return {p: lines.count(p) for p in sorted(set(lines))}


def _sample(n: int, want: int = 4) -> list[int]:
    if os.environ.get("PLUS_KILL_SWEEP") == "all" or n <= want:
        return list(range(1, n + 1))
    return sorted({1, n, *(round(1 + i * (n - 1) / (want - 1)) for i in range(1, want - 1))})


def _state(home: Path) -> dict:
    """What a run leaves, without wall-clock columns and per-run ids."""
    out = {}
    con = duckdb.connect()
    try:
        for alias, path in (("raw", home / "restricted" / "raw.duckdb"), ("stg", home / "warehouse" / "staging.duckdb"),
                            ("pub", home / "analytics" / "analytics.duckdb"), ("led", home / "restricted" / "privacy.duckdb")):
            if path.exists() and alias == "raw":
                attach_restricted(con, path)
            elif path.exists():
                con.execute(f"attach '{path}' as {alias} (read_only)")
        for src in load_policy().values():
            out[src.raw_table] = _rows(con, f"select * exclude (_ingested_at) from lake.{src.raw_table}")
            per_run = ["visitor_hash"] if src.visitor else []  # salted per run: compared by presence only
            out[src.staging_table] = _rows(con, f"select * {'exclude (visitor_hash)' if per_run else ''} "
                                                f"{', visitor_hash is null' if per_run else ''} from stg.{src.staging_table}")
        for t in ("quarantine", "ingest_log", "text_mentions", "id_map", "pseudonyms"):
            out[t] = _rows(con, {"quarantine": "select * exclude (quarantined_at) from lake.quarantine",
                                 "text_mentions": "select * from lake.text_mentions",
                                 "ingest_log": "select * exclude (ingested_at) from raw.ingest_log"}.get(t, f"select * from raw.{t}"))
        for m in ("mart_daily_active_usage", "mart_feature_usage", "mart_chat_volume", "mart_crm_activity",
                  "mart_crm_pipeline", "mart_ad_performance", "meta_consent_exclusions"):
            out[m] = _rows(con, f"select * from pub.{m}")
        if "led" in {r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()}:
            ledger = {r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = 'led'").fetchall()}
            if "tombstones" in ledger:
                out["requests"] = _rows(con, "select status from led.tombstones")
            if "retention_evidence" in ledger:  # each destruction recorded once, whatever the kills
                out["retention_evidence"] = _rows(con, "select layer, location, day, rule, rows_destroyed from led.retention_evidence")
        out["published_version"] = _rows(con, "select staging_version from pub.meta_build_info")
        out["staging_version"] = _rows(con, "select max(version) from stg.staging_version")
    finally:
        con.close()
    return out


def _rows(con, sql: str) -> list:
    return sorted(map(tuple, con.execute(sql).fetchall()), key=repr)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, key):
    """Two landed days, ingested, staged and published; and, beside it, the same with an erasure request."""
    from plus_analytics import steps
    from plus_analytics.erasure.intake import Request
    from plus_analytics.generate import generate
    from tests.helpers import build, ctx, gate, publish

    base = Paths(tmp_path_factory.mktemp("kill-base")).ensure()
    generate(base.landing, days=DAYS, scale=0.2, seed=17, start=START)
    landed = tmp_path_factory.mktemp("kill-landed")
    shutil.copytree(base.home, landed, dirs_exist_ok=True)
    c = ctx(base, key)
    last = START + dt.timedelta(days=DAYS - 1)
    for src in load_policy():
        steps.ingest.ingest(src, START, c, until=last)
        steps.ingest.stage(src, START, c, until=last)
    b = build(base)
    publish(base, b, gate(base, b))
    with opened(base.raw_db, read_only=True) as con:
        email, cookie = con.execute("""select a.email, u.cookie_id from raw_platform_accounts a
                                       join raw_platform_usage_events u using (account_id) where u.cookie_id is not null
                                       order by a.account_id limit 1""").fetchone()
    steps.erasure.register([Request("email", email, "kill test")], c)
    return {"landed": landed, "erase": base.home, "forms": [email.strip(), cookie]}


def _fresh(src: Path, tmp: Path, name: str) -> Path:
    home = tmp / name
    shutil.copytree(src, home)
    for f in list(home.rglob("*.lock")) + list(home.rglob("*.lock.turn")):
        f.unlink()
    return home


def _reference(prepared, tmp_path, what, *args):
    home = _fresh(prepared["landed" if what == "backfill" else "erase"], tmp_path, "reference")
    log = tmp_path / "points.log"
    _run(home, "erasure" if what == "erase" else what, *args, fault_log=log)
    return home, _points(log)


@pytest.mark.parametrize("what", ["erase", "backfill", "retention"])
def test_killed_at_any_commit_or_file_replacement_a_rerun_finishes_the_work(prepared, tmp_path, what):
    args = {"erase": (), "retention": ((START + dt.timedelta(days=200)).isoformat(),),  # rows of 180 days, columns of 90
            "backfill": (START.isoformat(), (START + dt.timedelta(days=DAYS - 1)).isoformat())}[what]
    reference, points = _reference(prepared, tmp_path, what, *args)
    want = _state(reference)
    if what == "erase":
        assert want["requests"] == [("verified",)]
    if what == "retention":
        assert want["retention_evidence"] and any(r[1] == "raw_platform_usage_events" for r in want["retention_evidence"])
    assert points.get("commit", 0) >= 5, points
    killed = 0
    for point, n in points.items():
        for i in _sample(n):
            home = _fresh(prepared["landed" if what == "backfill" else "erase"], tmp_path, f"{point}-{i}")
            code = _run(home, "erasure" if what == "erase" else what, *args, kill_at=f"{point}:{i}")
            assert code == -9, f"{point}:{i} was not reached (exit {code})"
            killed += 1
            _run(home, "erasure" if what == "erase" else what, *args)  # simply run again
            got = _state(home)
            # Watermarks count transactions (a rerun that redoes work counts more): compared with each other below.
            diff = [k for k in want if k not in ("published_version", "staging_version") and got.get(k) != want[k]]
            assert diff == [], f"killed after {point} #{i}: differs from an uninterrupted run in {diff}"
            if what == "erase":
                leaked = scan_bytes(home, [f.encode() for f in prepared["forms"]])
                assert leaked == {}, f"killed after {point} #{i}: the subject is still in {sorted(leaked)}"
            if what != "retention":  # retention changes staging and leaves the rebuild to plus_marts
                assert got["published_version"] == got["staging_version"], "no stale marts"
            shutil.rmtree(home)
    print(f"\n{what}: {killed} kill points of {sum(points.values())} ({points})")


def test_the_cli_pipeline_killed_before_the_publish_is_caught_up_by_the_next_run(prepared, tmp_path):
    """Day 1 published; day 2 lands and `pipeline` is killed after building the marts, before gating and
    publishing them. Every ingest interval of day 2 succeeded, so the next `pipeline` ingests nothing, yet
    it rebuilds and publishes, because staging is newer than the published marts: the result equals an
    uninterrupted run."""
    import json

    env = {**os.environ}
    for k in ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
              "PLUS_ANALYTICS_KILL_AT", "PLUS_ANALYTICS_FAULT_LOG"):
        env.pop(k, None)
    cli = [str(Path(sys.executable).with_name("plus-analytics")), "pipeline"]

    def pipeline(home: Path, **extra) -> subprocess.CompletedProcess:
        return subprocess.run(cli, env={**env, "PLUS_ANALYTICS_HOME": str(home), **extra}, capture_output=True, text=True,
                              start_new_session=True)

    reference = _fresh(prepared["landed"], tmp_path, "cli-reference")
    done = pipeline(reference)
    assert done.returncode == 0, done.stderr[-2000:]
    want = _state(reference)

    home = _fresh(prepared["landed"], tmp_path, "cli")
    manifest = home / "landing" / "_manifest.json"
    full = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**full, "days": 1}))
    done = pipeline(home)
    assert done.returncode == 0, done.stderr[-2000:]
    day1 = _state(home)["published_version"]
    manifest.write_text(json.dumps(full))
    killed = pipeline(home, PLUS_ANALYTICS_KILL_AT="build:1")
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    stale = _state(home)
    assert stale["published_version"] == day1 and stale["staging_version"] > day1, "killed with day 2 staged, unpublished"
    again = pipeline(home)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "'ingest_runs': 0" in again.stdout and "published" in again.stdout, again.stdout
    got = _state(home)
    assert got["published_version"] == got["staging_version"]
    assert {k: v for k, v in got.items() if k.startswith("mart_")} == {k: v for k, v in want.items() if k.startswith("mart_")}
