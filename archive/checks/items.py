"""The automatic checks on metadata and structure: each takes the run's :class:`Context` and gives an item.

The per-file checks that read content (fixity, opening, encryption, format, virus) are in
:mod:`archive.checks.content` and :mod:`archive.checks.virus`; :mod:`archive.checks.run` puts them together.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from archive.checks.registry import CheckDef, by_key
from archive.checks.report import Failure, ItemResult, Status
from archive.checks.subjects import RecordView
from archive.config import Settings

#: Longest value of each metadata item (characters); the catalogue's own column limits where it has one.
MAX_LENGTH = {
    "archival_code": 255,
    "title": 2000,
    "creator": 500,
    "date_text": 32,
    "retention": 16,
    "security_class": 32,
    "fonds": 64,
    "language": 32,
    "keywords": 1000,
    "description": 20000,
}
TEXT_ITEMS = tuple(MAX_LENGTH)
RETENTIONS = frozenset({"permanent", "30y", "10y"})
SECURITY_CLASSES = frozenset({"内部", "秘密", "机密", "绝密"})
_DATE_TEXT = re.compile(
    r"^\d{4}(?:[-./]?\d{1,2}(?:[-./]?\d{1,2})?)?(?:\s*[-/~～至]\s*\d{4}(?:[-./]?\d{1,2}){0,2})?$"
)
_YEAR_SEGMENT = re.compile(r"(?:^|[-·])((?:1[5-9]|20)\d\d)(?=$|[-·])")
_SERIAL = re.compile(r"^(?P<series>.*?)(?P<number>\d+)$")
#: Characters that may stand in a description or keywords but nowhere else.
_LAYOUT = frozenset("\t\n\r")


@dataclass
class Context:
    settings: Settings
    stage: str
    records: list[RecordView]
    #: ingest problems at receipt, by item code: [(record, path, detail)]
    mapped: dict[str, list[Failure]] = field(default_factory=dict)
    today: dt.date = field(default_factory=dt.date.today)
    notes: dict[str, str] = field(default_factory=dict)

    def code_pattern(self, archive: str) -> re.Pattern[str]:
        return re.compile(self.settings.check_code_patterns.get(archive, self.settings.check_code_pattern))


Check = Callable[[Context, CheckDef], ItemResult]
#: A check of one record: its problems, as details (see :func:`per_record`).
RecordCheck = Callable[[Context, RecordView], Iterator[str]]
CHECKS: dict[str, Check] = {}


def check(key: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        by_key(key)  # the registry must know it
        CHECKS[key] = fn
        return fn

    return register


def _result(
    ctx: Context, c: CheckDef, checked: int, failures: Iterable[Failure], *, warn: bool = False
) -> ItemResult:
    found = [*ctx.mapped.get(c.code, []), *failures]
    status: Status = "pass" if not found else ("warn" if warn else "fail")
    return ItemResult(c, status, checked, found, ctx.notes.get(c.code))


def _values(r: RecordView) -> Iterable[tuple[str, str]]:
    for name in TEXT_ITEMS:
        value = getattr(r, name)
        if isinstance(value, str):
            yield name, value


def per_record(key: str) -> Callable[[RecordCheck], RecordCheck]:
    """Register a check that looks at one record at a time: ``fn(ctx, record)`` gives the record's problems
    (details), reported in record order; every record counts as checked."""

    def register(fn: RecordCheck) -> RecordCheck:
        def item(ctx: Context, c: CheckDef) -> ItemResult:
            failures = [Failure(r.ref, None, detail) for r in ctx.records for detail in fn(ctx, r)]
            return _result(ctx, c, len(ctx.records), failures)

        check(key)(item)
        return fn

    return register


@per_record("metadata_length")
def metadata_length(ctx: Context, r: RecordView) -> Iterator[str]:
    for name, value in _values(r):
        if len(value) > MAX_LENGTH[name]:
            yield f"{name}: {len(value)} characters, limit {MAX_LENGTH[name]}"


@per_record("metadata_type")
def metadata_type(ctx: Context, r: RecordView) -> Iterator[str]:
    if r.date_text and (r.date_start is None or not _DATE_TEXT.match(r.date_text.strip())):
        yield f"date_text: {r.date_text!r} is not a date"


@per_record("metadata_range")
def metadata_range(ctx: Context, r: RecordView) -> Iterator[str]:
    if r.retention is not None and r.retention not in RETENTIONS:
        yield f"retention: {r.retention!r} not in {sorted(RETENTIONS)}"
    if r.security_class is not None and r.security_class not in SECURITY_CLASSES:
        yield f"security_class: {r.security_class!r} unknown"


@per_record("metadata_plausibility")
def metadata_plausibility(ctx: Context, r: RecordView) -> Iterator[str]:
    if r.date_start and r.date_start > ctx.today:
        yield f"date {r.date_text} lies in the future"
    if r.date_start and r.date_end and r.date_start > r.date_end:
        yield f"date {r.date_text}: start after end"
    if r.date_start and r.date_start.year < ctx.settings.check_earliest_year:
        yield f"date {r.date_text} before {ctx.settings.check_earliest_year}"
    m = _YEAR_SEGMENT.search(r.archival_code)
    if m and r.date_start and r.date_end and not r.date_start.year <= int(m.group(1)) <= r.date_end.year:
        yield f"year {m.group(1)} in the code differs from date {r.date_text}"


def _special(ch: str, layout_ok: bool) -> bool:
    if ch in _LAYOUT:
        return not layout_ok
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")


@per_record("special_characters")
def special_characters(ctx: Context, r: RecordView) -> Iterator[str]:
    for name, value in _values(r):
        # every character _special looks for is unprintable (or U+FFFD): most values need no closer look
        if value.isprintable() and "\ufffd" not in value:
            continue
        layout_ok = name in ("description", "keywords")
        bad = sorted({f"U+{ord(ch):04X}" for ch in value if _special(ch, layout_ok)})
        if bad:
            yield f"{name}: {', '.join(bad)}"


@per_record("archival_code_format")
def archival_code_format(ctx: Context, r: RecordView) -> Iterator[str]:
    pattern = ctx.code_pattern(r.archive)
    if not pattern.fullmatch(r.archival_code):
        yield f"{r.archival_code!r} does not match {pattern.pattern}"


def _fold(code: str) -> str:
    return unicodedata.normalize("NFKC", code).casefold().strip()


@check("archival_code_duplicate")
def archival_code_duplicate(ctx: Context, c: CheckDef) -> ItemResult:
    seen: dict[tuple[str, str], str] = {}
    failures = []
    for r in ctx.records:
        key = (r.archive, _fold(r.archival_code))
        if key in seen:
            failures.append(Failure(r.ref, None, f"same code as {seen[key]} (after NFKC and case folding)"))
        else:
            seen[key] = r.ref
    return _result(ctx, c, len(ctx.records), failures)


def series_of(r: RecordView) -> tuple[tuple[str, str, int | str, str], int] | None:
    """(archive, fonds, year, series), item number) of a code ending in a number; None when it does not."""
    m = _SERIAL.match(r.archival_code)
    if not m:
        return None
    year: int | str = r.year or ""
    found = _YEAR_SEGMENT.search(r.archival_code)
    if found:
        year = int(found.group(1))
    fonds = r.fonds or r.archival_code.split("-", 1)[0]
    return (r.archive, fonds, year, m.group("series")), int(m.group("number"))


def gaps(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Missing runs between the smallest number and the largest: [(first missing, last missing)]."""
    ordered = sorted(set(numbers))
    return [(a + 1, b - 1) for a, b in itertools.pairwise(ordered) if b - a > 1]


