"""The house rules: layers point one way with no import cycle, every declarative file is loaded strictly,
the README's tables are the policy files' own, settings come from one resolver."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plus_analytics.config import ConfigError, Paths, Settings
from plus_analytics.policy import policy_table_markdown
from plus_analytics.policy.files import PolicyError
from plus_analytics.policy.retention import retention_table_markdown
from tests import REPO_ROOT

LIBRARY = REPO_ROOT / "plugins" / "plus_analytics"


def test_no_import_cycle_between_modules():
    import grimp

    graph = grimp.build_graph("plus_analytics")
    modules = sorted(graph.modules)
    cycles = []
    for m in modules:
        for other in graph.find_modules_directly_imported_by(m):
            if other != m and graph.chain_exists(importer=other, imported=m):
                cycles.append((m, other))
    assert cycles == [], f"import cycles: {cycles[:5]}"


def test_layers_point_one_way():
    """The import-linter contract in pyproject.toml: configuration -> storage -> domain -> steps -> Airflow."""
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], capture_output=True, text=True,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout[-2000:]


def test_the_policy_reference_tables_are_the_policy_files():
    reference = (REPO_ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    assert policy_table_markdown() in reference, "docs/policy.md's policy table differs from sources.yaml: regenerate it"
    assert retention_table_markdown() in reference, "docs/policy.md's retention table differs from retention.yaml: regenerate it"


def test_the_data_dictionary_page_is_the_dictionary_file():
    from plus_analytics.marts.dictionary import dictionary_markdown

    page = (REPO_ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert dictionary_markdown() in page, "docs/data-dictionary.md differs from data_dictionary.yaml: regenerate it"


def test_every_relative_link_of_the_readme_resolves():
    """The README sits outside the docs site, so MkDocs does not check its links: this does."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links and [t for t in links if "://" not in t and not (REPO_ROOT / t).exists()] == []


def _models():
    from plus_analytics.marts.dictionary import _DictionaryFile
    from plus_analytics.policy import _PolicyFile, _UserAgentFile, _VocabularyFile
    from plus_analytics.policy.patterns import _PatternFile
    from plus_analytics.policy.retention import RetentionSpec

    return {"sources.yaml": _PolicyFile, "retention.yaml": RetentionSpec, "vocabularies.yaml": _VocabularyFile,
            "pii_patterns.yaml": _PatternFile, "user_agents.yaml": _UserAgentFile, "data_dictionary.yaml": _DictionaryFile}


@pytest.mark.parametrize("name,edit", [
    ("sources.yaml", lambda s: s.replace("    product: platform\n", "    product: platform\n    owner: someone\n", 1)),
    ("sources.yaml", lambda s: s.replace("rule: keep}", "rule: keep, colour: red}", 1)),
    ("retention.yaml", lambda s: s.replace("landing:\n  days: 30\n", "landing:\n  days: 30\n  dayz: 3\n")),
    ("retention.yaml", lambda s: s.replace("  why: task logs", "")),
    ("vocabularies.yaml", lambda s: s + "extra: 1\n"),
    ("pii_patterns.yaml", lambda s: s.replace("    confirm: email", "    confirm: email\n    flags: i", 1)),
    ("user_agents.yaml", lambda s: s.replace("operating_systems:", "operating_system:")),
    ("data_dictionary.yaml", lambda s: s.replace("    grain: day × channel\n", "    grains: day × channel\n")),
])
def test_declarative_files_refuse_unknown_or_missing_keys(tmp_path, name, edit):
    from plus_analytics.policy.files import load_yaml

    original = LIBRARY / "policy" / name
    load_yaml(original, _models()[name])  # as shipped: loads
    copy = tmp_path / name
    copy.write_text(edit(original.read_text()))
    assert copy.read_text() != original.read_text()
    with pytest.raises(PolicyError, match=name):
        load_yaml(copy, _models()[name])


def test_suites_are_loaded_strictly(tmp_path, monkeypatch):
    import json

    from plus_analytics.gate import suites

    shutil.copytree(REPO_ROOT / "expectations", tmp_path / "x")
    f = tmp_path / "x" / "mart_crm_activity.json"
    data = json.loads(f.read_text())
    data["expectations"][0]["kwarg"] = data["expectations"][0].pop("kwargs")
    f.write_text(json.dumps(data))
    monkeypatch.setattr(suites, "EXPECTATIONS_DIR", tmp_path / "x")
    with pytest.raises(PolicyError, match="kwarg"):
        suites.load_suite.__wrapped__("mart_crm_activity")


def test_a_kept_text_column_without_a_domain_does_not_load():
    from plus_analytics.policy import _column

    with pytest.raises(PolicyError, match="domain"):
        _column("c", {"type": "VARCHAR", "max_length": 40, "rule": "keep"}, "s")
    with pytest.raises(PolicyError, match="personal"):
        _column("c", {"type": "VARCHAR", "max_length": 40, "rule": "keep", "pattern": "[a-z ]{1,40}"}, "s")


