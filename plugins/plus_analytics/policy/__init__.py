"""The declarative privacy policy: every source column, its type, validation, domain and privacy rule.

The YAML files beside this module are the single source of truth. Each is read by a strict loader
(:mod:`plus_analytics.policy.files`: an unknown or missing key fails loudly) into typed objects; this
module also refuses an inconsistent policy, and says what staging columns each rule produces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from plus_analytics.policy.files import POLICY_DIR, PolicyError, Strict, load_yaml

POLICY_FILE = POLICY_DIR / "sources.yaml"

RULES = ("keep", "pseudonymize", "generalize", "derive", "drop")
#: Identifier kinds: each has its own HKDF subkey, so pseudonyms of different kinds never link.
KINDS = (
    "account", "session", "email", "phone", "platform_user", "cookie", "device_ad_id", "customer",
    "national_id", "ip", "ip_prefix",
)
GENERALIZE = {"ip": ("country", "ip_prefix_pid"), "user_agent": ("device_type", "os_family", "browser_family")}
DERIVE = {"text": ("length_bucket", "language")}
TYPES = ("VARCHAR", "TIMESTAMP", "DATE", "BOOLEAN", "BIGINT", "DOUBLE")
PII = ("name", "secret", "free_text", "national_id", "address")
#: What erasure writes into a column that referenced an erased subject (e.g. the owning account of
#: someone else's CRM record). It is never learned as an identifier, so it pseudonymizes to NULL.
REDACTED = "erased"
#: The label of a late arrival kept with its references redacted (rather than dropped), in the evidence.
REFERENCES_REDACTED = "(references redacted)"
#: Values a published label may take besides its domain: a missing value, an unparseable one, and the
#: small-cell merge of the marts.
UNKNOWN, OTHER, MERGED = "unknown", "other", "(other)"
#: Text columns staging derives, and the closed set each may take (the gate checks marts against these).
LENGTH_BUCKETS = ((0, "empty"), (20, "1-20"), (100, "21-100"), (500, "101-500"))
DERIVED_DOMAINS = {
    "device_type": ("mobile", "tablet", "desktop", "bot", OTHER, UNKNOWN),
    "length_bucket": ("none", *(label for _, label in LENGTH_BUCKETS), "500+"),
    "language": ("th", "en", OTHER),
}
#: Probes every machine-identifier pattern must reject (checked at load): a pattern that admits one of
#: them could carry a person's name, address, e-mail, phone or free text into staging.
PATTERN_PROBES = ("a b", "somchai", "somchai@example.com", "สมชาย", "0812345678", "+66812345678", "1.2.3.4", "",
                  "Somchai Jaidee", "x" * 200)


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


# ------------------------------------------------------------------------------------------ file shapes

class _ColumnSpec(Strict):
    type: str
    rule: str
    required: bool = False
    max_length: int | None = Field(default=None, gt=0)
    kind: str | None = None
    how: str | None = None
    enum: tuple[str, ...] | None = None
    vocabulary: str | None = None
    pattern: str | None = None
    min: float | None = None
    pii: str | None = None


class _Parent(Strict):
    source: str
    key: str


class _Visitor(Strict):
    ip: str
    user_agent: str
    account: str


class _SourceSpec(Strict):
    product: Literal["platform", "connect", "crm", "adtech"]
    format: Literal["ndjson", "csv"]
    description: str
    event_time: str
    key: tuple[str, ...] = Field(min_length=1)
    subject: tuple[str, ...] | None = None
    parent: _Parent | None = None
    visitor: _Visitor | None = None
    change_ref: str | None = None
    columns: dict[str, _ColumnSpec] = Field(min_length=1)


class _PolicyFile(Strict):
    sources: dict[str, _SourceSpec] = Field(min_length=1)


class _VocabularyFile(Strict):
    vocabularies: dict[str, tuple[str, ...]]


class _UserAgentFile(Strict):
    browsers: tuple[str, ...] = Field(min_length=1)
    operating_systems: tuple[str, ...] = Field(min_length=1)


class _CountryFile(Strict):
    countries: tuple[str, ...] = Field(min_length=1)


# --------------------------------------------------------------------------------------------- objects

@dataclass(frozen=True)
class Domain:
    """The closed set of values a text column may take: ``values`` (enum or vocabulary) or a full-match
    ``pattern`` (machine identifiers)."""

    name: str
    values: tuple[str, ...] | None = None
    pattern: str | None = None
    #: How the README's policy table names it.
    label: str = ""

    def admits(self, value: str) -> bool:
        if self.values is not None:
            return value in self.values
        return re.fullmatch(self.pattern, value, flags=re.ASCII) is not None


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
    domain: Domain | None = None

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
    change_ref: str | None = None

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
    def quarantine_table(self) -> str:
        """Its lines that failed validation, with why (restricted: a line may hold personal values)."""
        from plus_analytics.storage.lake import QUARANTINE

        return QUARANTINE.table(self.name)

    @property
    def mentions_table(self) -> str:
        """Identifiers mentioned in its free text, by row (a source with free-text columns only)."""
        from plus_analytics.storage.lake import MENTIONS

        return MENTIONS.table(self.name)

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

    @property
    def reference_columns(self) -> tuple[Column, ...]:
        """Identifier columns that name a person in someone else's row (a CRM record's owning account):
        erasure redacts them, in the rows it keeps and in late arrivals."""
        return tuple(c for c in self.identifier_columns if c.name not in self.subject and c.rule != "drop")

    def staging_columns(self) -> tuple[str, ...]:
        out: list[str] = ["_dt"]
        for c in self.columns:
            out.extend(c.staging_columns())
        if self.visitor:
            out.append("visitor_hash")
        out.append("key_version")
        return tuple(out)

    @property
    def change_ref_column(self) -> str | None:
        """The staging column the change log records beside a changed row's day (see ``change_ref``)."""
        if self.change_ref is None:
            return None
        cols = self.column(self.change_ref).staging_columns()
        return cols[0]

    def check_columns(self, landed: list[str] | set[str]) -> None:
        extra = set(landed) - set(self.column_names)
        if extra:
            raise UndeclaredColumnError(self.name, list(extra))


