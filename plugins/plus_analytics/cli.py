"""``plus-analytics``: the command line of the pipeline.

  generate     write synthetic landing files (deterministic)
  demo         generate a month, run every DAG through real Airflow (dag.test), publish, print where things are
  airflow      start real Airflow (scheduler, DAG processor, API server with the UI, triggerer) on this data
  query        run a read-only SQL query against the published analytics database
  pipeline     run the daily DAGs (or the backfill) for the landed days
  erase        register a deletion request (DPO); --run also runs plus_erasure
  report dpo   write the DPO report
  retention    destroy expired data in every layer (runs plus_retention)
  audit        PII audit of the analytics zone, task logs and Airflow's records
  rotate-keys  re-key everything to the active key version (runs plus_rotate_keys)
  keys         print a new pseudonymization key connection
  certificate  verify an erasure certificate offline
  install-dags write the one file an existing Airflow deployment's DAG folder needs

Every input is checked before any work starts; every failure ends with one line on stderr and a non-zero
exit (2: bad input or configuration, 1: a run failed, 3: another run holds this data directory).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from plus_analytics.config import Paths, settings

SAMPLE_QUERY = """select day, product, active_accounts, unique_visitors, events
from mart_daily_active_usage where dimension = 'all'
order by day desc, product limit 8"""


#: Where a command's own output goes: stdout as it was when :func:`main` started. While a command runs,
#: ``sys.stdout`` points at stderr, so whatever a library prints or logs there (Airflow binds its log handler
#: to ``sys.stdout`` when first imported) goes to stderr: stdout carries the command's output alone, and JSON
#: or CSV can be piped.
_out = sys.stdout


def say(*parts) -> None:
    print(*parts, file=_out, flush=True)


class Usage(ValueError):
    """Bad input: exit 2 with the message."""


class Busy(RuntimeError):
    """Another run holds the data directory: exit 3 with who holds it."""


def _paths(args) -> Paths:
    return Paths.for_cli(getattr(args, "home", None))


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not positive")
    return n


@contextmanager
def exclusive_runner(paths: Paths, what: str):
    """One runner per data directory: a second CLI run (or ``make airflow``) exits at once naming the holder."""
    lock = paths.home / ".runner.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "another process"
            raise Busy(f"{holder} is using {paths.home}; wait for it to finish (or stop it) and run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"plus-analytics {what} (pid {os.getpid()}, since {dt.datetime.now():%H:%M:%S})".encode(), 0)
        yield
    finally:
        os.close(fd)


def _airflow(paths: Paths) -> None:
    """The embedded default's environment, and the keys checked against the data, before any DAG runs."""
    from plus_analytics import steps
    from plus_analytics.context import context
    from plus_analytics.runner import prepare_airflow

    prepare_airflow(paths)
    ctx = context(paths)
    steps.erasure.check_keys(ctx)


def _run_dag(paths: Paths, dag_id: str, conf: dict | None = None) -> float:
    """Run one DAG to completion through Airflow (dag.test on the embedded default); returns seconds."""
    from plus_analytics.runner import dag_bag, run_dag

    t = time.perf_counter()
    run_dag(dag_bag(), dag_id, None, conf=conf)
    return time.perf_counter() - t


def _manifest(paths: Paths) -> dict | None:
    f = paths.landing / "_manifest.json"
    return json.loads(f.read_text()) if f.exists() else None


def cmd_generate(args) -> int:
    from plus_analytics.generate import generate

    paths = _paths(args)
    t = time.perf_counter()
    m = generate(paths.landing, days=args.days, scale=args.scale, seed=args.seed, start=args.start)
    rows = sum(s["rows"] for s in m["sources"].values())
    bad = sum(sum(s["malformed"].values()) for s in m["sources"].values())
    say(f"generated {rows:,} rows ({bad:,} deliberately malformed) for {m['days']} days from {m['start']} "
          f"into {paths.landing} in {time.perf_counter() - t:.1f}s")
    return 0


def cmd_demo(args) -> int:
    paths = _paths(args)
    t0 = time.perf_counter()
    m = _manifest(paths)
    want = {"days": args.days, "scale": args.scale, "seed": args.seed}
    if m is not None and any(m[k] != v for k, v in want.items()):
        raise Usage("landing data was generated with other parameters; run `make clean` first")
    with exclusive_runner(paths, "demo"):
        if m is None:
            cmd_generate(argparse.Namespace(days=args.days, scale=args.scale, seed=args.seed, start=None, home=None))
            m = _manifest(paths)
        else:
            say(f"landing data already generated ({m['days']} days from {m['start']}): reusing it")
        start = dt.date.fromisoformat(m["start"])
        days = [start + dt.timedelta(days=i) for i in range(m["days"])]
        from plus_analytics.runner import run_pipeline

        say(f"running the daily DAGs through Airflow (dag.test; metadata DB and task logs in {paths.airflow_home}):")
        _airflow(paths)
        ran = run_pipeline(paths, days, progress=say)
        say(f"DAG runs: {ran['ingest_runs']} ingest runs executed, {ran['ingest_skipped']} already done; marts {ran['marts']}")
    _summary(paths)
    say(f"demo finished in {time.perf_counter() - t0:.1f}s")
    return 0


