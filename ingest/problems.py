"""Problems found in a transfer, each with a stable code and an archivist-readable message.

The codes and messages live in the project's one catalogue, ``archive/codes/*.toml`` (see
:mod:`archive.codes`), one file per stage (bag, unpack, metadata, identify, ingest). An entry gives the
severity, the Chinese and English message templates (``str.format`` fields filled from
:attr:`Problem.params`) and, where the check is one of the DA/T 70-2018 四性检测 items for receiving a
transfer, that item's code (e.g. ``"1-14"``) so a 四性检测 report can be built from the recorded events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from archive.codes import CodeInfo, Severity, catalogue, fill

__all__ = ["CodeInfo", "Problem", "Severity", "catalogue", "errors", "warnings"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a transfer."""

    code: str
    path: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in catalogue():
            raise KeyError(f"unknown problem code {self.code!r}; add it to archive/codes/")

    @property
    def info(self) -> CodeInfo:
        return catalogue()[self.code]

    @property
    def severity(self) -> Severity:
        return self.info.severity

    @property
    def dat(self) -> str | None:
        return self.info.dat

    def _fill(self, template: str) -> str:
        return fill(template, {"path": self.path or "", **self.params})

    @property
    def message_zh(self) -> str:
        return self._fill(self.info.zh)

    @property
    def message_en(self) -> str:
        return self._fill(self.info.en)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "path": self.path,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }
        if self.dat:
            out["dat_70_2018"] = self.dat
        if self.params:
            out["params"] = {k: str(v) for k, v in self.params.items()}
        return out

    def __str__(self) -> str:
        where = f" [{self.path}]" if self.path else ""
        return f"{self.code}{where}: {self.message_zh} / {self.message_en}"


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "warning"]
