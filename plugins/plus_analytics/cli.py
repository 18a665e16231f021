"""``plus-analytics``: the command line of the pipeline.

  generate    write synthetic landing files (deterministic)
  demo        generate a month, run every DAG through real Airflow, publish, print where things are
  query       run a read-only SQL query against the published analytics database
  keys        make a new pseudonymization secret (prints the Airflow connection JSON)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time

from plus_analytics.config import Paths

SAMPLE_QUERY = """select day, product, active_accounts, unique_visitors, events
from mart_daily_active_usage where dimension = 'all'
order by day desc, product limit 8"""


def _paths(args) -> Paths:
    if getattr(args, "home", None):
        os.environ["PLUS_ANALYTICS_HOME"] = args.home
    return Paths.from_env().ensure()


def _run_dag(paths: Paths, dag_id: str, conf: dict | None = None) -> float:
    """Run one DAG to completion through Airflow (dag.test on the local metadata DB); returns seconds."""
    from plus_analytics.runner import dag_bag, prepare_airflow, run_dag

    prepare_airflow(paths)
    t = time.perf_counter()
    run_dag(dag_bag(), dag_id, None, conf=conf)
    return time.perf_counter() - t


def cmd_generate(args) -> int:
    from plus_analytics.generate import generate

    paths = _paths(args)
    start = dt.date.fromisoformat(args.start) if args.start else None
    t = time.perf_counter()
    m = generate(paths.landing, days=args.days, scale=args.scale, seed=args.seed, start=start)
    rows = sum(s["rows"] for s in m["sources"].values())
    bad = sum(sum(s["malformed"].values()) for s in m["sources"].values())
    print(f"generated {rows:,} rows ({bad:,} deliberately malformed) for {m['days']} days from {m['start']} "
          f"into {paths.landing} in {time.perf_counter() - t:.1f}s")
    return 0


def _manifest(paths: Paths) -> dict | None:
    f = paths.landing / "_manifest.json"
    return json.loads(f.read_text()) if f.exists() else None


def cmd_demo(args) -> int:
    paths = _paths(args)
    t0 = time.perf_counter()
    m = _manifest(paths)
    want = {"days": args.days, "scale": args.scale, "seed": args.seed}
    if m is None or any(m[k] != v for k, v in want.items()):
        if m is not None:
            print("landing data was generated with other parameters; run `make clean` first", file=sys.stderr)
            return 2
        cmd_generate(argparse.Namespace(days=args.days, scale=args.scale, seed=args.seed, start=None, home=None))
        m = _manifest(paths)
    else:
        print(f"landing data already generated ({m['days']} days from {m['start']}): reusing it")
    start = dt.date.fromisoformat(m["start"])
    days = [start + dt.timedelta(days=i) for i in range(m["days"])]

    from plus_analytics.runner import run_pipeline

    print(f"running the DAGs through Airflow (metadata DB and logs in {paths.airflow_home}) ...", flush=True)
    ran = run_pipeline(paths, days)
    print(f"DAG runs: {ran['ingest_runs']} ingest runs executed, {ran['ingest_skipped']} already done; marts {ran['marts']}")
    _summary(paths)
    print(f"demo finished in {time.perf_counter() - t0:.1f}s")
    return 0


def _summary(paths: Paths) -> None:
    from plus_analytics import db
    from plus_analytics.marts.build import published_tables

    print(f"\nanalytics database (analysts, read-only): {paths.analytics_db}")
    for t, n in published_tables(paths.analytics_db).items():
        print(f"  {t:32s} {n:>8,} rows")
    with db.opened(paths.raw_db, read_only=True) as con:
        q = con.execute("select count(*) from quarantine").fetchone()[0]
        loaded = con.execute("select sum(rows_loaded) from ingest_log").fetchone()[0]
    print(f"restricted zone: {paths.raw_db} ({loaded:,} rows loaded, {q:,} quarantined with reasons)")
    print(f"reports: {paths.reports}  (PII gate: {paths.reports / 'gate'})")
    print("\nsample analyst query:\n  plus-analytics query \"" + " ".join(SAMPLE_QUERY.split()) + "\"")
    _print_query(paths, SAMPLE_QUERY)


def _print_query(paths: Paths, sql: str) -> None:
    from plus_analytics import db

    with db.opened(paths.analytics_db, read_only=True) as con:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    print("  " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)))


def cmd_query(args) -> int:
    paths = _paths(args)
    if not paths.analytics_db.exists():
        print(f"no published analytics database at {paths.analytics_db}; run `make demo` first", file=sys.stderr)
        return 2
    _print_query(paths, args.sql)
    return 0


def cmd_rotate_keys(args) -> int:
    paths = _paths(args)
    from plus_analytics.runner import new_local_key_version

    if args.new_local_key:
        version = new_local_key_version(paths)
        os.environ.pop("AIRFLOW_CONN_PLUS_PSEUDONYM_KEY", None)
        print(f"demo key rotated locally to version {version} (the old secret is overwritten)")
    seconds = _run_dag(paths, "plus_rotate_keys")
    print(f"re-keyed restricted zone, staging and marts in {seconds:.1f}s; published {paths.analytics_db}")
    return 0


def cmd_pipeline(args) -> int:
    """Run the DAGs (through Airflow) for days already landed, e.g. after `generate`."""
    paths = _paths(args)
    m = _manifest(paths)
    if m is None:
        print("no landing data: run `plus-analytics generate` first", file=sys.stderr)
        return 2
    if args.backfill:
        conf = {"first_day": args.first_day, "last_day": args.last_day}
        seconds = _run_dag(paths, "plus_backfill", conf=conf)
        print(f"plus_backfill ({args.first_day or 'first landed day'} to {args.last_day or 'last landed day'}) "
              f"in {seconds:.1f}s; published {paths.analytics_db}")
        return 0
    from plus_analytics.runner import run_pipeline

    start = dt.date.fromisoformat(m["start"])
    t = time.perf_counter()
    ran = run_pipeline(paths, [start + dt.timedelta(days=i) for i in range(m["days"])], force=args.force)
    print(f"{ran} in {time.perf_counter() - t:.1f}s")
    return 0


def cmd_erase(args) -> int:
    """Register a deletion request (normalized and pseudonymized here, before anything is stored)."""
    from plus_analytics import db
    from plus_analytics.config import TOMBSTONE_CONN_ID
    from plus_analytics.erasure.intake import ID_KINDS, register
    from plus_analytics.privacy.normalize import InvalidIdentifier
    from plus_analytics.runner import airflow_env

    paths = _paths(args)
    given = [(opt, getattr(args, opt)) for opt in ID_KINDS if getattr(args, opt)]
    if len(given) != 1:
        print("give exactly one identifier: --email, --phone, --account-id, --customer-id, --line-id, --cookie-id or --device-id",
              file=sys.stderr)
        return 2
    os.environ.update(airflow_env(paths))  # the keys come from the Airflow connections (any secrets backend)
    from plus_analytics.privacy.keys import load_master_key

    key, tomb = load_master_key(), load_master_key(TOMBSTONE_CONN_ID)
    option, value = given[0]
    try:
        with db.opened(paths.raw_db) as con:
            rid = register(con, key, tomb, option, value, args.requester, deadline_days=args.deadline_days)
    except InvalidIdentifier as exc:
        print(f"not registered: the {option.replace('_', ' ')} given is invalid ({exc})", file=sys.stderr)
        return 2
    print(f"registered deletion request {rid} (deadline {args.deadline_days} days); no raw identifier was stored")
    if args.run:
        seconds = _run_dag(paths, "plus_erasure")
        print(f"erasure propagated and verified in {seconds:.1f}s; report: {paths.reports / 'dpo' / 'tombstones.html'}")
    return 0


def cmd_report(args) -> int:
    paths = _paths(args)
    from plus_analytics.erasure.report import write_report

    out = write_report(paths)
    print(json.dumps(out, indent=2))
    return 1 if out["overdue"] else 0


def cmd_retention(args) -> int:
    paths = _paths(args)
    as_of = args.as_of or dt.date.today().isoformat()
    seconds = _run_dag(paths, "plus_retention", conf={"as_of": as_of})
    print(f"retention enforced as of {as_of} and marts republished in {seconds:.1f}s; "
          f"evidence in the DPO report (`plus-analytics report dpo`, then {paths.reports / 'dpo' / 'tombstones.html'})")
    return 0


def cmd_audit(args) -> int:
    """Scan the analytics zone and Airflow's logs, XComs, asset extras and DAG-run conf for PII."""
    paths = _paths(args)
    from plus_analytics.runner import airflow_env

    os.environ.update(airflow_env(paths))
    from plus_analytics.gate.audit import run_audit

    out = run_audit(paths)
    print(json.dumps(out, indent=2))
    return 0 if out["clean"] else 1