def _summary(paths: Paths) -> None:
    from plus_analytics.marts.publish import published_tables
    from plus_analytics.storage import locks

    say(f"\nanalytics database (analysts, read-only): {paths.analytics_db}")
    for t, n in published_tables(paths.analytics_db).items():
        say(f"  {t:32s} {n:>8,} rows")
    from plus_analytics.ingest.quality import SQL as QUALITY
    from plus_analytics.storage import sql as sqlf

    with locks.zone(read=paths.zones("raw")) as con:
        q, loaded = sqlf.run(con, QUALITY, "totals").fetchone()
        say(f"restricted zone: {paths.raw_db} ({loaded:,} rows loaded, {q:,} quarantined with reasons)")
        worst = sqlf.run(con, QUALITY, "most_quarantined").fetchall()
    if worst:
        say("  most quarantined columns: " + "; ".join(f"{s}.{c} {n:,}" for s, c, n in worst))
    say(f"reports: {paths.reports}  (PII gate: {paths.reports / 'gate'}, data quality per source, day and column: "
          f"{paths.reports / 'quality'}/<source>.csv)")
    say("\nsample analyst query:\n  plus-analytics query \"" + " ".join(SAMPLE_QUERY.split()) + "\"")
    _print_query(paths, SAMPLE_QUERY)


