"""SQL lives in ``sql/``; this renders it. Templates substitute identifiers only, values are bound."""

from __future__ import annotations

from functools import lru_cache

import jinja2

from plus_analytics.config import SQL_DIR


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SQL_DIR)), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )


def q(name: str) -> str:
    """Quote an identifier (column or table name) for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


def render(path: str, **context) -> str:
    return _env().get_template(path).render(**context)


def statements(sql: str) -> list[str]:
    """Split a file into statements on ';' at line ends (our SQL files keep one statement per ';\\n')."""
    return [s.strip() for s in sql.split(";\n") if s.strip() and not all(
        line.strip().startswith("--") or not line.strip() for line in s.strip().splitlines())]


def run_file(con, path: str, params: dict | None = None, **context) -> None:
    for stmt in statements(render(path, **context)):
        con.execute(stmt, params) if params and "$" in stmt else con.execute(stmt)
