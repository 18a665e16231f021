"""The DPO's report: deletion requests and where each stands in every layer, the evidence chain checked,
retention destroyed per table and day, consent exclusions. HTML for people, CSV and JSON for systems;
the DPO's console (:mod:`plus_analytics.console`) shows the same content live. Request ids, kinds,
counts and times only: no identifier ever appears.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from pathlib import Path

from plus_analytics.erasure.requests import DONE, IN_PROGRESS
from plus_analytics.ledger import evidence
from plus_analytics.marts.publish import reading
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import tables

SQL = "privacy/report.sql"
#: Legal limits the console and report show beside each request's own deadline.
LIMITS = {"GDPR (one month)": 30, "Thailand PDPC (90 days)": 90}
ORDER = {"overdue": 0, "failed": 1, "pending": 2, "in progress": 3, "no_data": 4, "verified": 5}
REQUEST_FIELDS = ["request_id", "state", "status", "received_at", "deadline", "days_left", "requester", "id_kind",
                  "linked_identifiers", "rows_removed", "late_arrivals_suppressed", "last_row_check", "last_staging_check",
                  "last_marts_check", "last_byte_check", "propagated_at", "verified_at"]
LAYERS = ("landing", "restricted", "quarantine", "staging", "marts", "rewrite", "bytes")


def state(status: str, deadline: dt.datetime, now: dt.datetime) -> str:
    """What the DPO sees: overdue (past the deadline, not done), failed, pending, in progress, verified, no_data."""
    if status not in DONE and deadline < now:
        return "overdue"
    return "in progress" if status in IN_PROGRESS else status


def _layers(mine: list[dict]) -> dict[str, dict]:
    """The request's evidence by layer: what was removed or checked there, when."""
    out: dict[str, dict] = {}
    for e in mine:
        layer = {"verified_rows": "restricted", "verified_staging": "staging", "verified_marts": "marts",
                 "verified_bytes": "bytes", "rewritten": "rewrite", "restaged": "staging", "published": "marts"}.get(e["event"])
        if e["event"] == "removed":
            layer = "quarantine" if e["location"] == "quarantine" else e["layer"]
        if layer is None:
            continue
        cell = out.setdefault(layer, {"rows_removed": 0, "check": None, "at": None, "detail": []})
        if e["rows_removed"] is not None:
            cell["rows_removed"] += e["rows_removed"]
        if e["check_result"] is not None and e["event"].startswith("verified"):
            cell["check"] = e["check_result"]
        cell["at"] = e["recorded_at"]
        if e["detail"]:
            cell["detail"] = [e["detail"]]
    return out


def _request_row(r: dict, mine: list[dict], linked: int, now: dt.datetime) -> dict:
    r["state"] = state(r["status"], r["deadline"], now)
    r["days_left"] = (r["deadline"] - now).days if r["status"] not in DONE else None
    r["linked_identifiers"] = linked
    r["rows_removed"] = sum(e["rows_removed"] or 0 for e in mine if e["event"] == "removed" and e["layer"] == "restricted")
    r["late_arrivals_suppressed"] = sum(e["rows_removed"] or 0 for e in mine if e["event"] == "suppressed")
    for name, event in (("row", "verified_rows"), ("staging", "verified_staging"), ("marts", "verified_marts"),
                        ("byte", "verified_bytes")):
        r[f"last_{name}_check"] = next((e["check_result"] for e in reversed(mine) if e["event"] == event), None)
    r["layers"] = _layers(mine)
    return r