def check_read_only(con, sql: str) -> None:
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise Usage(f"the query is not valid SQL: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        raise Usage("only one read-only query (SELECT, WITH ... SELECT, EXPLAIN) is allowed on the analytics database")


def _print_query(paths: Paths, sql: str) -> None:
    import duckdb

    from plus_analytics.marts.publish import analyst_connection

    con = analyst_connection(paths.analytics_db)
    try:
        check_read_only(con, sql)
        try:
            cur = con.execute(sql)
        except duckdb.Error as exc:
            raise Usage(f"the query failed: {str(exc).splitlines()[0]}") from None
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    say("  " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        say("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)))


def cmd_query(args) -> int:
    paths = _paths(args)
    if not paths.analytics_db.exists():
        raise Usage(f"no published analytics database at {paths.analytics_db}; run `make demo` first")
    _print_query(paths, args.sql)
    return 0


def cmd_airflow(args) -> int:
    from plus_analytics.scheduler import serve

    paths = _paths(args)
    with exclusive_runner(paths, "airflow (make airflow)"):
        return serve(paths, port=args.port, say=say)


def cmd_rotate_keys(args) -> int:
    from plus_analytics.embedded import new_local_key_version

    paths = _paths(args)
    with exclusive_runner(paths, "rotate-keys"):
        if args.new_local_key:
            version = new_local_key_version(paths)
            os.environ.pop("AIRFLOW_CONN_PLUS_PSEUDONYM_KEY", None)
            say(f"demo key rotated locally to version {version} (the old secret is overwritten)")
        from plus_analytics.runner import prepare_airflow

        prepare_airflow(paths)
        seconds = _run_dag(paths, "plus_rotate_keys")
    say(f"re-keyed restricted zone, staging and marts in {seconds:.1f}s; published {paths.analytics_db}")
    return 0


def cmd_pipeline(args) -> int:
    """Run the DAGs (through Airflow) for days already landed, e.g. after `generate`."""
    paths = _paths(args)
    m = _manifest(paths)
    if m is None:
        raise Usage("no landing data: run `plus-analytics generate` first")
    if (args.first_day or args.last_day) and not args.backfill:
        raise Usage("--first-day and --last-day go with --backfill")
    if args.first_day and args.last_day and args.last_day < args.first_day:
        raise Usage(f"--last-day {args.last_day} is before --first-day {args.first_day}")
    with exclusive_runner(paths, "pipeline"):
        _airflow(paths)
        if args.backfill:
            conf = {"first_day": args.first_day and args.first_day.isoformat(),
                    "last_day": args.last_day and args.last_day.isoformat()}
            say(f"running plus_backfill ({conf['first_day'] or 'first landed day'} to {conf['last_day'] or 'last landed day'}) ...")
            seconds = _run_dag(paths, "plus_backfill", conf=conf)
            say(f"plus_backfill finished in {seconds:.1f}s; published {paths.analytics_db}")
            return 0
        from plus_analytics.runner import run_pipeline

        start = dt.date.fromisoformat(m["start"])
        t = time.perf_counter()
        ran = run_pipeline(paths, [start + dt.timedelta(days=i) for i in range(m["days"])], force=args.force,
                           progress=say)
    say(f"{ran} in {time.perf_counter() - t:.1f}s")
    return 0


def cmd_erase(args) -> int:
    """Register a deletion request (validated, normalized and pseudonymized here, before anything is stored)."""
    from plus_analytics import steps
    from plus_analytics.context import context
    from plus_analytics.erasure.intake import ID_KINDS, Request, validate

    paths = _paths(args)
    given = [(opt, getattr(args, opt)) for opt in ID_KINDS if getattr(args, opt) is not None]
    if len(given) != 1:
        raise Usage("give exactly one identifier: --email, --phone, --account-id, --customer-id, --line-id, "
                    "--cookie-id or --device-id")
    request = Request(given[0][0], given[0][1], args.requester, args.deadline_days)
    validate(request)  # before the runner lock, keys or Airflow: bad input fails fast
    with exclusive_runner(paths, "erase"):
        from plus_analytics.embedded import environment

        os.environ.update(environment(paths))  # the keys come from the Airflow connections (any secrets backend)
        [rid] = steps.erasure.register([request], context(paths))
        say(f"registered deletion request {rid} (deadline {args.deadline_days} days); no raw identifier was stored")
        if args.run:
            _airflow(paths)
            seconds = _run_dag(paths, "plus_erasure")
            say(f"plus_erasure finished in {seconds:.1f}s; report: {paths.reports / 'dpo' / 'tombstones.html'}")
    return 0


def cmd_report(args) -> int:
    from plus_analytics import steps
    from plus_analytics.context import context

    paths = _paths(args)
    from plus_analytics.embedded import environment

    os.environ.update(environment(paths))
    out = steps.erasure.report(context(paths), fail_on_overdue=False)
    say(json.dumps(out, indent=2))
    return 1 if out["overdue"] or out["failed"] else 0


def cmd_retention(args) -> int:
    paths = _paths(args)
    as_of = (args.as_of or dt.datetime.now(dt.UTC).date()).isoformat()
    with exclusive_runner(paths, "retention"):
        _airflow(paths)
        seconds = _run_dag(paths, "plus_retention", conf={"as_of": as_of})
    say(f"retention enforced as of {as_of} and marts republished in {seconds:.1f}s; evidence in the DPO report "
          f"(`plus-analytics report dpo`, then {paths.reports / 'dpo' / 'tombstones.html'})")
    return 0


def cmd_audit(args) -> int:
    """Scan the analytics zone and Airflow's logs, XComs, asset extras and DAG-run conf for PII."""
    from plus_analytics import steps
    from plus_analytics.context import context

    paths = _paths(args)
    from plus_analytics.runner import prepare_airflow

    prepare_airflow(paths)
    try:
        out = steps.audit.pii_audit("database", ctx=context(paths))
    except RuntimeError as exc:
        if "finding" in str(exc):
            print(str(exc), file=sys.stderr)
            return 1
        raise
    say(json.dumps(out, indent=2))
    return 0


def cmd_keys(args) -> int:
    from plus_analytics.privacy.keys import connection_uri_json, new_secret

    say(connection_uri_json(new_secret(), args.version))
    return 0


def cmd_install_dags(args) -> int:
    """An existing Airflow deployment: write the one file its DAG folder needs to load the package's DAGs."""
    from plus_analytics.dags import DEPLOYMENT_FILE

    folder = Path(args.folder)
    if not folder.is_dir():
        raise Usage(f"{folder} is not a folder: give the deployment's DAG folder ([core] dags_folder)")
    target = folder / "plus_analytics_dags.py"
    target.write_text(DEPLOYMENT_FILE, encoding="utf-8")
    say(f"wrote {target}: Airflow's DAG processor loads the plus-analytics DAGs from the installed package through it")
    return 0


def cmd_certificate(args) -> int:
    """Verify an erasure certificate offline: needs only the certificate and the published public key."""
    from plus_analytics.erasure import certificate

    try:
        cert = json.loads(Path(args.file).read_text(encoding="utf-8"))
        key = Path(args.public_key).read_bytes()
    except (OSError, ValueError) as exc:
        raise Usage(f"cannot read the certificate or the key: {exc}") from None
    try:
        p = certificate.verify(cert, key)
    except certificate.CertificateInvalid as exc:
        say(f"INVALID: {exc}")
        return 1
    say(f"valid: erasure certificate for request {p['request_id']} ({p['identifier_kind']}), outcome {p['outcome']}, "
          f"completed {p['completed_at']} UTC, signed by {p['signing_key']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plus-analytics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", help="data directory (default: $PLUS_ANALYTICS_HOME or ./data)")
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="write synthetic landing files")
    g.add_argument("--days", type=_positive, default=30)
    g.add_argument("--scale", type=float, default=1.0, help="1.0 is about 3,500 usage and ad events a day")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--start", type=_day, help="first day (YYYY-MM-DD); default: DAYS days before today")
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser("demo", help="generate a month and run every DAG through Airflow")
    d.add_argument("--days", type=_positive, default=30)
    d.add_argument("--scale", type=float, default=1.0)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("airflow", help="start real Airflow on this data directory (Ctrl-C stops it)")
    a.add_argument("--port", type=_positive, default=None, help="API server port (default: $PLUS_AIRFLOW_PORT or 8080)")
    a.set_defaults(func=cmd_airflow)

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
    pl.add_argument("--first-day", type=_day, help="with --backfill: YYYY-MM-DD (default: the first landed day)")
    pl.add_argument("--last-day", type=_day, help="with --backfill: YYYY-MM-DD (default: the last landed day)")
    pl.set_defaults(func=cmd_pipeline)

    e = sub.add_parser("erase", help="register a deletion request (DPO)")
    for opt in ("email", "phone", "account-id", "customer-id", "line-id", "cookie-id", "device-id"):
        e.add_argument(f"--{opt}", dest=opt.replace("-", "_"))
    e.add_argument("--requester", default="DPO", help="who registered the request (DPO name or ticket)")
    e.add_argument("--deadline-days", type=int, default=30, help="legal deadline from receipt, 1 to 90 (default 30)")
    e.add_argument("--run", action="store_true", help="also run the plus_erasure DAG to completion")
    e.set_defaults(func=cmd_erase)

    rp = sub.add_parser("report", help="DPO reports")
    rp.add_argument("what", choices=["tombstones", "dpo"], help="both write the same report (erasure, retention, consent)")
    rp.set_defaults(func=cmd_report)

    rt = sub.add_parser("retention", help="destroy expired data in every layer (runs plus_retention)")
    rt.add_argument("--as-of", type=_day, help="YYYY-MM-DD (default today)")
    rt.set_defaults(func=cmd_retention)

    au = sub.add_parser("audit", help="scan analytics zone, task logs, XComs, asset extras and DAG-run conf for PII")
    au.set_defaults(func=cmd_audit)

    ce = sub.add_parser("certificate", help="verify an erasure certificate offline")
    ce.add_argument("action", choices=["verify"])
    ce.add_argument("file", help="the certificate (DSR-....json)")
    ce.add_argument("--public-key", required=True, help="the published public key (certificate_public_key.pem)")
    ce.set_defaults(func=cmd_certificate)

    ins = sub.add_parser("install-dags", help="existing Airflow deployment: write the DAG file its DAG folder needs")
    ins.add_argument("folder", help="the deployment's DAG folder")
    ins.set_defaults(func=cmd_install_dags)

    k = sub.add_parser("keys", help="print a new pseudonymization key connection (JSON)")
    k.add_argument("--version", type=_positive, default=1)
    k.set_defaults(func=cmd_keys)
    return p


def _failure_line(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for a failure."""
    from plus_analytics.config import ConfigError
    from plus_analytics.erasure.intake import InvalidRequest
    from plus_analytics.policy.files import PolicyError
    from plus_analytics.privacy.keys import MissingKeyError
    from plus_analytics.storage.locks import ZoneBusy

    if isinstance(exc, Busy):
        return 3, str(exc)
    if isinstance(exc, (Usage, InvalidRequest, ConfigError, MissingKeyError, PolicyError)):
        return 2, str(exc)
    if isinstance(exc, ZoneBusy):
        return 3, str(exc)
    message = " ".join(str(exc).split()) or type(exc).__name__
    if "write_audit_publish.gate" in message:
        from plus_analytics.config import Paths as _P

        reports = sorted((_P.from_env().reports / "gate").glob("*/gate_report.html"), key=lambda p: p.stat().st_mtime)
        if reports:
            message += f" The PII gate blocked the build: open {reports[-1]}"
    return 1, message


def main(argv: list[str] | None = None) -> int:
    global _out
    level = settings().log_level
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", level)  # Airflow's own loggers, in this process
    logging.basicConfig(level=level, stream=sys.stderr)
    args = build_parser().parse_args(argv)
    _out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return args.func(args)
    except KeyboardInterrupt:
        print("plus-analytics: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends with one line, not a traceback
        if settings().debug:
            raise
        code, line = _failure_line(exc)
        print(f"plus-analytics: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
