"""How long each kind of data is kept: ``retention.yaml``, loaded strictly and checked against the policy."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field

from plus_analytics.policy import load_policy
from plus_analytics.policy.files import POLICY_DIR, PolicyError, Strict, load_yaml

RETENTION_FILE = POLICY_DIR / "retention.yaml"


class Period(Strict):
    days: int = Field(gt=0)
    why: str = Field(min_length=3)


class ColumnRule(Strict):
    table: str
    columns: tuple[str, ...] = Field(min_length=1)
    days: int = Field(gt=0)
    data: str = Field(min_length=3)


class RetentionSpec(Strict):
    landing: Period
    raw: dict[str, Period]
    raw_columns: tuple[ColumnRule, ...]
    quarantine: Period
    visitor_salt: Period
    staging: Period
    marts: Period
    reports: Period
    airflow_logs: Period


@lru_cache(maxsize=2)
def load_retention(path: str | None = None) -> RetentionSpec:
    spec = load_yaml(Path(path or RETENTION_FILE), RetentionSpec)
    policy = load_policy()
    missing, unknown = set(policy) - set(spec.raw), set(spec.raw) - set(policy)
    if missing or unknown:
        raise PolicyError(f"retention.yaml: raw must give a period for every source, and only for sources "
                          f"(missing {sorted(missing)}, unknown {sorted(unknown)})")
    for rule in spec.raw_columns:
        if rule.table not in policy:
            raise PolicyError(f"retention.yaml: raw_columns names an unknown source {rule.table!r}")
        for c in rule.columns:
            if c not in policy[rule.table].column_names:
                raise PolicyError(f"retention.yaml: {rule.table} has no column {c!r}")
    return spec


def retention_table_markdown() -> str:
    spec = load_retention()
    rows = ["| data | where | kept for | why |", "|---|---|---|---|",
            f"| landing files | landing/ | {spec.landing.days} days | {spec.landing.why} |"]
    for name, r in spec.raw.items():
        rows.append(f"| {name} rows | restricted zone | {r.days} days | {r.why} |")
    for r in spec.raw_columns:
        rows.append(f"| {r.data} ({', '.join(r.columns)} of {r.table}) | restricted zone | {r.days} days | nulled in kept rows |")
    for k in ("quarantine", "visitor_salt", "staging", "marts", "reports", "airflow_logs"):
        p = getattr(spec, k)
        rows.append(f"| {k.replace('_', ' ')} | {k} | {p.days} days | {p.why} |")
    return "\n".join(rows)
