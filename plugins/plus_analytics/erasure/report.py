"""The DPO's tombstone report: HTML for people, CSV and JSON for systems. Pseudonyms and counts only."""

from __future__ import annotations

import csv
import datetime as dt
import html
import json

from plus_analytics import db
from plus_analytics.config import Paths
from plus_analytics.erasure import evidence


def _status(row: dict, now: dt.datetime) -> str:
    if row["status"] != "verified" and row["deadline"] < now:
        return "overdue"
    return row["status"]


def _retention_and_consent(paths: Paths, has: set[str], con) -> dict:
    out: dict = {"retention": [], "consent_changes": [], "consent_exclusions": []}
    if "retention_evidence" in has:
        out["retention"] = [dict(zip(("layer", "location", "rule", "days", "first_day", "last_day", "rows_destroyed", "destroyed_at"), r))
                            for r in con.execute("""select layer, location, rule, count(distinct day), min(day), max(day),
                                                    sum(rows_destroyed), max(destroyed_at) from retention_evidence
                                                    group by all order by max(destroyed_at) desc, layer, location""").fetchall()]
    if "raw_platform_consent" in has:
        out["consent_changes"] = [dict(zip(("day", "purpose", "granted", "withdrawn_or_denied", "source"), r))
                                  for r in con.execute("""select cast(recorded_at as date), purpose, count(*) filter (where granted),
                                                          count(*) filter (where not granted), string_agg(distinct source, ', ')
                                                          from raw_platform_consent group by 1, 2 order by 1 desc, 2""").fetchall()]
    if paths.analytics_db.exists():
        with db.opened(paths.analytics_db, read_only=True) as a:
            if a.execute("select count(*) from duckdb_tables() where table_name = 'meta_consent_exclusions'").fetchone()[0]:
                out["consent_exclusions"] = [dict(zip(("source", "purpose", "days", "events_excluded", "events_total"), r))
                                             for r in a.execute("""select source, purpose, count(*), sum(events_excluded), sum(events_total)
                                                                   from meta_consent_exclusions group by all order by 1""").fetchall()]
    return out


def collect(paths: Paths) -> dict:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with db.opened(paths.raw_db, read_only=True) as con:
        has = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
        extra = _retention_and_consent(paths, has, con)
        if "tombstones" not in has:
            return {"generated_at": now, "requests": [], "evidence": [], "chain_intact": True, "chain_records": 0, **extra}
        cols = ["request_id", "received_at", "requester", "id_kind", "deadline", "status", "propagated_at", "verified_at"]
        reqs = [dict(zip(cols, r)) for r in con.execute(f"select {', '.join(cols)} from tombstones order by received_at").fetchall()]
        ev_cols = ["seq", "request_id", "event", "layer", "location", "rows_removed", "check_result", "detail", "recorded_at"]
        ev = [dict(zip(ev_cols, r)) for r in con.execute(f"select {', '.join(ev_cols)} from erasure_evidence order by seq").fetchall()]
        intact, n = evidence.verify_chain(con)
        linked = dict(con.execute("select request_id, count(*) from tombstone_subjects group by 1").fetchall())
    for r in reqs:
        r["state"] = _status(r, now)
        r["linked_identifiers"] = linked.get(r["request_id"], 0)
        mine = [e for e in ev if e["request_id"] == r["request_id"]]
        # Restricted-zone rows only: landing lines are the same rows in their exported form (per-layer
        # figures are in the evidence).
        r["rows_removed"] = sum(e["rows_removed"] or 0 for e in mine if e["event"] == "removed" and e["layer"] == "restricted")
        r["late_arrivals_suppressed"] = sum(e["rows_removed"] or 0 for e in mine if e["event"] == "suppressed")
        checks = [e for e in mine if e["event"] in ("verified_rows", "verified_bytes")]
        r["last_row_check"] = next((e["check_result"] for e in reversed(checks) if e["event"] == "verified_rows"), None)
        r["last_byte_check"] = next((e["check_result"] for e in reversed(checks) if e["event"] == "verified_bytes"), None)
    order = {"overdue": 0, "pending": 1, "propagated": 2, "verified": 3}
    reqs.sort(key=lambda r: (order.get(r["state"], 9), r["deadline"]))
    return {"generated_at": now, "requests": reqs, "evidence": ev, "chain_intact": intact, "chain_records": n, **extra}


