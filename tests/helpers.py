"""Small helpers the tests share: open a zone file under its lock, build/gate/publish without Airflow."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from plus_analytics import steps
from plus_analytics.config import Paths
from plus_analytics.context import Context, context
from plus_analytics.storage import locks

#: The alias a zone file is attached under in every session (plus_analytics.config.Paths.zones), by name.
ALIASES = {"raw.duckdb": "raw", "privacy.duckdb": "ledger", "staging.duckdb": "stg", "stg.duckdb": "stg",
           "analytics.duckdb": "analytics"}


@contextmanager
def opened(path: Path, read_only: bool = False, alias: str | None = None, **attached):
    """A session on a DuckDB file as the pipeline opens it (its zone lock taken, the file attached under
    its alias: ``alias``, else the one its name says, ``build`` for a build file), with ``attached``
    ({alias: path}) attached read-only. For the test's own queries, bare names mean that file: ``use``
    here, as an operator inspecting it would; the library never relies on it (test_house)."""
    path = Path(path)
    alias = alias or ("build" if path.name.startswith(("build-", "building-")) else ALIASES[path.name])
    mine = {alias: path}
    with locks.zone(write=None if read_only else mine, read={**({} if not read_only else mine),
                                                             **{a: Path(p) for a, p in attached.items()}}) as con:
        if path.exists():
            con.execute(f"use {alias}")
            if alias == "raw":  # the zone's rows are its Delta tables' views, lake.raw_<source>
                con.execute("set search_path = 'raw.main,lake.main'")
        yield con


def attach_restricted(con, raw_db: Path) -> None:
    """Attach the restricted zone read-only to a plain DuckDB connection, as a session does: ``raw`` and the
    views of its rows' Delta tables (``lake.raw_<source>``)."""
    from plus_analytics.storage import lake

    con.execute(f"attach '{raw_db}' as raw (read_only)")
    lake.attach(con, Path(raw_db), writable=False)


def copy_restricted(src: Paths, dest: Paths) -> None:
    """Copy the restricted zone (its database and its rows' Delta tables) of ``src`` into ``dest``."""
    from plus_analytics.storage import lake

    shutil.copy(src.raw_db, dest.raw_db)
    shutil.copytree(lake.root_of(src.raw_db), lake.root_of(dest.raw_db), dirs_exist_ok=True)


def copy_home(pipeline: Paths, dest: Path) -> Paths:
    """A copy of the session pipeline's data directory at ``dest`` for a test to change, without its
    leftover build files."""
    home = Paths(Path(dest))
    shutil.copytree(pipeline.home, home.home, dirs_exist_ok=True)
    for stale in home.builds.glob("*"):
        stale.unlink()
    return home


def ctx(paths: Paths, key=None, tomb=None) -> Context:
    from tests.conftest import TOMB

    return context(paths, key, tomb or TOMB)


def build(paths: Paths) -> SimpleNamespace:
    """A fresh build of the marts (whether or not the published ones are up to date)."""
    out = steps.marts.build(ctx(paths), force=True)
    return SimpleNamespace(build_id=out["build_id"], path=Path(out["build_file"]), tables=out["tables"], out=out)


def gate(paths: Paths, b) -> dict:
    return steps.marts.gate(b.out, ctx(paths))


def publish(paths: Paths, b, gate_result: dict) -> dict:
    return steps.marts.publish(b.out, gate_result, ctx(paths))


ERASURE_STEPS = ("resolve", "select", "remove", "restage")
AFTER_PUBLISH = ("confirm_published", "rewrite", "verify")


def run_erasure(paths: Paths, key=None, report: bool = True) -> dict:
    """The plus_erasure DAG's tasks, in its order, without Airflow: each step, then build, gate, publish
    (the build skips when nothing changed), then the steps after the publish and the report."""
    c = ctx(paths, key)
    out = {step: steps.erasure.STEPS[step](c) for step in ERASURE_STEPS}
    b = steps.marts.build(c)
    if "skipped" not in b:
        g = steps.marts.gate(b, c)
        out["publish"] = steps.marts.publish(b, g, c)
    out.update({step: steps.erasure.STEPS[step](c) for step in AFTER_PUBLISH})
    if report:
        out["report"] = steps.erasure.report(c, fail_on_overdue=False)
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


def erasure_subject(raw_db) -> dict:
    """A person who is a platform user, a CRM customer (same email, written differently), has a LINE chat
    and a cookie seen by the ad network: everything they are known by, read from the restricted zone."""
    with opened(raw_db, read_only=True) as con:
        return _subject(con)


