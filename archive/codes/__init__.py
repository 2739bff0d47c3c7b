"""The one catalogue of codes and messages (Chinese and English) for the whole project.

Like ocfl-py's validation codes, every code lives in one data folder, ``archive/codes/*.toml``, one file per
area (``archive`` ARC, ``storage`` STO, ``search`` SRC, ``preservation`` PRS, and the transfer problems
``bag`` BAG, ``unpack`` UNP, ``metadata`` META, ``identify`` IDN, ``ingest`` ING; any further ``*.toml`` placed
here, e.g. ``federation.toml``, is read too). An entry is a table named by its code::

    [STO004]
    zh = "没有标识为 {object_id!r} 的对象"
    en = "No object {object_id!r}"

    [BAG023]                # a transfer problem: two more fields
    severity = "error"      # error | warning, default error
    dat = "1-14"            # the DA/T 70-2018 四性检测 item the check belongs to
    zh = "..."
    en = "..."

    [STO003.foreign]        # a variant: the same code, the text of one precise situation
    zh = "{root} 已存在、非空，且不是 OCFL 存储根"
    en = "{root} exists, is not empty and is not an OCFL storage root"

A code belongs to one error class (or one kind of transfer problem) and stays stable, so callers and tests
can rely on it; where one class covers several situations, each situation's text is a *variant* of the code
(``STO003.foreign``), raised as ``NotAnOcflRoot(variant="foreign", root=...)``: the code stays ``STO003``,
the message says exactly what is wrong. The templates are filled with ``str.format`` from the error's (or
problem's) parameters; a field the caller did not give stays visible as ``{name}`` rather than failing while
an error is being reported. Errors
(:mod:`archive.errors`) and transfer problems (:mod:`ingest.problems`) both read their texts from here, so no
message text lives in Python code. A code defined twice is refused when the catalogue is loaded.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class CodeInfo:
    code: str
    zh: str
    en: str
    area: str  # the file it comes from, e.g. "storage"
    severity: Severity = "error"
    dat: str | None = None  # DA/T 70-2018 四性检测 item, e.g. "1-14"
    variant: str | None = None  # e.g. "foreign" for STO003.foreign

    @property
    def key(self) -> str:
        """Where the entry lives in the catalogue: the code, or ``code.variant``."""
        return f"{self.code}.{self.variant}" if self.variant else self.code


class CatalogueError(RuntimeError):
    """The catalogue itself is broken (a code defined twice, an entry without zh/en): a build error."""


def _entry(code: str, variant: str | None, table: Any, area: str) -> CodeInfo:
    key = f"{code}.{variant}" if variant else code
    if (
        not isinstance(table, dict)
        or not isinstance(table.get("zh"), str)
        or not isinstance(table.get("en"), str)
    ):
        raise CatalogueError(f"{key} in {area}.toml needs zh and en texts")
    if not table["zh"].strip() or not table["en"].strip():
        raise CatalogueError(f"{key} in {area}.toml has an empty zh or en text")
    return CodeInfo(
        code=code,
        zh=table["zh"],
        en=table["en"],
        area=area,
        severity=table.get("severity", "error"),
        dat=table.get("dat"),
        variant=variant,
    )


@cache
def catalogue() -> Mapping[str, CodeInfo]:
    """Every known code and variant (``"STO003"``, ``"STO003.foreign"``), read once from ``archive/codes/``."""
    return load(resources.files(__name__))


def load(folder: Traversable) -> dict[str, CodeInfo]:
    """The entries of every ``*.toml`` in ``folder``; :class:`CatalogueError` for a code defined twice."""
    entries: dict[str, CodeInfo] = {}
    for file in sorted(folder.iterdir(), key=lambda e: e.name):
        if not file.name.endswith(".toml"):
            continue
        area = file.name.removesuffix(".toml")
        for code, table in tomllib.loads(file.read_text(encoding="utf-8")).items():
            if code in entries:
                raise CatalogueError(f"code {code} defined twice ({entries[code].area}.toml and {file.name})")
            entries[code] = _entry(code, None, table, area)
            for name, sub in table.items():
                if isinstance(sub, dict):
                    entries[f"{code}.{name}"] = _entry(code, name, sub, area)
    return entries


def info(code: str, variant: str | None = None) -> CodeInfo:
    """The catalogue entry of ``code`` (or of its ``variant``); ``KeyError`` naming the folder when missing."""
    key = f"{code}.{variant}" if variant else code
    try:
        return catalogue()[key]
    except KeyError:
        raise KeyError(f"unknown code {key!r}; add it to archive/codes/") from None


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class _Formatter(string.Formatter):
    """``str.format_map`` that leaves an unknown field, or one whose format spec does not fit, as written."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        return kwargs[str(key)] if str(key) in kwargs else _Missing(str(key))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        return value if isinstance(value, _Missing) else super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, _Missing):
            return "{" + value.name + (":" + format_spec if format_spec else "") + "}"
        try:
            return format(value, format_spec)
        except (TypeError, ValueError):
            return format(str(value))


class _Missing:
    def __init__(self, name: str) -> None:
        self.name = name


_FORMATTER = _Formatter()


def fill(template: str, params: Mapping[str, Any]) -> str:
    """``template`` with its ``{fields}`` filled from ``params``; never raises for a missing field.

    ``str.format_map`` first (C, and the same answer whenever it succeeds: every field is in ``params`` and
    formats); the tolerant formatter only for what it refuses."""
    try:
        return template.format_map(params)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError):
        return _FORMATTER.vformat(template, (), _Keep(params))


def render(code: str, params: Mapping[str, Any], variant: str | None = None) -> tuple[str, str]:
    """The Chinese and English messages of ``code`` (or of its ``variant``) filled with ``params``."""
    entry = info(code, variant)
    return fill(entry.zh, params), fill(entry.en, params)


def more_problems(
    counts: Mapping[str, int], shown: Mapping[str, int], file: str | None
) -> list[dict[str, Any]]:
    """For each problem code counted more often than shown: how many more, in a zh/en sentence (ING009,
    from the catalogue) that says where every one of them is."""
    out = []
    for code, n in sorted(counts.items()):
        more = n - shown.get(code, 0)
        if more > 0:
            zh, en = render("ING009", {"count": more, "code": code, "file": file}, "file" if file else None)
            out.append({"code": code, "count": more, "message_zh": zh, "message_en": en})
    return out