@check("archival_code_continuity")
def archival_code_continuity(ctx: Context, c: CheckDef) -> ItemResult:
    groups: dict[tuple[str, str, int | str, str], list[int]] = defaultdict(list)
    for r in ctx.records:
        found = series_of(r)
        if found:
            groups[found[0]].append(found[1])
    failures = []
    for (archive, fonds, year, series), numbers in sorted(groups.items(), key=lambda kv: str(kv[0])):
        for first, last in gaps(numbers):
            missing = str(first) if first == last else f"{first}–{last}"
            failures.append(
                Failure(
                    None, None, f"{archive} fonds {fonds} year {year} series {series}…: missing {missing}"
                )
            )
    return _result(ctx, c, len(groups), failures, warn=True)


@per_record("metadata_content_link")
def metadata_content_link(ctx: Context, r: RecordView) -> Iterator[str]:
    if not r.files:
        yield "record has no content file"


@per_record("required_metadata")
def required_metadata(ctx: Context, r: RecordView) -> Iterator[str]:
    for name in ctx.settings.check_required_metadata:
        value = getattr(r, name, None)
        if value is None or (isinstance(value, str) and not value.strip()):
            yield f"{name} missing"


@per_record("counts")
def counts(ctx: Context, r: RecordView) -> Iterator[str]:
    originals = sum(f.role == "original" for f in r.files)
    if r.declared_files is not None and r.declared_files != originals:
        yield f"{originals} original files, {r.declared_files} recorded"


@per_record("bytes")
def byte_counts(ctx: Context, r: RecordView) -> Iterator[str]:
    total = sum(f.size for f in r.files if f.role == "original")
    if r.declared_bytes is not None and r.declared_bytes != total:
        yield f"{total} bytes in original files, {r.declared_bytes} recorded"
