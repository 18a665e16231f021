"""Strict loading of the declarative files (policy, retention, vocabularies, GX suites).

Each file has a pydantic model that forbids unknown keys and requires the ones that matter, so a typo or
a misplaced line fails loudly with the file and the key named, instead of being parsed as a stray key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from plus_analytics.config import POLICY_DIR

__all__ = ["POLICY_DIR", "PolicyError", "Strict", "load_json", "load_yaml"]


class PolicyError(ValueError):
    """A declarative file is inconsistent, or data does not match it (fail closed)."""


class Strict(BaseModel):
    """A file section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, data, where: str):
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(f"{where}: {_explain(exc)}") from None


M = TypeVar("M", bound=Strict)


def _explain(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg'].lower()}")
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def load_yaml(path: Path, model: type[M]) -> M:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(f"{Path(path).name} is not valid YAML: {exc}") from None
    return model.parse(data, Path(path).name)


def load_json(path: Path, model: type[M]) -> M:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PolicyError(f"{Path(path).name} is not valid JSON: {exc}") from None
    return model.parse(data, Path(path).name)
