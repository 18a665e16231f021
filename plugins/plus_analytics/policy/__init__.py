"""The declarative privacy policy: every source column, its type, validation and privacy rule.

The YAML beside this module is the single source of truth. This module loads it into typed objects,
refuses an inconsistent policy, and says what staging columns each rule produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

POLICY_FILE = Path(__file__).resolve().parent / "sources.yaml"

RULES = ("keep", "pseudonymize", "generalize", "derive", "drop")
#: Identifier kinds: each has its own HKDF subkey, so pseudonyms of different kinds never link.
KINDS = (
    "account", "session", "email", "phone", "platform_user", "cookie", "device_ad_id", "customer",
    "national_id", "ip", "ip_prefix",
)
GENERALIZE = {"ip": ("country", "ip_prefix_pid"), "user_agent": ("device_type", "os_family", "browser_family")}
DERIVE = {"text": ("length_bucket", "language")}
TYPES = ("VARCHAR", "TIMESTAMP", "DATE", "BOOLEAN", "BIGINT", "DOUBLE")
#: What erasure writes into a column that referenced an erased subject (e.g. the owning account of
#: someone else's CRM record). It is never learned as an identifier, so it pseudonymizes to NULL.
REDACTED = "erased"


class PolicyError(ValueError):
    """The policy file is inconsistent, or data does not match it (fail closed)."""


class UndeclaredColumnError(PolicyError):
    """A landed column has no privacy rule: the run stops rather than guess."""

    def __init__(self, source: str, columns: list[str]):
        self.source = source
        self.columns = sorted(columns)
        super().__init__(
            f"source {source!r} has column(s) with no declared privacy rule: {', '.join(self.columns)}. "
            f"Declare each in plus_analytics/policy/sources.yaml (keep, pseudonymize, generalize, derive "
            f"or drop) before this data can be ingested."
        )


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    rule: str
    required: bool = False
    max_length: int | None = None
    kind: str | None = None
    how: str | None = None
    enum: tuple[str, ...] | None = None
    min: float | None = None
    pii: str | None = None

    @property
    def pid_name(self) -> str:
        base = self.name[:-3] if self.name.endswith("_id") else self.name
        return f"{base}_pid"

    def staging_columns(self) -> tuple[str, ...]:
        """Names this column contributes to the staging table (none for drop)."""
        if self.rule == "keep":
            return (self.name,)
        if self.rule == "pseudonymize":
            return (self.pid_name,)
        if self.rule == "generalize":
            return GENERALIZE[self.how]
        if self.rule == "derive":
            return tuple(f"{self.name}_{d}" for d in DERIVE[self.how])
        return ()


@dataclass(frozen=True)
class Source:
    name: str
    product: str
    format: str
    description: str
    event_time: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    visitor: dict | None = None
    subject: tuple[str, ...] = ()
    parent: dict | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def raw_table(self) -> str:
        return f"raw_{self.name}"

    @property
    def staging_table(self) -> str:
        return f"stg_{self.name}"

    @property
    def free_text_columns(self) -> tuple[Column, ...]:
        """Columns whose text may mention identifiers of anyone (messages, notes)."""
        return tuple(c for c in self.columns if c.pii == "free_text")

    @property
    def identifier_columns(self) -> tuple[Column, ...]:
        """Columns normalized at ingest (they carry a kind)."""
        return tuple(c for c in self.columns if c.kind)

    def staging_columns(self) -> tuple[str, ...]:
        out: list[str] = ["_dt"]
        for c in self.columns:
            out.extend(c.staging_columns())
        if self.visitor:
            out.append("visitor_hash")
        out.append("key_version")
        return tuple(out)

    def check_columns(self, landed: list[str] | set[str]) -> None:
        extra = set(landed) - set(self.column_names)
        if extra:
            raise UndeclaredColumnError(self.name, list(extra))


def _column(name: str, spec: dict, source: str) -> Column:
    unknown = set(spec) - {"type", "rule", "required", "max_length", "kind", "how", "enum", "min", "pii"}
    if unknown:
        raise PolicyError(f"{source}.{name}: unknown policy keys {sorted(unknown)}")
    col = Column(
        name=name,
        type=str(spec.get("type", "")).upper(),
        rule=spec.get("rule", ""),
        required=bool(spec.get("required", False)),
        max_length=spec.get("max_length"),
        kind=spec.get("kind"),
        how=spec.get("how"),
        enum=tuple(spec["enum"]) if spec.get("enum") else None,
        min=spec.get("min"),
        pii=spec.get("pii"),
    )
    where = f"{source}.{name}"
    if col.rule not in RULES:
        raise PolicyError(f"{where}: rule must be one of {RULES}, got {col.rule!r}")
    if not (col.type in TYPES or col.type.startswith("DECIMAL(")):
        raise PolicyError(f"{where}: unsupported type {col.type!r}")
    if col.kind is not None and col.kind not in KINDS:
        raise PolicyError(f"{where}: unknown identifier kind {col.kind!r}")
    if col.rule == "pseudonymize" and not col.kind:
        raise PolicyError(f"{where}: pseudonymize needs a kind")
    if col.rule == "generalize" and col.how not in GENERALIZE:
        raise PolicyError(f"{where}: generalize needs how in {sorted(GENERALIZE)}")
    if col.rule == "derive" and col.how not in DERIVE:
        raise PolicyError(f"{where}: derive needs how in {sorted(DERIVE)}")
    if col.rule == "keep" and (col.kind or col.pii):
        raise PolicyError(f"{where}: a personal column (kind/pii) cannot be kept as is")
    if col.type == "VARCHAR" and col.max_length is None and col.enum is None:
        raise PolicyError(f"{where}: a text column needs max_length or enum (oversized values quarantine)")
    return col


@lru_cache(maxsize=4)
def load_policy(path: str | None = None) -> dict[str, Source]:
    raw = yaml.safe_load(Path(path or POLICY_FILE).read_text(encoding="utf-8"))
    sources: dict[str, Source] = {}
    for name, spec in raw["sources"].items():
        cols = tuple(_column(c, s, name) for c, s in spec["columns"].items())
        src = Source(
            name=name,
            product=spec["product"],
            format=spec["format"],
            description=spec.get("description", ""),
            event_time=spec["event_time"],
            columns=cols,
            key=tuple(spec["key"]),
            visitor=spec.get("visitor"),
            subject=tuple(spec.get("subject") or ()),
            parent=spec.get("parent"),
        )
        if src.format not in ("ndjson", "csv"):
            raise PolicyError(f"{name}: format must be ndjson or csv")
        if src.event_time not in src.column_names:
            raise PolicyError(f"{name}: event_time {src.event_time!r} is not a column")
        if not src.key or set(src.key) - set(src.column_names):
            raise PolicyError(f"{name}: key must name columns")
        for col in src.subject:
            if col not in src.column_names or not src.column(col).kind:
                raise PolicyError(f"{name}: subject column {col!r} must be an identifier column (with a kind)")
        if "subject" not in spec and "parent" not in spec:
            raise PolicyError(f"{name}: declare subject (possibly []) or parent, so erasure knows whose rows these are")
        if src.visitor:
            for role in ("ip", "user_agent", "account"):
                if src.visitor.get(role) not in src.column_names:
                    raise PolicyError(f"{name}: visitor.{role} must name a column")
        sources[name] = src
    return sources


def source(name: str) -> Source:
    try:
        return load_policy()[name]
    except KeyError:
        raise PolicyError(f"unknown source {name!r}") from None


PRODUCT_SOURCES = {
    "platform": ("platform_accounts", "platform_usage_events", "platform_consent"),
    "connect": ("connect_conversations", "connect_messages"),
    "crm": ("crm_customers", "crm_activities", "crm_deals"),
    "adtech": ("adtech_campaigns", "adtech_performance", "adtech_interactions"),
}


def policy_table_markdown() -> str:
    """The policy as the README's table: source, column, rule, what reaches staging."""
    lines = ["| source | column | rule | reaches staging as |", "|---|---|---|---|"]
    for src in load_policy().values():
        for c in src.columns:
            rule = c.rule + (f"({c.kind})" if c.rule == "pseudonymize" else f"({c.how})" if c.how else "")
            out = ", ".join(c.staging_columns()) or "— (restricted zone only)"
            lines.append(f"| {src.name} | {c.name} | {rule} | {out} |")
        if src.visitor:
            lines.append(f"| {src.name} | *(ip, user agent, {src.visitor['account']})* | derive(visitor) | visitor_hash (daily salt) |")
    return "\n".join(lines)
