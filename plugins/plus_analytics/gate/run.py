"""Audit a build before it is published (write-audit-publish).

Three checks, all of which must pass:
1. Great Expectations suites from ``expectations/`` (one per mart: schema exactly as documented, keys not
   null, value ranges, every text column inside its closed domain; plus the PII suite on every text
   column), run with a result format that keeps counts and never the unexpected values.
2. The PII detectors (:mod:`plus_analytics.gate.detectors`) over every distinct text value.
3. The canary: no text value equals or contains a raw identifier of the restricted zone (a gate that
   cannot read the restricted zone fails).

A failing build stays in ``analytics/builds/`` for inspection, the report (JSON + HTML, values never
included) is written to ``reports/gate/<build_id>/``, and :class:`GateFailed` stops the DAG.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from plus_analytics.gate import scan
from plus_analytics.gate.suites import validate_build
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import tables

log = logging.getLogger(__name__)


class GateFailed(RuntimeError):
    def __init__(self, report: Path, summary: str):
        self.report = report
        super().__init__(f"PII gate failed: {summary}. Build kept for inspection; report: {report}")


def run_gate(con, out_dir: Path, build_id: str) -> dict:
    """Audit the build attached to ``con`` as ``build`` (with the restricted zone as ``raw`` and staging as
    ``stg``, both read-only); write the report into ``out_dir``. Raises :class:`GateFailed`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    findings = scan.scan_catalog(con, "build")
    findings += scan.canary(con, "build", "raw")  # RestrictedZoneMissing when raw is not there: no pass
    k = sqlf.run(con, "build/meta.sql", "k_anonymity", db="build").fetchone()[0]
    staging_rows = sum(con.execute(f'select count(*) from stg."{t}"').fetchone()[0] for t in tables(con, "stg"))
    gx = validate_build(con, "build", out_dir, {"k": k, "staging_rows": staging_rows})
    passed = not findings and gx["success"]
    report = {"build_id": build_id, "passed": passed, "pii_findings": [f.as_dict() for f in findings], "expectations": gx}
    report_json = out_dir / "gate_report.json"
    report_json.write_text(json.dumps(report, indent=2, default=str))
    _write_html(out_dir / "gate_report.html", report)
    log.info("gate %s for build %s: %d PII findings, %d failed expectations; report %s",
             "PASSED" if passed else "FAILED", build_id, len(findings), gx["failed"], out_dir / "gate_report.html")
    if gx.get("data_docs"):
        log.info("GX Data Docs: %s", gx["data_docs"])
    if not passed:
        parts = [f"{f.detector} in {f.location} ({f.rows} rows)" for f in findings[:10]]
        parts += [f"{e['suite']}: {e['expectation']} on {e['table']}.{e.get('column') or '*'}" for e in gx["failures"][:10]]
        raise GateFailed(out_dir / "gate_report.html", "; ".join(parts))
    return {"passed": True, "report": str(report_json), "findings": 0, "expectations": gx["evaluated"]}


def _write_html(path: Path, report: dict) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(f['location'])}</td><td>{html.escape(f['detector'])}</td><td>{f['rows']}</td>"
        f"<td>{', '.join(map(str, f['first_rows']))}</td></tr>" for f in report["pii_findings"])
    exp = "".join(
        f"<tr><td>{html.escape(e['suite'])}</td><td>{html.escape(e['expectation'])}</td><td>{html.escape(str(e.get('column') or ''))}</td>"
        f"<td>{html.escape(str(e.get('unexpected_count', '')))}</td></tr>" for e in report["expectations"]["failures"])
    status = "PASSED" if report["passed"] else "FAILED"
    path.write_text(f"""<!doctype html><meta charset="utf-8"><title>PII gate {status}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{border:1px solid #ccc;padding:4px 8px}} table{{border-collapse:collapse}}</style>
<h1>PII gate: {status}</h1><p>Build <code>{html.escape(report['build_id'])}</code>.
Values are never shown here: only where (table.column, row numbers) and how many.</p>
<h2>PII detector and canary findings ({len(report['pii_findings'])})</h2>
<table><tr><th>location</th><th>detector</th><th>rows</th><th>first rows</th></tr>{rows}</table>
<p>Great Expectations Data Docs (counts only):
<a href="gx/uncommitted/data_docs/local_site/index.html">gx/uncommitted/data_docs/local_site/index.html</a></p>
<h2>Failed expectations ({report['expectations']['failed']} of {report['expectations']['evaluated']})</h2>
<table><tr><th>suite</th><th>expectation</th><th>column</th><th>unexpected rows</th></tr>{exp}</table>
""", encoding="utf-8")