def collect(con, analytics_db: Path | None = None) -> dict:
    """Everything the report shows. ``con`` is the privacy ledger (staging attached as ``stg`` when it
    exists, for consent decisions); the published analytics database is read for consent exclusions."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    have = tables(con, "ledger")
    out: dict = {"generated_at": now, "limits": LIMITS, "requests": [], "evidence": [], "chain_intact": True,
                 "chain_records": 0, "evidence_head_hash": "", "retention": [], "retention_by_day": [],
                 "consent_changes": [], "consent_exclusions": []}
    if "tombstones" in have:
        cols = ["request_id", "received_at", "requester", "id_kind", "deadline", "status", "propagated_at", "verified_at"]
        reqs = [dict(zip(cols, r)) for r in sqlf.run(con, SQL, "requests").fetchall()]
        ev_cols = ["seq", "request_id", "event", "layer", "location", "rows_removed", "check_result", "detail", "recorded_at"]
        ev = [dict(zip(ev_cols, r)) for r in sqlf.run(con, SQL, "evidence").fetchall()]
        out["chain_intact"], out["chain_records"] = evidence.verify_chain(con)
        out["evidence_head_hash"] = evidence.head(con)[1]
        linked = dict(sqlf.run(con, SQL, "linked").fetchall())
        by_request: dict[str, list[dict]] = {}
        for e in ev:
            by_request.setdefault(e["request_id"], []).append(e)
        steps: dict[str, dict[str, dt.datetime]] = {}
        for rid, step, at in sqlf.run(con, SQL, "steps").fetchall():
            steps.setdefault(rid, {})[step] = at
        out["requests"] = [dict(_request_row(r, by_request.get(r["request_id"], []), linked.get(r["request_id"], 0), now),
                                steps=steps.get(r["request_id"], {})) for r in reqs]
        out["requests"].sort(key=lambda r: (ORDER.get(r["state"], 9), r["deadline"]))
        out["evidence"] = ev
    if "retention_evidence" in have:
        rc = ("layer", "location", "rule", "days", "first_day", "last_day", "rows_destroyed", "destroyed_at")
        out["retention"] = [dict(zip(rc, r)) for r in sqlf.run(con, SQL, "retention").fetchall()]
        dc = ("layer", "location", "day", "rule", "rows_destroyed", "destroyed_at")
        out["retention_by_day"] = [dict(zip(dc, r)) for r in sqlf.run(con, SQL, "retention_by_day").fetchall()]
    if "stg_platform_consent" in tables(con, "stg"):
        cc = ("day", "purpose", "granted", "withdrawn_or_denied", "source")
        out["consent_changes"] = [dict(zip(cc, r)) for r in sqlf.run(con, SQL, "consent_changes").fetchall()]
    if analytics_db is not None and analytics_db.exists():
        with reading(analytics_db) as a:  # the published snapshot: analysts' file, no lock
            if "meta_consent_exclusions" in tables(a, "analytics"):
                xc = ("source", "purpose", "days", "events_excluded", "events_total")
                out["consent_exclusions"] = [dict(zip(xc, r)) for r in sqlf.run(a, SQL, "consent_exclusions").fetchall()]
    out["counts"] = {s: sum(1 for r in out["requests"] if r["state"] == s) for s in ORDER}
    return out


def requests_csv(data: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REQUEST_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(data["requests"])
    return buf.getvalue()


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2, default=str)


def write_report(data: dict, out_dir: Path) -> dict:
    """Write the report files into ``out_dir`` (``reports/dpo``); returns where they are and the counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tombstones.json").write_text(to_json(data))
    (out_dir / "tombstones.csv").write_text(requests_csv(data), encoding="utf-8")
    for name, rows in (("tombstone_evidence", data["evidence"]), ("retention", data["retention"]),
                       ("retention_by_day", data["retention_by_day"]), ("consent_changes", data["consent_changes"]),
                       ("consent_exclusions", data["consent_exclusions"])):
        with open(out_dir / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["none"])
            w.writeheader()
            w.writerows(rows)
    (out_dir / "tombstones.html").write_text(render_html(data), encoding="utf-8")
    return {"html": str(out_dir / "tombstones.html"), "csv": str(out_dir / "tombstones.csv"),
            "json": str(out_dir / "tombstones.json"), "chain_intact": data["chain_intact"], **data["counts"]}


