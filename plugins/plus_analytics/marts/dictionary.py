"""The analysts' data dictionary (``policy/data_dictionary.yaml``): every table and column of the published
analytics database with its definition. Written into each build as DuckDB ``COMMENT``s, so
``duckdb_tables()``, ``duckdb_columns()`` and SQL clients that read them show it, and rendered as the docs' data
dictionary table."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from plus_analytics.policy.files import POLICY_DIR, PolicyError, Strict, load_yaml
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import sql_string, table_columns, tables


class _Table(Strict):
    grain: str = Field(min_length=1)
    description: str = Field(min_length=1)
    columns: dict[str, str] = Field(min_length=1)


class _DictionaryFile(Strict):
    tables: dict[str, _Table] = Field(min_length=1)


@lru_cache(maxsize=1)
def load_dictionary() -> dict[str, _Table]:
    return load_yaml(POLICY_DIR / "data_dictionary.yaml", _DictionaryFile).tables


def describe_build(con) -> None:
    """Comment every table and column of the build (attached to ``con`` as ``build``) from the dictionary.
    A table or column the dictionary does not define, or one it defines that the build lacks, fails the
    build: the dictionary and the marts cannot drift apart."""
    spec = load_dictionary()
    built = {t: table_columns(con, "build", t) for t in tables(con, "build")}
    if set(built) != set(spec):
        raise PolicyError(f"data_dictionary.yaml and the build disagree on tables: undocumented "
                          f"{sorted(set(built) - set(spec))}, not built {sorted(set(spec) - set(built))}")
    for table, columns in built.items():
        if list(columns) != list(spec[table].columns):
            raise PolicyError(f"data_dictionary.yaml lists {table}'s columns as {list(spec[table].columns)}, "
                              f"the build has {list(columns)} (same names, same order)")
        con.execute(f"comment on table build.{sqlf.q(table)} is {sql_string(spec[table].description)}")
        for column, text in spec[table].columns.items():
            con.execute(f"comment on column build.{sqlf.q(table)}.{sqlf.q(column)} is {sql_string(text)}")


def dictionary_markdown() -> str:
    """The docs' data dictionary: one section per table, its grain, definition and columns."""
    out = []
    for table, spec in load_dictionary().items():
        out += [f"### `{table}`", "", f"{spec.description} Grain: {spec.grain}.", "", "| column | definition |",
                "|---|---|", *(f"| `{c}` | {text} |" for c, text in spec.columns.items()), ""]
    return "\n".join(out)
