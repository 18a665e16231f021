"""Great Expectations suites, kept as JSON files in ``expectations/``, loaded strictly and rendered.

* ``expectations/<mart>.json``: one suite per mart (schema exactly as documented, keys not null, ranges,
  row-count sanity, and the closed domain of every text column). A table in the build without a suite
  fails the gate: nothing undocumented ships. A text column without a domain expectation fails it too.
* ``expectations/pii.json``: expectation templates applied to every text column of every table
  (``"column": "{column}"`` is filled in per column).

Suites reference the policy instead of repeating it: ``{"$domain": "<source>.<column>"}`` (or a name
the marts define: country, device_type, ...) becomes that domain's values or pattern, and
``{"$pii_patterns": "all"}`` the PII patterns; one source each.

Results are requested as SUMMARY with ``partial_unexpected_count: 0``: GX then reports how many rows
failed and never which values, so validation results, Data Docs, logs and exceptions carry no PII.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import sys
import threading
import types
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field

from plus_analytics.config import EXPECTATIONS_DIR
from plus_analytics.policy import Domain, generated_domains, load_policy
from plus_analytics.policy.files import PolicyError, Strict, load_json
from plus_analytics.policy.patterns import pii_patterns
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import CATALOG

log = logging.getLogger(__name__)

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0, "include_unexpected_rows": False}
PII_SUITE = "pii"
DOMAIN_TYPES = ("expect_column_values_to_be_in_set", "expect_column_values_to_match_regex")
#: Domains of labels the mart SQL itself writes.
MART_DOMAINS = {
    "all": Domain("the 'all' label", ("all",)),
    "dimension": Domain("dimensions", ("all", "device_type", "os_family", "browser_family", "country")),
    "build_id": Domain("build ids", pattern=r"[0-9]{8}T[0-9]{6}-[a-p]{8}"),
    "consented_sources": Domain("sources with consent rules", ("platform_usage_events", "adtech_interactions")),
    "build_mode": Domain("build modes", ("full", "incremental")),
    "marts_sql": Domain("mart definition fingerprints", pattern=r"[a-p]{16}"),
}


class Expectation(Strict):
    type: str = Field(pattern=r"^expect_[a-z_]+$")
    kwargs: dict[str, Any]
    meta: dict[str, Any] = {}


class SuiteFile(Strict):
    name: str
    description: str = Field(min_length=10)
    expectations: tuple[Expectation, ...] = Field(min_length=1)


def domain(ref: str) -> Domain:
    """A domain by reference: ``<source>.<column>`` of the policy, a generated column, or a mart label."""
    if "." in ref:
        src, col = ref.split(".", 1)
        try:
            found = load_policy()[src].column(col).domain
        except KeyError:
            found = None
        if found is None:
            raise PolicyError(f"suite domain {ref!r}: no such policy column with a domain")
        return found
    found = generated_domains().get(ref) or MART_DOMAINS.get(ref)
    if found is None:
        raise PolicyError(f"suite domain {ref!r} is unknown")
    return found


def non_capturing(regex: str) -> str:
    """The same pattern with every group non-capturing (pandas' ``str.contains`` warns about groups)."""
    out, i, in_class = [], 0, False
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            out.append(regex[i:i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == "(" and not in_class and not regex.startswith("(?", i):
            ch = "(?:"
        out.append(ch)
        i += 1
    return "".join(out)


def _render(value: Any) -> Any:
    if isinstance(value, dict) and "$domain" in value:
        if set(value) - {"$domain", "plus"}:
            raise PolicyError(f"a $domain reference takes only 'plus' beside it: {sorted(value)}")
        d = domain(value["$domain"])
        if d.pattern is not None:
            return f"^(?:{d.pattern})$"
        return sorted(set(d.values) | set(value.get("plus", ())))
    if isinstance(value, dict) and "$pii_patterns" in value:
        return [non_capturing(rx) for rx, _ in pii_patterns().values()]
    if isinstance(value, dict):
        return {k: _render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v) for v in value]
    return value


@lru_cache(maxsize=32)
def load_suite(name: str) -> list[dict]:
    """A suite's expectations, strictly loaded and rendered (policy references resolved)."""
    spec = load_json(EXPECTATIONS_DIR / f"{name}.json", SuiteFile)
    if spec.name != name:
        raise PolicyError(f"expectations/{name}.json is named {spec.name!r}: the name must match the file")
    return [{"type": e.type, "kwargs": _render(e.kwargs), "meta": dict(e.meta)} for e in spec.expectations]


def declared_marts() -> list[str]:
    return sorted(p.stem for p in EXPECTATIONS_DIR.glob("*.json") if p.stem != PII_SUITE)


def domain_columns(name: str) -> set[str]:
    """The columns of mart ``name`` whose values its suite confines to a domain."""
    return {e["kwargs"].get("column") for e in load_suite(name) if e["type"] in DOMAIN_TYPES}


def _expand(template: dict, column: str) -> dict:
    return json.loads(json.dumps(template).replace("{column}", column))


#: Modules great_expectations imports at start only for expectations the gate never runs (KL divergence and
#: Kolmogorov-Smirnov tests, and their charts): 1.5-2 s of every gate task's start, loaded on first use instead.
DEFERRED_IMPORTS = ("scipy.stats", "altair")
_DEFER_LOCK = threading.Lock()


class _Deferred(types.ModuleType):
    """Stands in for a module until something reads one of its attributes; then the real module is imported
    (and replaces this one in ``sys.modules``) and every attribute read is forwarded to it. ``__spec__`` is
    None, so an ``import`` statement that finds it does not load it (a ``LazyLoader`` module would be loaded
    by the import system's own check of its spec)."""

    def __getattr__(self, attr: str):
        with _DEFER_LOCK:
            real = self.__dict__.get("_module")
            if real is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                real = self.__dict__["_module"] = importlib.import_module(self.__name__)
        return getattr(real, attr)


def defer_unused_gx_imports() -> list[str]:
    """Before great_expectations is first imported: stand-ins for :data:`DEFERRED_IMPORTS` not imported yet.
    Returns the names deferred."""
    if "great_expectations" in sys.modules:
        return []
    names = [n for n in DEFERRED_IMPORTS if n not in sys.modules]
    for name in names:
        sys.modules[name] = _Deferred(name)
    return names


def _context(out_dir: Path):
    """A file-backed context inside the build's report folder, so Data Docs can be built."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    defer_unused_gx_imports()
    import great_expectations as gx

    ctx = gx.get_context(mode="file", project_root_dir=str(out_dir))
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - progress bars are cosmetic
        pass
    return ctx


def _suite(ctx, name: str, expectations: list[dict]):
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=name)
    for cfg in expectations:
        suite.add_expectation_configuration(ExpectationConfiguration(type=cfg["type"], kwargs=cfg["kwargs"],
                                                                     meta=cfg.get("meta", {})))
    return ctx.suites.add(suite)


def _summary(r, table: str) -> dict:
    cfg = r.expectation_config
    res = r.result or {}
    return {"suite": (cfg.meta or {}).get("suite", table), "table": table, "expectation": cfg.type,
            "column": cfg.kwargs.get("column"), "success": bool(r.success), "unexpected_count": res.get("unexpected_count"),
            "element_count": res.get("element_count"),
            "exception": (r.exception_info or {}).get("exception_message") if not r.success else None}


def validate_frame(ctx, datasource, table: str, frame, expectations: list[dict], params: dict | None = None) -> list[dict]:
    """Validate one DataFrame against one suite named after the table; returns one summary per
    expectation (counts, no values), labelled with the suite file it came from (``meta.suite``)."""
    import great_expectations as gx

    definition = datasource.add_dataframe_asset(table).add_batch_definition_whole_dataframe("whole")
    suite = _suite(ctx, table, expectations)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=table, data=definition, suite=suite))
    result = vd.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT, expectation_parameters=params or {})
    return [_summary(r, table) for r in result.results]


def _labelled(expectations: list[dict], suite: str) -> list[dict]:
    return [{**e, "meta": {**e.get("meta", {}), "suite": suite}} for e in expectations]


def _failure(suite: str, table: str, expectation: str, column: str | None, why: str) -> dict:
    return {"suite": suite, "table": table, "expectation": expectation, "column": column, "success": False,
            "unexpected_count": None, "element_count": None, "exception": why}


def _table_expectations(con, catalog: str, table: str, marts: set[str]) -> tuple[list[dict], list[dict]]:
    """(expectations to run, failures found without running) for one table of the build."""
    text_cols = [r[0] for r in sqlf.run(con, CATALOG, "text_columns_of", {"database": catalog, "table": table}).fetchall()]
    expectations, failures = [], []
    if table in marts:
        expectations += _labelled(load_suite(table), table)
        for col in sorted(set(text_cols) - domain_columns(table)):
            failures.append(_failure(table, table, "column_has_domain", col,
                                     f"text column {table}.{col} has no closed domain in its suite (in_set or regex)"))
    else:
        failures.append(_failure("schema", table, "table_is_declared", None,
                                 f"table {table} has no suite in expectations/ (undocumented tables never ship)"))
    expectations += _labelled([_expand(t, c) for c in text_cols for t in load_suite(PII_SUITE)], PII_SUITE)
    return expectations, failures


def validate_build(con, catalog: str, out_dir: Path, params: dict) -> dict:
    """Run every mart suite and the PII suite on the tables of ``catalog`` (an attached DuckDB build), and
    build GX Data Docs into ``out_dir/gx/uncommitted/data_docs/local_site/index.html``.

    Each table is validated once, against its mart suite plus the PII templates for its text columns:
    one GX validation per table, one pandas data source for the build (GX's fixed cost is per
    validation and per data source, not per expectation)."""
    shutil.rmtree(out_dir / "gx", ignore_errors=True)  # a re-run of the gate on the same build starts afresh
    ctx = _context(out_dir)
    datasource = ctx.data_sources.add_pandas("build")
    tables = [r[0] for r in sqlf.run(con, CATALOG, "tables_in_order", {"database": catalog}).fetchall()]
    marts = set(declared_marts())
    results: list[dict] = []
    for table in tables:
        expectations, failures = _table_expectations(con, catalog, table, marts)
        results += failures
        if expectations:
            frame = con.execute(f'select * from {catalog}."{table}"').df()
            results += validate_frame(ctx, datasource, table, frame, expectations, params)
    for m in sorted(marts - set(tables)):
        results.append(_failure(m, m, "table_exists", None, f"documented mart {m} is missing"))
    failures = [r for r in results if not r["success"]]
    (out_dir / "gx_results.json").write_text(json.dumps(results, indent=2, default=str))
    docs = None
    try:
        ctx.build_data_docs()
        index = out_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        docs = str(index) if index.exists() else None
    except Exception as exc:  # noqa: BLE001 - Data Docs render gx_results.json; never let them hide a verdict
        log.warning("GX Data Docs could not be built: %s", type(exc).__name__)
    return {"success": not failures, "evaluated": len(results), "failed": len(failures), "failures": failures,
            "results_file": str(out_dir / "gx_results.json"), "data_docs": docs}
