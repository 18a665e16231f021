"""Validating a batch's candidate rows against the policy, set-wise inside DuckDB (temp ``_cand`` to
``_checked``): per column, the first problem (missing, wrong type, too long, outside its domain, below
its minimum, an identifier that does not normalize); per row, the reason joining them; then duplicate
keys. Policy values (limits, enums, vocabularies, patterns) are bound as parameters, never pasted.
"""

from __future__ import annotations

from plus_analytics.policy import Column, Source
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import sql_string
from plus_analytics.storage.sql import q

SQL = "ingest/ingest.sql"


def typed_expr(c: Column) -> str:
    v = q("v_" + c.name)
    if c.type == "VARCHAR":
        return v
    if c.type == "TIMESTAMP":
        return f"(try_cast({v} as timestamptz) at time zone 'UTC')"
    return f"try_cast({v} as {c.type})"


def exact_form(column_type: str) -> str | None:
    """The exact textual form a value of ``column_type`` must have (a regular expression, matched whole), or
    None for text. DuckDB's casts are lenient (``12.5`` into an integer rounds to 13, ``0x1F`` is 31, ``1e3``
    is 1000, surrounding spaces are trimmed): a value that is not written exactly as its column declares is
    quarantined, never altered. Calendar validity (no 30 February) and range are checked by the cast after."""
    if column_type == "BIGINT":
        return r"-?(0|[1-9][0-9]*)"
    if column_type.startswith("DECIMAL("):
        precision, scale = (int(x) for x in column_type[len("DECIMAL("):-1].split(","))
        whole = f"(0|[1-9][0-9]{{0,{precision - scale - 1}}})"
        return f"-?{whole}(\\.[0-9]{{1,{scale}}})?" if scale else f"-?{whole}"
    if column_type == "DOUBLE":
        return r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
    if column_type == "DATE":
        return r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    if column_type == "TIMESTAMP":
        return r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
    if column_type == "BOOLEAN":
        return r"true|false"
    return None


def _allowed_json_types(c: Column) -> tuple[str, ...]:
    if c.type in ("VARCHAR", "TIMESTAMP", "DATE"):
        return ("VARCHAR",)
    if c.type == "BOOLEAN":
        return ("BOOLEAN",)
    if c.type == "BIGINT":
        return ("BIGINT", "UBIGINT")
    return ("BIGINT", "UBIGINT", "DOUBLE")  # DECIMAL, DOUBLE


def check_expr(c: Column, fmt: str, params: dict) -> str:
    """One CASE for column ``c`` yielding its first problem, or NULL; adds its bound values to ``params``."""
    t, v, typed, name = q("t_" + c.name), q("v_" + c.name), typed_expr(c), c.name
    p = f"p{len(params)}_"
    wrong_type = f"'wrong type for {name}: expected {c.type}'"
    missing = f"{t} is null or {t} = 'NULL'"
    branches = [(missing, f"'missing required field: {name}'" if c.required else "null")]
    if fmt == "ndjson":
        params[p + "json"] = list(_allowed_json_types(c))
        branches.append((f"not list_contains(${p}json, {t})", wrong_type))
    form = exact_form(c.type)
    if form is not None:
        params[p + "form"] = form
        branches.append((f"not regexp_full_match({v}, ${p}form)", wrong_type))
    branches.append((f"{typed} is null", wrong_type))
    if c.max_length:
        params[p + "len"] = int(c.max_length)
        branches.append((f"length({v}) > ${p}len", f"'value too long for {name}: over {int(c.max_length)} characters'"))
    if c.enum:
        params[p + "enum"] = list(c.enum)
        branches.append((f"not list_contains(${p}enum, {v})", f"'value not allowed for {name}'"))
    elif c.domain is not None and c.domain.values is not None:
        params[p + "vocab"] = list(c.domain.values)
        branches.append((f"not list_contains(${p}vocab, {v})", sql_string(f"value not in {c.domain.name} for {name}")))
    elif c.domain is not None and c.domain.pattern is not None:
        params[p + "pattern"] = c.domain.pattern
        branches.append((f"not regexp_full_match({v}, ${p}pattern)", sql_string(f"value does not match {c.domain.name}")))
    if c.min is not None:
        params[p + "min"] = c.min
        branches.append((f"{typed} < ${p}min", f"'value below minimum for {name}'"))
    if c.kind:
        m = q("m_" + name)
        branches.append((f"{m}.error is not null", f"'invalid {c.kind} in {name}: ' || {m}.error"))
    whens = " ".join(f"when {cond} then {res}" for cond, res in branches)
    return f"case {whens} end"


def validate(con, src: Source) -> None:
    """``_checked``: every candidate with its reason (NULL when the row is valid) and its typed values,
    identifiers judged by the batch's dictionary (``_ids``); keys repeated within the batch are duplicates
    (against the days already loaded: :func:`validate_against_loaded`)."""
    params: dict = {}
    checks = ", ".join(f"{check_expr(c, src.format, params)} as {q('_chk_' + c.name)}" for c in src.columns)
    typed = ", ".join(f"{typed_expr(c)} as {q(c.name)}" for c in src.columns)
    joins = "\n".join(
        f"left join _ids {q('m_' + c.name)} on {q('m_' + c.name)}.kind = {sql_string(c.kind)} "
        f"and {q('m_' + c.name)}.raw_value = c.{q('v_' + c.name)}"
        for c in src.columns if c.kind)
    problems = ", ".join(q("_chk_" + c.name) for c in src.columns)
    sqlf.run(con, SQL, "checked", params, checks=checks, typed=typed, joins=joins, problems=problems)
    key = ", ".join(q(k) for k in src.key)
    reasons = _duplicate_reasons(src)
    sqlf.run(con, SQL, "duplicates_in_batch", reasons, key=key)


def validate_against_loaded(con, src: Source) -> None:
    """Keys of ``_checked`` already loaded on an earlier day outside the batch are duplicates (the source's
    table read, so with the restricted zone attached)."""
    sqlf.run(con, SQL, "duplicates_loaded", {"earlier": _duplicate_reasons(src)["earlier"]}, raw_table=src.raw_table,
             key_match=" and ".join(f"c.{q(k)} = e.{q(k)}" for k in src.key))


def _duplicate_reasons(src: Source) -> dict[str, str]:
    names = ", ".join(src.key)
    return {"within": f"duplicate key ({names}) within the delivery",
            "earlier": f"duplicate key ({names}): delivered on an earlier day"}


def column_problem_pairs(src: Source) -> str:
    """(column, its problem) structs of a ``_checked`` row, for the per-column quality log."""
    return ", ".join(f"{{'col': {sql_string(c.name)}, 'problem': {q('_chk_' + c.name)}}}" for c in src.columns)
