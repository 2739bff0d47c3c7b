"""Problems found in a transfer, each with a stable code and an archivist-readable message.

The codes and messages live in the project's one catalogue, ``archive/codes/*.toml`` (see
:mod:`archive.codes`), one file per stage (bag, unpack, metadata, identify, ingest). An entry gives the
severity, the Chinese and English message templates (``str.format`` fields filled from
:attr:`Problem.params`) and, where the check is one of the DA/T 70-2018 四性检测 items for receiving a
transfer, that item's code (e.g. ``"1-14"``) so a 四性检测 report can be built from the recorded events.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive.codes import CodeInfo, Severity, catalogue, fill, more_problems

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


def summarise(problems: Sequence[Problem], shown: int, file: Path | None = None) -> dict[str, Any]:
    """A bounded account of ``problems``: the first ``shown`` of each code (``errors``, ``warnings``, as
    dicts), the count of every code (``counts``), for each code with more than that how many more (``more``,
    with a zh/en sentence) and the file that holds them all (``file``). Its size does not grow with the
    number of problems, only with the number of distinct codes."""
    counts = Counter(p.code for p in problems)
    seen: Counter[str] = Counter()
    shown_errors: list[dict[str, Any]] = []
    shown_warnings: list[dict[str, Any]] = []
    for p in problems:
        seen[p.code] += 1
        if seen[p.code] <= shown:
            (shown_errors if p.severity == "error" else shown_warnings).append(p.as_dict())
    where = str(file) if file else None
    return {
        "errors": shown_errors,
        "warnings": shown_warnings,
        "counts": dict(sorted(counts.items())),
        "more": more_problems(counts, {c: min(n, shown) for c, n in counts.items()}, where),
        "total": len(problems),
        "file": where,
    }


def write_problem_file(path: Path, problems: Iterable[Problem]) -> Path:
    """Write every problem as one JSON object per line (``problems.jsonl``); replaced in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for p in problems:
            fh.write(json.dumps(p.as_dict(), ensure_ascii=False))
            fh.write("\n")
    os.replace(tmp, path)
    return path