def test_settings_fail_closed_and_name_what_is_missing():
    with pytest.raises(ConfigError, match="PLUS_ANALYTICS_HOME"):
        Paths.from_env({})
    with pytest.raises(ConfigError, match="PLUS_ANALYTICS_K"):
        Settings.from_env({"PLUS_ANALYTICS_K": "five"})
    with pytest.raises(ConfigError, match="PLUS_ANALYTICS_K"):
        Settings.from_env({"PLUS_ANALYTICS_K": "1"})
    assert Settings.from_env({}).k == 5
    with pytest.raises(ConfigError, match="PLUS_AIRFLOW_EXECUTOR"):
        Settings.from_env({"PLUS_AIRFLOW_EXECUTOR": "kubernetes"})
    with pytest.raises(ConfigError, match="PLUS_AIRFLOW_WORKERS"):
        Settings.from_env({"PLUS_AIRFLOW_WORKERS": "0"})
    assert (Settings.from_env({}).airflow_executor, Settings.from_env({}).airflow_workers) == ("local", 2)
    assert Settings.from_env({"PLUS_AIRFLOW_EXECUTOR": " Celery "}).airflow_executor == "celery"


def settings_read_outside_config(files) -> list[str]:
    """Places outside config.py that read or write a PLUS_* environment variable: through os.environ (an
    item, get, pop, setdefault) or os.getenv, named by a literal, an f-string or a constant of config.py."""
    import ast

    from plus_analytics import config

    constants = {n for n, v in vars(config).items() if isinstance(v, str) and v.startswith("PLUS_")}

    def plus_key(node) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str) and node.value.startswith("PLUS_")
        if isinstance(node, ast.JoinedStr):
            return bool(node.values) and plus_key(node.values[0])
        return (isinstance(node, ast.Name) and node.id in constants) or (isinstance(node, ast.Attribute) and node.attr in constants)

    def environ(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    found = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            key = None
            if isinstance(node, ast.Subscript) and environ(node.value):
                key = node.slice
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and (
                    (node.func.attr in ("get", "pop", "setdefault") and environ(node.func.value)) or node.func.attr == "getenv"):
                key = node.args[0]
            if key is not None and plus_key(key):
                found.append(f"{f.name}:{node.lineno}")
    return found


def test_the_pipelines_settings_are_read_in_one_module(tmp_path):
    """PLUS_* environment variables are read and written only by the resolver (config.py)."""
    library = [f for f in LIBRARY.rglob("*.py") if f.name != "config.py"]
    assert settings_read_outside_config(library) == []
    planted = tmp_path / "planted.py"
    for line in ('os.environ[HOME_VAR] = "x"', 'os.environ.get(config.HOME_VAR)', 'os.getenv("PLUS_ANALYTICS_K")',
                 'os.environ.pop(f"PLUS_{name}")'):
        planted.write_text(f"import os\n{line}\n")
        assert settings_read_outside_config([planted]) == ["planted.py:2"], line


#: What a module may still pass to DuckDB as a literal: transaction and session control, not queries.
SESSION_CONTROL = re.compile(r"^(begin transaction|commit|rollback|checkpoint \w+|detach \w+|drop (table|schema) \w+( cascade)?|"
                             r"create schema \w+|copy from database \w+ to \w+|set variable \w+ = \?|set TimeZone = 'UTC'|"
                             r"set force_compression = 'uncompressed')$")
#: Calls whose SQL argument is checked: (name, index of the SQL argument).
SQL_CALLS = {"execute": 0, "executemany": 0, "sql": 0, "scalar": 1, "with_frame": 3}


def static_sql_outside_sql_files(files) -> list[str]:
    """Statements a module writes out itself instead of taking from sql/: a string literal given to
    DuckDB that is more than session control, or any `use` (every table is named with its database:
    what a name means never depends on a session's current database)."""
    import ast

    found = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name not in SQL_CALLS or len(node.args) <= SQL_CALLS[name]:
                continue
            arg = node.args[SQL_CALLS[name]]
            text = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                if str(arg.values[0].value).lstrip().lower().startswith("use "):
                    found.append(f"{f.name}:{node.lineno}: use")
            elif text is not None and not SESSION_CONTROL.match(" ".join(text.split())):
                found.append(f"{f.name}:{node.lineno}: {text[:40]!r}")
    return found


def test_static_sql_lives_in_sql_files(tmp_path):
    """Every static statement, selects included, is a named query or file under sql/; modules only
    compile SQL from the policy (dynamic identifiers) and control sessions."""
    assert static_sql_outside_sql_files(LIBRARY.rglob("*.py")) == []
    planted = tmp_path / "planted.py"
    for line in ('con.execute("select count(*) from quarantine")', 'duck.scalar(con, "select 1")',
                 'with_frame(con, "_f", frame, "insert into t select * from _f")', 'con.execute(f"use {db}")',
                 'con.executemany("insert into _k values (?, ?)", rows)'):
        planted.write_text(line + "\n")
        assert len(static_sql_outside_sql_files([planted])) == 1, line


#: A zone's bookkeeping tables (as opposed to the source tables the policy names).
BOOKKEEPING = ("id_map", "pseudonyms", "quarantine", "ingest_log", "text_mentions", "erasure_evidence", "tombstones",
               "tombstone_subjects", "retention_evidence", "key_registry", "erasure_steps", "staging_version",
               "visitor_salt", "ua_map", "ingest_column_log", "meta_build_info", "erased_row_keys", "erasure_selected_over")


def test_modules_name_zone_tables_with_their_database():
    """SQL a module compiles from the policy names a zone's tables with their database too (``raw.id_map``,
    ``{RAW}.{src.raw_table}``), never bare: a bare name would mean a table of the session's empty
    in-memory database."""
    bookkeeping = "|".join(BOOKKEEPING + ("suppression_log", "retention_log", "outbox_copied"))
    bare = re.compile(rf"\b(?:from|join|into|update|table) +(?:(?:{bookkeeping})\b|\{{(?:src\.)?(?:raw_table|staging_table)\}})")
    offenders = [f"{f.relative_to(REPO_ROOT)}: {m.group(0)}" for f in LIBRARY.rglob("*.py") for m in bare.finditer(f.read_text())]
    assert offenders == [], offenders
    assert bare.search('f"left join id_map m on m.kind"') and bare.search('f"delete from {src.staging_table} where"')


def test_changes_to_bookkeeping_tables_live_in_sql_files():
    """No module changes a zone's bookkeeping tables from a Python string, f-strings included (SQL compiled
    from the policy writes source tables, never these)."""
    offenders = []
    for f in LIBRARY.rglob("*.py"):
        text = f.read_text()
        for m in re.finditer(r"(?:insert into|delete from|update)\s+(?:\w+\.)?(\w+)", text):
            if m.group(1) in BOOKKEEPING:
                offenders.append(f"{f.relative_to(REPO_ROOT)}: {m.group(0)}")
    assert offenders == [], offenders


#: Where SQL names a table: after these words (``table`` covers create, drop, alter and comment on).
TABLE_REFERENCE = re.compile(r"(?<![$\w])(from|join|into|update|table|using)\s+(?:if\s+(?:not\s+)?exists\s+)?([^\s,;()]+)(\()?",
                             re.IGNORECASE)
NOT_A_TABLE = {"select", "with", "values", "by", "on", "set", "table", "database", "lateral"}


def _sql_text(text: str) -> str:
    """SQL without comments and string literals, each template expression one token, and the FROMs that
    name no table (``extract(day from x)``, ``is distinct from``, ``copy from database``) taken out."""
    text = re.sub(r"--[^\n]*", "", text)
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    text = re.sub(r"\{\{\s*([^}]*?)\s*\}\}", lambda m: "{{" + re.sub(r"\W", "_", m.group(1)) + "}}", text)
    text = re.sub(r"\{%[^%]*%\}", " ", text)
    text = re.sub(r"\bextract\s*\(\s*\w+\s+from\b", "extract(", text, flags=re.IGNORECASE)
    return re.sub(r"\b(distinct|both|leading|trailing|copy)\s+from\b", " ", text, flags=re.IGNORECASE)


def unqualified_tables(files) -> list[str]:
    """Table names in SQL files that do not say their database: every table is named ``database.table``
    (``ledger.tombstones``, ``raw.{{ table }}``); only a session's own relations go bare: temporary tables
    the SQL creates, CTEs, and scratch names (``_name``: temporary tables and registered frames)."""
    texts = {f: _sql_text(f.read_text(encoding="utf-8")) for f in files}
    scratch = {n for t in texts.values() for n in re.findall(
        r"\bcreate\s+(?:or\s+replace\s+)?temp(?:orary)?\s+(?:table|macro|view)\s+(\w+)", t, re.IGNORECASE)}
    found = []
    for f, text in texts.items():
        ctes = set(re.findall(r"\b(\w+)\s+as\s+(?:not\s+)?(?:materialized\s+)?\(", text, re.IGNORECASE))
        for m in TABLE_REFERENCE.finditer(text):
            name = m.group(2)
            if m.group(3) or "." in name or name.startswith("_") or name.lower() in NOT_A_TABLE or name in scratch | ctes:
                continue
            found.append(f"{f.name}: {m.group(1)} {name}")
    return found


def test_every_table_is_named_with_its_database(tmp_path):
    """Sessions are in-memory databases with each zone file attached under its alias, so a bare name
    could only mean a table of nothing; the SQL says which database every table is in."""
    assert unqualified_tables(sorted((REPO_ROOT / "sql").rglob("*.sql"))) == []
    planted = tmp_path / "planted.sql"
    for sql in ("select * from tombstones", "insert into quarantine select 1", "delete from {{ table }} where x",
                "update id_map set a = 1", "create table if not exists pseudonyms (a int)",
                "select 1 from raw.id_map m join pseudonyms p on true"):
        planted.write_text(sql + "\n")
        assert len(unqualified_tables([planted])) == 1, sql
    for sql in ("select * from ledger.tombstones", "create temp table _x as select 1; select * from _x",
                "with t as (select 1) select * from t", "select extract(day from d) from raw.{{ table }}",
                "select * from read_json($f)", "select a is distinct from b from stg.x"):
        planted.write_text(sql + "\n")
        assert unqualified_tables([planted]) == [], sql