def _table(headers: list[str], rows: list[list], empty: str = "none") -> str:
    e = lambda v: html.escape("" if v is None else str(v))  # noqa: E731
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return (f"<table><tr>{''.join(f'<th>{e(h)}</th>' for h in headers)}</tr>"
            f"{body or f'<tr><td colspan={len(headers)}>{e(empty)}</td></tr>'}</table>")


def render_html(data: dict) -> str:
    e = lambda v: html.escape("" if v is None else str(v))  # noqa: E731
    reqs, c = data["requests"], data["counts"]
    rows = [[r["request_id"], r["state"], r["received_at"], r["deadline"], r["days_left"], r["id_kind"],
             r["linked_identifiers"], r["rows_removed"], r["last_row_check"], r["last_staging_check"],
             r["last_marts_check"], r["last_byte_check"], r["late_arrivals_suppressed"], r["verified_at"]] for r in reqs]
    details = "".join(
        f"<h3>{e(r['request_id'])} — {e(r['state'])}</h3>" + _table(
            ["when (UTC)", "what", "layer", "where", "rows removed", "check (must be 0)", "detail"],
            [[x["recorded_at"], x["event"], x["layer"], x["location"], x["rows_removed"], x["check_result"], x["detail"]]
             for x in data["evidence"] if x["request_id"] == r["request_id"]]) for r in reqs)
    chain = ("intact" if data["chain_intact"] else "BROKEN — the evidence log was altered") + f" ({data['chain_records']} records)"
    limits = "; ".join(f"{k}: {v} days" for k, v in data["limits"].items())
    return f"""<!doctype html><meta charset="utf-8"><title>Deletion requests — DPO report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:90em}} td,th{{border:1px solid #ccc;padding:4px 8px;font-size:90%}}
table{{border-collapse:collapse;margin-bottom:1em}}
.box{{display:inline-block;padding:.5em 1em;margin-right:1em;border:1px solid #ccc}}</style>
<h1>Deletion requests (tombstones)</h1>
<p>Generated {e(data['generated_at'])} UTC. Each request is followed to every place the data went: landing files,
the restricted zone, quarantine, staging and the published marts; then the database files are rewritten so deleted
values do not linger in free space, and four checks run (rows, staging, marts, bytes). All must be 0 for "verified";
"no_data" means the identifier was found nowhere. Legal limits: {e(limits)}. No identifier appears in this report.</p>
<div><span class="box"><b>{c['overdue']}</b> overdue</span><span class="box"><b>{c['failed']}</b> failed</span>
<span class="box"><b>{c['pending'] + c['in progress']}</b> in progress</span><span class="box"><b>{c['verified']}</b> verified</span>
<span class="box"><b>{c['no_data']}</b> no data found</span><span class="box">evidence chain: <b>{e(chain)}</b></span></div>
<h2>Requests (overdue first)</h2>
{_table(["request", "status", "received", "deadline", "days left", "identified by", "linked identifiers", "rows removed",
         "row check", "staging check", "marts check", "files check", "late arrivals suppressed", "done"], rows, "no requests")}
<h2>Evidence per request</h2>{details}
<h2>Retention: what was destroyed, and when</h2>
{_table(["layer", "where", "rule", "days", "from", "to", "rows (files for landing)", "destroyed at (UTC)"],
        [list(r.values()) for r in data["retention"]], "nothing has expired yet")}
<h2>Consent</h2>
<p>Events without the needed consent at their time are kept out of the dashboards: advertising is opt-in (no consent,
no count); first-party analytics is excluded once the person denied or withdrew it.</p>
{_table(["source", "purpose", "days", "events excluded", "events in period"], [list(r.values()) for r in data["consent_exclusions"]])}
<p>Consent decisions recorded (kept as evidence of lawful processing):</p>
{_table(["day", "purpose", "granted", "denied or withdrawn", "where"], [list(r.values()) for r in data["consent_changes"][:60]])}
"""