def _subject(con) -> dict:
    row = con.execute("""
        select a.email, a.account_id, a.phone, c.customer_id, c.email, c.line_id, c.phone
        from raw_platform_accounts a join raw_crm_customers c on lower(trim(c.email)) = lower(trim(a.email))
        where c.line_id in (select contact_platform_id from raw_connect_conversations)
          and a.account_id in (select account_id from raw_platform_usage_events)
        order by a.account_id limit 1""").fetchone()
    assert row, "the generator must link people across products"
    email, account, phone, customer, cust_email, line_id, cust_phone = row
    cookies = [r[0] for r in con.execute(
        "select distinct cookie_id from raw_platform_usage_events where account_id = ?", [account]).fetchall()]
    sessions = [r[0] for r in con.execute(
        "select distinct session_id from raw_platform_usage_events where account_id = ?", [account]).fetchall()]
    ads = con.execute("select count(*) from raw_adtech_interactions where cookie_id in (select unnest(?))", [cookies]).fetchone()[0]
    assert ads > 0, "the subject must have ad interactions"
    forms = {email, email.strip(), cust_email, cust_email.strip(), account, customer, line_id, *cookies, *sessions}
    forms |= {p for p in (phone, cust_phone) if p}
    return {"email": email, "account": account, "customer": customer, "line_id": line_id, "cookies": cookies,
            "forms": sorted(f for f in forms if f and len(f.encode()) >= 6)}


def busiest_cookie(raw_db) -> str:
    """A person the ad network saw the most: a cookie, linked through usage events to an account that
    also owns CRM records, conversations and campaigns (references redacted, rows kept)."""
    with opened(raw_db, read_only=True) as con:
        return con.execute("select cookie_id from raw_adtech_interactions group by 1 order by count(*) desc, 1 limit 1"
                           ).fetchone()[0]


def exported_rows(landing: Path, src, day) -> list[dict]:
    """The valid rows of one day of ``src`` as the generated exports wrote them, as dicts (NDJSON: complete
    objects; CSV: records with every field)."""
    import csv
    import json

    out = []
    for f in sorted((Path(landing) / src.name / f"dt={day}").glob("part-*")):
        if src.format == "ndjson":
            for line in f.read_bytes().split(b"\n"):
                try:
                    row = json.loads(line)
                except (ValueError, UnicodeError):
                    continue
                if isinstance(row, dict) and set(row) == set(src.column_names):
                    out.append(row)
        else:
            with open(f, encoding="utf-8", errors="replace", newline="") as fh:
                out += [r for r in csv.DictReader(fh) if None not in r.values() and None not in r]
    return out


def every_line_once(raw_db: Path, day, sources: list[str]) -> None:
    """The day's ingest of each source accounted for every line of its landing files exactly once: in the
    source's rows or in quarantine, as its ingest log says (a task killed and run again included)."""
    with opened(raw_db, read_only=True) as con:
        log = con.execute("select source, rows_read, rows_loaded + rows_quarantined + rows_suppressed from ingest_log "
                          "where _dt = ?", [day]).fetchall()
        assert sorted(s for s, *_ in log) == sorted(sources)
        for source, read, placed in log:
            assert read == placed > 0, source
            lines = con.execute(f"select count(*) from raw_{source} where _dt = ?", [day]).fetchone()[0]
            bad = con.execute("select count(*) from quarantine where source = ? and _dt = ?", [source, day]).fetchone()[0]
            assert lines + bad == read, f"{source}: every line once, in raw or in quarantine"


def between_reading_and_writing(monkeypatch, action) -> dict:
    """Run ``action()`` once, after ingest's first batch is read and checked (without the zone's lock) and
    before it takes the lock to write; returns what it returned (empty until it ran)."""
    from plus_analytics.ingest import loader

    checked, out = loader._check_batch, {}

    def check_then_act(*args, **kwargs):
        checked(*args, **kwargs)
        if not out:
            out.update(action())

    monkeypatch.setattr(loader, "_check_batch", check_then_act)
    return out


def between_writing_ahead_and_committing(monkeypatch, action) -> dict:
    """Run ``action()`` once, after ingest's first batch wrote its rows ahead (with the zone's read lock)
    and before it takes the write lock to commit them; returns what it returned, and the files written
    ahead as ``written`` ((table, path relative to it) of the rows' and the quarantined lines' tables),
    empty until it ran."""
    from plus_analytics.ingest import loader

    ahead, out = loader._write_ahead, {}

    def ahead_then_act(*args, **kwargs):
        ahead(*args, **kwargs)
        if not out:
            done = args[-1]  # the batch's _Ahead
            out["written"] = [(a.table, f[0]) for a in done.files.values() for f in a.written]
            out.update(action())

    monkeypatch.setattr(loader, "_write_ahead", ahead_then_act)
    return out