# ----------------------------------------------------------------------------------------- vocabularies

@lru_cache(maxsize=1)
def vocabularies() -> dict[str, tuple[str, ...]]:
    spec = load_yaml(POLICY_DIR / "vocabularies.yaml", _VocabularyFile)
    for name, values in spec.vocabularies.items():
        if not values or len(set(values)) != len(values):
            raise PolicyError(f"vocabularies.yaml: {name} must list distinct values")
    return dict(spec.vocabularies)


@lru_cache(maxsize=1)
def user_agent_families() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(browser families, OS families) that may be published; everything else is ``other``."""
    spec = load_yaml(POLICY_DIR / "user_agents.yaml", _UserAgentFile)
    return spec.browsers, spec.operating_systems


@lru_cache(maxsize=1)
def countries() -> tuple[str, ...]:
    spec = load_yaml(POLICY_DIR / "countries.yaml", _CountryFile)
    bad = [c for c in spec.countries if not re.fullmatch("[A-Z]{2}", c)]
    if bad or len(spec.countries) != 249:
        raise PolicyError(f"countries.yaml must list the 249 ISO 3166-1 alpha-2 codes (bad or missing: {bad[:5]})")
    return spec.countries


def generated_domains() -> dict[str, Domain]:
    """The domain of every text column staging derives (what generalization and derivation produce)."""
    browsers, systems = user_agent_families()
    return {
        "country": Domain("ISO 3166-1 alpha-2", (*countries(), UNKNOWN)),
        "device_type": Domain("device types", DERIVED_DOMAINS["device_type"]),
        "os_family": Domain("operating systems (user_agents.yaml)", (*systems, OTHER, UNKNOWN)),
        "browser_family": Domain("browsers (user_agents.yaml)", (*browsers, OTHER, UNKNOWN)),
        "length_bucket": Domain("length buckets", DERIVED_DOMAINS["length_bucket"]),
        "language": Domain("languages", DERIVED_DOMAINS["language"]),
    }


def _domain(spec: _ColumnSpec, where: str) -> Domain | None:
    given = [k for k in ("enum", "vocabulary", "pattern") if getattr(spec, k) is not None]
    if len(given) > 1:
        raise PolicyError(f"{where}: give one domain (enum, vocabulary or pattern), not {given}")
    if spec.enum is not None:
        return Domain(f"the values allowed for {where.split('.')[-1]}", tuple(spec.enum),
                      label="enum: " + ", ".join(spec.enum))
    if spec.vocabulary is not None:
        if spec.vocabulary not in vocabularies():
            raise PolicyError(f"{where}: unknown vocabulary {spec.vocabulary!r} (vocabularies.yaml has "
                              f"{sorted(vocabularies())})")
        return Domain(f"the {spec.vocabulary} vocabulary", vocabularies()[spec.vocabulary],
                      label=f"vocabulary `{spec.vocabulary}` ({len(vocabularies()[spec.vocabulary])} values)")
    if spec.pattern is not None:
        try:
            re.compile(spec.pattern)
        except re.error as exc:
            raise PolicyError(f"{where}: pattern does not compile ({exc})") from None
        admitted = [p for p in PATTERN_PROBES if re.fullmatch(spec.pattern, p, flags=re.ASCII)]
        if admitted or not spec.pattern.isascii():
            raise PolicyError(f"{where}: pattern {spec.pattern!r} admits text that could be personal "
                              f"({len(admitted)} probe(s) such as a name, e-mail or phone match): make it strict")
        return Domain(f"the {where.split('.')[-1]} format", pattern=spec.pattern, label=f"pattern `{spec.pattern}`")
    return None


def _column(name: str, spec: dict | _ColumnSpec, source: str) -> Column:
    if isinstance(spec, dict):
        spec = _ColumnSpec.parse(spec, f"{source}.{name}")
    where = f"{source}.{name}"
    col = Column(
        name=name, type=spec.type.upper(), rule=spec.rule, required=spec.required, max_length=spec.max_length,
        kind=spec.kind, how=spec.how, enum=tuple(spec.enum) if spec.enum else None, min=spec.min, pii=spec.pii,
        domain=_domain(spec, where),
    )
    if col.rule not in RULES:
        raise PolicyError(f"{where}: rule must be one of {RULES}, got {col.rule!r}")
    if not (col.type in TYPES or re.fullmatch(r"DECIMAL\(\d+,\d+\)", col.type)):
        raise PolicyError(f"{where}: unsupported type {col.type!r}")
    if col.kind is not None and col.kind not in KINDS:
        raise PolicyError(f"{where}: unknown identifier kind {col.kind!r}")
    if col.pii is not None and col.pii not in PII:
        raise PolicyError(f"{where}: pii must be one of {PII}, got {col.pii!r}")
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
    if col.rule == "keep" and col.type == "VARCHAR" and col.domain is None:
        raise PolicyError(f"{where}: a kept text column needs a domain (enum, vocabulary or pattern): free text "
                          f"must never reach staging")
    return col


def _source(name: str, spec: _SourceSpec) -> Source:
    cols = tuple(_column(c, s, name) for c, s in spec.columns.items())
    src = Source(
        name=name, product=spec.product, format=spec.format, description=spec.description,
        event_time=spec.event_time, columns=cols, key=tuple(spec.key),
        visitor=spec.visitor.model_dump() if spec.visitor else None, subject=tuple(spec.subject or ()),
        parent=spec.parent.model_dump() if spec.parent else None, change_ref=spec.change_ref,
    )
    if src.event_time not in src.column_names:
        raise PolicyError(f"{name}: event_time {src.event_time!r} is not a column")
    if src.change_ref is not None and (src.change_ref not in src.column_names
                                       or len(src.column(src.change_ref).staging_columns()) != 1):
        raise PolicyError(f"{name}: change_ref {src.change_ref!r} must be a column that reaches staging as one column")
    if set(src.key) - set(src.column_names):
        raise PolicyError(f"{name}: key must name columns")
    for col in src.subject:
        if col not in src.column_names or not src.column(col).kind:
            raise PolicyError(f"{name}: subject column {col!r} must be an identifier column (with a kind)")
    if spec.subject is None and spec.parent is None:
        raise PolicyError(f"{name}: declare subject (possibly []) or parent, so erasure knows whose rows these are")
    if src.visitor:
        for role, col in src.visitor.items():
            if col not in src.column_names:
                raise PolicyError(f"{name}: visitor.{role} must name a column")
    return src


@lru_cache(maxsize=4)
def load_policy(path: str | None = None) -> dict[str, Source]:
    spec = load_yaml(Path(path or POLICY_FILE), _PolicyFile)
    sources = {name: _source(name, s) for name, s in spec.sources.items()}
    for src in sources.values():
        if src.parent and (src.parent["source"] not in sources
                           or src.parent["key"] not in sources[src.parent["source"]].column_names):
            raise PolicyError(f"{src.name}: parent must name a source and one of its columns")
        if src.parent:
            parent, key = sources[src.parent["source"]], src.parent["key"]
            if parent.key != (key,) or parent.column(key).rule != "keep":
                raise PolicyError(f"{src.name}: parent.key must be {parent.name}'s whole key, kept as it is (an erased "
                                  f"{parent.name} row is recorded by it, and its late children recognised by it)")
    return sources


def has_children(src: Source) -> bool:
    """Whether another source's rows belong to ``src``'s rows (``parent``)."""
    return any(s.parent and s.parent["source"] == src.name for s in load_policy().values())


def source(name: str) -> Source:
    try:
        return load_policy()[name]
    except KeyError:
        raise PolicyError(f"unknown source {name!r}") from None


def present_sources(con) -> list[Source]:
    """The sources whose rows the session's restricted zone holds (``lake.raw_<source>``)."""
    from plus_analytics.storage.lake import present

    have = present(con)
    return [s for s in load_policy().values() if s.raw_table in have]


