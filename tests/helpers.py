"""Small helpers the tests share: open a zone file under its lock, build/gate/publish without Airflow."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from plus_analytics import jobs
from plus_analytics.config import Paths
from plus_analytics.storage import locks


@contextmanager
def opened(path: Path, read_only: bool = False, **attached):
    """A connection on a DuckDB file (read-write unless ``read_only``), taking its zone lock, with
    ``attached`` ({alias: path}) attached read-only."""
    with locks.zone(Path(path), write=not read_only, read={a: Path(p) for a, p in attached.items()}) as con:
        yield con


def ctx(paths: Paths, key=None, tomb=None) -> jobs.Context:
    from tests.conftest import TOMB

    return jobs.context(paths, key, tomb or TOMB)


def build(paths: Paths) -> SimpleNamespace:
    """A fresh build of the marts (whether or not the published ones are up to date)."""
    out = jobs.build_marts(ctx(paths), force=True)
    return SimpleNamespace(build_id=out["build_id"], path=Path(out["build_file"]), tables=out["tables"], out=out)


def gate(paths: Paths, b) -> dict:
    return jobs.gate_build(b.out, ctx(paths))


def publish(paths: Paths, b, gate_result: dict) -> dict:
    return jobs.publish_build(b.out, gate_result, ctx(paths))


ERASURE_STEPS = ("resolve", "select", "remove", "restage")
AFTER_PUBLISH = ("confirm_published", "rewrite", "verify")


def run_erasure(paths: Paths, key=None, report: bool = True) -> dict:
    """The plus_erasure DAG's tasks, in its order, without Airflow: each step, then build, gate, publish
    (the build skips when nothing changed), then the steps after the publish and the report."""
    c = ctx(paths, key)
    out = {step: getattr(jobs, f"erasure_{step}")(c) for step in ERASURE_STEPS}
    b = jobs.build_marts(c)
    if "skipped" not in b:
        g = jobs.gate_build(b, c)
        out["publish"] = jobs.publish_build(b, g, c)
    out.update({step: getattr(jobs, f"erasure_{step}")(c) for step in AFTER_PUBLISH})
    if report:
        out["report"] = jobs.dpo_report(c, fail_on_overdue=False)
    return out


def table_rows(path: Path, tables: list[str] | None = None) -> dict[str, list[tuple]]:
    """Every row of ``tables`` (default: every table but ``meta_build_info``) of a DuckDB file, sorted: two
    builds compare equal when they hold the same rows, whatever their order."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        if tables is None:
            tables = [r[0] for r in con.execute(
                "select table_name from duckdb_tables() where table_name <> 'meta_build_info'").fetchall()]
        return {t: sorted(map(tuple, con.execute(f'select * from "{t}"').fetchall()), key=repr) for t in tables}
    finally:
        con.close()
