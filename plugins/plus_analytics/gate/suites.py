"""Great Expectations suites, kept as JSON files in ``expectations/`` and loaded by code.

* ``expectations/<mart>.json``: one suite per mart (schema exactly as documented, keys not null, ranges,
  row-count sanity). A table in the build without a suite fails the gate: nothing undocumented ships.
* ``expectations/pii.json``: expectation templates applied to every text column of every table
  (``"column": "{column}"`` is filled in per column).

Results are requested as SUMMARY with ``partial_unexpected_count: 0``: GX then reports how many rows
failed and never which values, so validation results, Data Docs, logs and exceptions carry no PII.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from plus_analytics.config import EXPECTATIONS_DIR

log = logging.getLogger(__name__)

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0, "include_unexpected_rows": False}
PII_SUITE = "pii"


def load_suite_file(name: str) -> dict:
    return json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def declared_marts() -> list[str]:
    return sorted(p.stem for p in EXPECTATIONS_DIR.glob("*.json") if p.stem != PII_SUITE)


def _expand(template: dict, column: str) -> dict:
    return json.loads(json.dumps(template).replace("{column}", column))


def _context(out_dir: Path | None = None):
    """A file-backed context inside the build's report folder (so Data Docs can be built), or ephemeral."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    ctx = gx.get_context(mode="file", project_root_dir=str(out_dir)) if out_dir else gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic
        pass
    return ctx


def _suite(ctx, name: str, expectations: list[dict]):
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=name)
    for cfg in expectations:
        suite.add_expectation_configuration(ExpectationConfiguration(type=cfg["type"], kwargs=cfg["kwargs"], meta=cfg.get("meta", {})))
    return ctx.suites.add(suite)


def validate_frame(ctx, datasource, table: str, frame, expectations: list[dict], params: dict | None = None) -> list[dict]:
    """Validate one DataFrame against one suite named after the table; returns one summary per
    expectation (no values), labelled with the suite file it came from (``meta.suite``)."""
    import great_expectations as gx

    asset = datasource.add_dataframe_asset(table)
    definition = asset.add_batch_definition_whole_dataframe("whole")
    suite = _suite(ctx, table, expectations)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=table, data=definition, suite=suite))
    # Stored in the context's validation store, so Data Docs can render it; SUMMARY with no partial
    # unexpected values: counts only.
    result = vd.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT, expectation_parameters=params or {})
    out = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        out.append({
            "suite": (cfg.meta or {}).get("suite", table), "table": table, "expectation": cfg.type,
            "column": cfg.kwargs.get("column"), "success": bool(r.success), "unexpected_count": res.get("unexpected_count"),
            "element_count": res.get("element_count"),
            "exception": (r.exception_info or {}).get("exception_message") if not r.success else None,
        })
    return out


def _labelled(expectations: list[dict], suite: str) -> list[dict]:
    return [{**e, "meta": {**e.get("meta", {}), "suite": suite}} for e in expectations]


def validate_build(con, catalog: str, out_dir: Path, params: dict) -> dict:
    """Run every mart suite and the PII suite on the tables of ``catalog`` (an attached DuckDB build), and
    build GX Data Docs into ``out_dir/gx/uncommitted/data_docs/local_site/index.html``.

    Each table is validated once, against its mart suite plus the PII templates for its text columns:
    one GX validation per table, one pandas data source for the build (GX's fixed cost is per
    validation and per data source, not per expectation)."""
    import shutil

    shutil.rmtree(out_dir / "gx", ignore_errors=True)  # a re-run of the gate on the same build starts afresh
    ctx = _context(out_dir)
    datasource = ctx.data_sources.add_pandas("build")
    tables = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = ? order by 1", [catalog]).fetchall()]
    pii_templates = load_suite_file(PII_SUITE)["expectations"]
    marts = set(declared_marts())
    results: list[dict] = []
    for table in tables:
        expectations = []
        if table in marts:
            expectations += _labelled(load_suite_file(table)["expectations"], table)
        else:
            results.append({"suite": "schema", "table": table, "expectation": "table_is_declared", "column": None,
                            "success": False, "unexpected_count": None, "element_count": None,
                            "exception": f"table {table} has no suite in expectations/ (undocumented tables never ship)"})
        text_cols = [r[0] for r in con.execute(
            "select column_name from duckdb_columns() where database_name = ? and table_name = ? and data_type = 'VARCHAR'",
            [catalog, table]).fetchall()]
        expectations += _labelled([_expand(t, c) for c in text_cols for t in pii_templates], PII_SUITE)
        if expectations:
            frame = con.execute(f'select * from {catalog}."{table}"').df()
            results += validate_frame(ctx, datasource, table, frame, expectations, params)
    missing = sorted(marts - set(tables))
    for m in missing:
        results.append({"suite": m, "table": m, "expectation": "table_exists", "column": None, "success": False,
                        "unexpected_count": None, "element_count": None, "exception": f"documented mart {m} is missing"})
    failures = [r for r in results if not r["success"]]
    (out_dir / "gx_results.json").write_text(json.dumps(results, indent=2, default=str))
    docs = None
    try:
        ctx.build_data_docs()
        index = out_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        docs = str(index) if index.exists() else None
    except Exception as exc:  # Data Docs are a rendering of gx_results.json; never let them hide a verdict
        log.warning("GX Data Docs could not be built: %s", type(exc).__name__)
    return {"success": not failures, "evaluated": len(results), "failed": len(failures), "failures": failures,
            "results_file": str(out_dir / "gx_results.json"), "data_docs": docs}
