"""SQL lives in ``sql/``; this renders it. Templates substitute identifiers only (quoted with :func:`q`),
values are always bound as parameters."""

from __future__ import annotations

import re
from functools import lru_cache

import jinja2

from plus_analytics.config import SQL_DIR


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(SQL_DIR)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters["q"] = q
    return env


def q(name: str) -> str:
    """Quote an identifier (column or table name) for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


@lru_cache(maxsize=256)
def _static(path: str) -> str:
    return (SQL_DIR / path).read_text(encoding="utf-8")


def render(path: str, **context) -> str:
    """The text of ``sql/<path>``: rendered as a template when given identifiers, else as written."""
    return _env().get_template(path).render(**context) if context else _static(path)


def statements(sql: str) -> list[str]:
    """Split a file into statements on ';' at line ends (our SQL files keep one statement per ';\\n')."""
    return [s.strip() for s in sql.split(";\n") if s.strip() and not all(
        line.strip().startswith("--") or not line.strip() for line in s.strip().splitlines())]


def bound(sql: str, params: dict | None) -> dict:
    """The ``params`` a statement uses (DuckDB refuses a named parameter the statement does not have)."""
    return {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", sql)}


def run_file(con, path: str, params: dict | None = None, **context) -> None:
    """Run every statement of ``sql/<path>``; ``params`` are bound into the statements that use them."""
    for stmt in statements(render(path, **context)):
        used = bound(stmt, params)
        con.execute(stmt, used) if used else con.execute(stmt)


@lru_cache(maxsize=64)
def _blocks(path: str) -> dict[str, str]:
    """The named queries of a file: each starts at a line ``-- name: <name>`` and runs to the next."""
    out: dict[str, str] = {}
    name = None
    for line in _static(path).splitlines(keepends=True):
        m = re.match(r"--\s*name:\s*([a-z0-9_]+)\s*$", line)
        if m:
            name = m.group(1)
            if name in out:
                raise ValueError(f"sql/{path}: query {name!r} is defined twice")
            out[name] = ""
        elif name is not None:
            out[name] += line
    return {k: v.strip().rstrip(";") for k, v in out.items()}


@lru_cache(maxsize=512)
def _template(path: str, name: str) -> jinja2.Template:
    try:
        return _env().from_string(_blocks(path)[name])
    except KeyError:
        raise KeyError(f"sql/{path} has no query named {name!r}") from None


def named(path: str, name: str, **context) -> str:
    """Query ``name`` of ``sql/<path>`` (a file of named queries), rendered with identifiers ``context``."""
    return _template(path, name).render(**context)


def run(con, path: str, name: str, params=None, **context):
    """Run named query ``name`` of ``sql/<path>`` with ``params`` bound; returns the cursor."""
    return con.execute(named(path, name, **context), params or {})