def write_report(paths: Paths) -> dict:
    data = collect(paths)
    out_dir = paths.reports / "dpo"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tombstones.json").write_text(json.dumps(data, indent=2, default=str))
    fields = ["request_id", "state", "received_at", "deadline", "requester", "id_kind", "linked_identifiers",
              "rows_removed", "late_arrivals_suppressed", "last_row_check", "last_byte_check", "propagated_at", "verified_at"]
    with open(out_dir / "tombstones.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(data["requests"])
    with open(out_dir / "tombstone_evidence.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(data["evidence"][0]) if data["evidence"] else ["seq"])
        w.writeheader()
        w.writerows(data["evidence"])
    for name in ("retention", "consent_changes", "consent_exclusions"):
        with open(out_dir / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            rows = data[name]
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["none"])
            w.writeheader()
            w.writerows(rows)
    (out_dir / "tombstones.html").write_text(_html(data), encoding="utf-8")
    counts = {s: sum(1 for r in data["requests"] if r["state"] == s) for s in ("overdue", "pending", "propagated", "verified")}
    return {"html": str(out_dir / "tombstones.html"), "csv": str(out_dir / "tombstones.csv"),
            "json": str(out_dir / "tombstones.json"), "chain_intact": data["chain_intact"], **counts}


def _html(data: dict) -> str:
    e = lambda v: html.escape("" if v is None else str(v))  # noqa: E731
    reqs = data["requests"]
    counts = {s: sum(1 for r in reqs if r["state"] == s) for s in ("overdue", "pending", "propagated", "verified")}
    colour = {"overdue": "#b00020", "pending": "#a15c00", "propagated": "#a15c00", "verified": "#1b5e20"}
    rows = "".join(
        f"<tr><td>{e(r['request_id'])}</td><td style='color:{colour.get(r['state'], '#000')};font-weight:bold'>{e(r['state'])}</td>"
        f"<td>{e(r['received_at'])}</td><td>{e(r['deadline'])}</td><td>{e(r['id_kind'])}</td><td>{e(r['linked_identifiers'])}</td>"
        f"<td>{e(r['rows_removed'])}</td><td>{e(r['last_row_check'])}</td><td>{e(r['last_byte_check'])}</td>"
        f"<td>{e(r['late_arrivals_suppressed'])}</td><td>{e(r['verified_at'])}</td></tr>" for r in reqs)
    details = ""
    for r in reqs:
        ev = [x for x in data["evidence"] if x["request_id"] == r["request_id"]]
        lines = "".join(
            f"<tr><td>{e(x['recorded_at'])}</td><td>{e(x['event'])}</td><td>{e(x['layer'])}</td><td>{e(x['location'])}</td>"
            f"<td>{e(x['rows_removed'])}</td><td>{e(x['check_result'])}</td><td>{e(x['detail'])}</td></tr>" for x in ev)
        details += (f"<h3>{e(r['request_id'])} — {e(r['state'])}</h3><table><tr><th>when (UTC)</th><th>what</th><th>layer</th>"
                    f"<th>where</th><th>rows removed</th><th>check (must be 0)</th><th>detail</th></tr>{lines}</table>")
    chain = ("intact" if data["chain_intact"] else "BROKEN — the evidence log was altered") + f" ({data['chain_records']} records)"
    return f"""<!doctype html><meta charset="utf-8"><title>Deletion requests — DPO report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}} td,th{{border:1px solid #ccc;padding:4px 8px;font-size:90%}}
table{{border-collapse:collapse;margin-bottom:1em}} .box{{display:inline-block;padding:.5em 1em;margin-right:1em;border:1px solid #ccc}}</style>
<h1>Deletion requests (tombstones)</h1>
<p>Generated {e(data['generated_at'])} UTC. Each request is followed to every place the data went: landing files,
the restricted zone, quarantine, staging and the published marts; then the database files are rewritten so
deleted values do not linger in free space, and two checks run: rows still holding the person's identifiers,
and files under the data directory containing any written form of them. Both must be 0 for "verified".
No identifier appears in this report.</p>
<div><span class="box"><b>{counts['overdue']}</b> overdue</span><span class="box"><b>{counts['pending'] + counts['propagated']}</b> in progress</span>
<span class="box"><b>{counts['verified']}</b> verified</span><span class="box">evidence chain: <b>{e(chain)}</b></span></div>
<h2>Requests (overdue first)</h2>
<table><tr><th>request</th><th>status</th><th>received</th><th>deadline</th><th>identified by</th><th>linked identifiers</th>
<th>rows removed</th><th>row check</th><th>files check</th><th>late arrivals suppressed</th><th>verified</th></tr>{rows}</table>
<h2>Evidence per request</h2>{details}
<h2>Retention: what was destroyed, and when</h2>
<p>Data past its retention period (policy/retention.yaml) is destroyed in every layer and the database files
are rewritten. Rows per table and rule over the days destroyed:</p>
<table><tr><th>layer</th><th>where</th><th>rule</th><th>days</th><th>from</th><th>to</th><th>rows (files for landing)</th><th>destroyed at (UTC)</th></tr>
{"".join(f"<tr><td>{e(r['layer'])}</td><td>{e(r['location'])}</td><td>{e(r['rule'])}</td><td>{e(r['days'])}</td><td>{e(r['first_day'])}</td><td>{e(r['last_day'])}</td><td>{e(r['rows_destroyed'])}</td><td>{e(r['destroyed_at'])}</td></tr>" for r in data["retention"]) or "<tr><td colspan=8>nothing has expired yet</td></tr>"}</table>
<h2>Consent</h2>
<p>Events without the needed consent at their time are kept out of the dashboards: advertising is opt-in (no
consent, no count); first-party analytics is excluded once the person denied or withdrew it.</p>
<table><tr><th>source</th><th>purpose</th><th>days</th><th>events excluded</th><th>events in period</th></tr>
{"".join(f"<tr><td>{e(r['source'])}</td><td>{e(r['purpose'])}</td><td>{e(r['days'])}</td><td>{e(r['events_excluded'])}</td><td>{e(r['events_total'])}</td></tr>" for r in data["consent_exclusions"])}</table>
<p>Consent decisions recorded (kept as evidence of lawful processing):</p>
<table><tr><th>day</th><th>purpose</th><th>granted</th><th>denied or withdrawn</th><th>where</th></tr>
{"".join(f"<tr><td>{e(r['day'])}</td><td>{e(r['purpose'])}</td><td>{e(r['granted'])}</td><td>{e(r['withdrawn_or_denied'])}</td><td>{e(r['source'])}</td></tr>" for r in data["consent_changes"][:60])}</table>
"""