def product_sources() -> dict[str, tuple[str, ...]]:
    """The sources of each product (one ingest DAG per product), as sources.yaml declares them, in its order."""
    out: dict[str, tuple[str, ...]] = {}
    for s in load_policy().values():
        out[s.product] = (*out.get(s.product, ()), s.name)
    return out


def _domain_label(c: Column) -> str:
    if c.rule == "keep" and c.domain is not None:
        return c.domain.label
    if c.rule == "generalize" and c.how == "ip":
        return "country: ISO 3166-1 alpha-2 or unknown"
    if c.rule == "generalize":
        return "device type (5 values), OS and browser families from user_agents.yaml, else other"
    if c.rule == "derive":
        return "length bucket (6 values), language th/en/other"
    return ""


def policy_table_markdown() -> str:
    """The policy as the README's table: source, column, rule, what reaches staging, its domain."""
    lines = ["| source | column | rule | reaches staging as | domain (text) |", "|---|---|---|---|---|"]
    for src in load_policy().values():
        for c in src.columns:
            rule = c.rule + (f"({c.kind})" if c.rule == "pseudonymize" else f"({c.how})" if c.how else "")
            out = ", ".join(c.staging_columns()) or "— (restricted zone only)"
            lines.append(f"| {src.name} | {c.name} | {rule} | {out} | {_domain_label(c)} |")
        if src.visitor:
            lines.append(f"| {src.name} | *(ip, user agent, {src.visitor['account']})* | derive(visitor) | "
                         f"visitor_hash (daily salt) | |")
    return "\n".join(lines)