def cmd_keys(args) -> int:
    from plus_analytics.privacy.keys import connection_uri_json, new_secret

    print(connection_uri_json(new_secret(), args.version))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plus-analytics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", help="data directory (default: $PLUS_ANALYTICS_HOME or ./data)")
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="write synthetic landing files")
    g.add_argument("--days", type=int, default=30)
    g.add_argument("--scale", type=float, default=1.0, help="1.0 is about 3,500 usage and ad events a day")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--start", help="first day (YYYY-MM-DD); default: DAYS days before today")
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser("demo", help="generate a month and run every DAG through Airflow")
    d.add_argument("--days", type=int, default=30)
    d.add_argument("--scale", type=float, default=1.0)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=cmd_demo)

    q = sub.add_parser("query", help="read-only SQL on the published analytics database")
    q.add_argument("sql")
    q.set_defaults(func=cmd_query)

    r = sub.add_parser("rotate-keys", help="re-key everything to the active key version (runs plus_rotate_keys)")
    r.add_argument("--new-local-key", action="store_true", help="demo only: first make version N+1 of the local key")
    r.set_defaults(func=cmd_rotate_keys)

    pl = sub.add_parser("pipeline", help="run the DAGs through Airflow for the landed days")
    pl.add_argument("--force", action="store_true", help="re-run intervals Airflow already ran")
    pl.add_argument("--backfill", action="store_true",
                    help="one batch per source for the whole range (runs plus_backfill) instead of one run per day")
    pl.add_argument("--first-day", help="with --backfill: YYYY-MM-DD (default: the first landed day)")
    pl.add_argument("--last-day", help="with --backfill: YYYY-MM-DD (default: the last landed day)")
    pl.set_defaults(func=cmd_pipeline)

    e = sub.add_parser("erase", help="register a deletion request (DPO)")
    for opt in ("email", "phone", "account-id", "customer-id", "line-id", "cookie-id", "device-id"):
        e.add_argument(f"--{opt}", dest=opt.replace("-", "_"))
    e.add_argument("--requester", default="DPO", help="who registered the request (DPO name or ticket)")
    e.add_argument("--deadline-days", type=int, default=30, help="legal deadline from receipt (default 30)")
    e.add_argument("--run", action="store_true", help="also run the plus_erasure DAG to completion")
    e.set_defaults(func=cmd_erase)

    rp = sub.add_parser("report", help="DPO reports")
    rp.add_argument("what", choices=["tombstones", "dpo"], help="tombstones and dpo write the same report (erasure, retention, consent)")
    rp.set_defaults(func=cmd_report)

    rt = sub.add_parser("retention", help="destroy expired data in every layer (runs plus_retention)")
    rt.add_argument("--as-of", help="YYYY-MM-DD (default today)")
    rt.set_defaults(func=cmd_retention)

    au = sub.add_parser("audit", help="scan analytics zone, task logs, XComs, asset extras and DAG-run conf for PII")
    au.set_defaults(func=cmd_audit)

    k = sub.add_parser("keys", help="print a new pseudonymization key connection (JSON)")
    k.add_argument("--version", type=int, default=1)
    k.set_defaults(func=cmd_keys)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("PLUS_ANALYTICS_LOG_LEVEL", "WARNING"))
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
