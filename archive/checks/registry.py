"""The registry of 四性检测 checks (DA/T 70-2018), read from ``registry.toml`` beside this module.

Each :class:`CheckDef` names its DA/T 70 item code, its names (zh/en), the property it proves, the stages it
runs at, whether a machine or a person does it, the evidence kept, and whether the item number is
``uncertain`` (our reading of the standard, not confirmed against its text).
"""

from __future__ import annotations

import builtins
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal, cast

from archive.codes import catalogue

Property = Literal["authenticity", "integrity", "usability", "security"]
Stage = Literal["receipt", "preservation"]
Mode = Literal["automatic", "manual"]
PROPERTIES: tuple[Property, ...] = ("authenticity", "integrity", "usability", "security")
STAGES: tuple[Stage, ...] = ("receipt", "preservation")


@dataclass(frozen=True)
class CheckDef:
    code: str  # the DA/T 70-2018 item, e.g. "1-7"
    key: str  # the name the implementation is registered under, e.g. "archival_code_format"
    name_zh: str
    name_en: str
    property: Property
    stages: tuple[Stage, ...]
    mode: Mode
    evidence: str
    uncertain: bool = True
    blocking: bool = False
    ingest_codes: tuple[str, ...] = ()

    @builtins.property
    def automatic(self) -> bool:
        return self.mode == "automatic"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "key": self.key,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "property": self.property,
            "stages": list(self.stages),
            "mode": self.mode,
            "evidence": self.evidence,
            "uncertain": self.uncertain,
            "blocking": self.blocking,
        }


def _sort_key(code: str) -> tuple[int, ...]:
    return tuple(int(part) for part in code.split("-"))


@cache
def registry() -> Mapping[str, CheckDef]:
    """Every check by item code, in DA/T 70 order."""
    raw = tomllib.loads(resources.files(__package__).joinpath("registry.toml").read_text(encoding="utf-8"))
    checks: dict[str, CheckDef] = {}
    for code in sorted(raw, key=_sort_key):
        t = raw[code]
        if t["property"] not in PROPERTIES or t["mode"] not in ("automatic", "manual"):
            raise ValueError(f"registry.toml [{code}]: bad property or mode")
        if any(s not in STAGES for s in t["stages"]):
            raise ValueError(f"registry.toml [{code}]: bad stage")
        checks[code] = CheckDef(
            code=code,
            key=t["key"],
            name_zh=t["name_zh"],
            name_en=t["name_en"],
            property=cast("Property", t["property"]),
            stages=tuple(t["stages"]),
            mode=cast("Mode", t["mode"]),
            evidence=t["evidence"],
            uncertain=bool(t.get("uncertain", True)),
            blocking=bool(t.get("blocking", False)),
            ingest_codes=tuple(t.get("ingest_codes", ())),
        )
    return checks


def for_stage(stage: Stage) -> list[CheckDef]:
    """The checks that apply at ``stage``, in item order."""
    return [c for c in registry().values() if stage in c.stages]


def by_key(key: str) -> CheckDef:
    return next(c for c in registry().values() if c.key == key)


@cache
def item_of_problem() -> Mapping[str, str]:
    """Which item an ingest problem code belongs to: its ``dat`` field, else the registry's ``ingest_codes``."""
    mapping: dict[str, str] = {}
    for check in registry().values():
        for code in check.ingest_codes:
            mapping[code] = check.code
    for key, entry in catalogue().items():
        if entry.dat and entry.variant is None and entry.dat in registry():
            mapping[key] = entry.dat
    return mapping
