"""Record metadata: which payload files make up which record (档案), and what is known about each.

:func:`read_records` reads ``data/metadata/records.csv`` (or, without one, makes a record of each top-level
entry of ``data/``) into :class:`RecordSpec` rows and coded problems (``META…``). The convention, with every
choice made about encodings, delimiters, dates, retention, access, archival codes, paths and keywords, is
written for archivists in ``docs/records-csv.md``.
"""

from __future__ import annotations

import bisect
import calendar
import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

from archive.access import normalise_security_class
from ingest.problems import Problem

METADATA_DIR = "data/metadata/"
RECORDS_CSV = "data/metadata/records.csv"

#: Field name → accepted headers (compared through :func:`_header_key`).
COLUMNS: dict[str, tuple[str, ...]] = {
    "path": ("path", "路径", "文件路径"),
    "archival_code": ("archival_code", "档号"),
    "title": ("title", "题名", "标题"),
    "creator": ("creator", "责任者"),
    "date": ("date", "日期", "形成日期"),
    "retention": ("retention", "保管期限"),
    "security_class": ("security_class", "密级"),
    "access": ("access", "开放状态", "开放属性"),
    "fonds": ("fonds", "全宗号", "全宗"),
    "description": ("description", "摘要", "内容摘要"),
    "keywords": ("keywords", "主题词", "关键词"),
    "language": ("language", "语种"),
}
REQUIRED = ("path", "archival_code", "title")
#: How a required column is named in messages.
_DISPLAY = {"path": "路径/path", "archival_code": "档号/archival_code", "title": "题名/title"}

_SPREADSHEET_SUFFIXES = (".xlsx", ".xls", ".et", ".ods", ".tsv", ".txt")


def _header_key(text: str) -> str:
    key = unicodedata.normalize("NFKC", text).replace("\ufeff", "").strip().rstrip("*").casefold()
    return re.sub(r"[\s_\-]+", "", key)


_HEADER_LOOKUP: dict[str, str] = {
    _header_key(alias): name for name, aliases in COLUMNS.items() for alias in aliases
}


# ----------------------------------------------------------------------------------------------------
# Decoding


def _clean_text(text: str) -> bool:
    """No control characters but tab and line ends, no private-use or unassigned code points."""
    for ch in set(text):
        if ch in "\t\r\n":
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Co", "Cn", "Cs"):
            return False
    return True


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip(" \t,;\u3000\ufeff"):
            return line
    return ""


def _names_known_column(text: str) -> bool:
    line = _first_line(text)
    cells = (cell.strip().strip('"') for d in (",", "\t", ";") for cell in line.split(d))
    return any(_header_key(cell) in _HEADER_LOOKUP for cell in cells)


def _mostly_gb2312(text: str) -> bool:
    outside = total = 0
    for ch, count in Counter(text).items():
        if ord(ch) < 0x80:
            continue
        total += count
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            outside += count
    return outside * 2 <= total


def decode_csv(data: bytes) -> tuple[str, str] | None:
    """``(text, encoding)`` for the bytes of a records.csv, or ``None`` when no encoding fits for sure."""
    boms = ((b"\xef\xbb\xbf", "utf-8-sig", "utf-8"), (b"\xff\xfe", "utf-16-le", "utf-16-le"),
            (b"\xfe\xff", "utf-16-be", "utf-16-be"))  # fmt: skip
    for bom, label, codec in boms:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                return None
            return (text, label) if _clean_text(text) else None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return (text, "utf-8") if _clean_text(text) else None
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return None
    if _clean_text(text) and _names_known_column(text) and _mostly_gb2312(text):
        return text, "gb18030"
    return None


# ----------------------------------------------------------------------------------------------------
# Values

_DATE_PATTERNS = (
    re.compile(r"(?P<y>\d{4})"),
    re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
    re.compile(r"(?P<y>\d{4})(?P<s>[-./])(?P<m>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})(?P<s>[-./])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})年(?:(?P<m>\d{1,2})月(?:(?P<d>\d{1,2})日)?)?"),
)


def _parse_one_date(text: str) -> tuple[date, date] | None:
    for pattern in _DATE_PATTERNS:
        match = pattern.fullmatch(text)
        if not match:
            continue
        groups = match.groupdict()
        year = int(groups["y"])
        month = int(groups["m"]) if groups.get("m") else None
        day = int(groups["d"]) if groups.get("d") else None
        try:
            if month is None:
                return date(year, 1, 1), date(year, 12, 31)
            if day is None:
                return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
            exact = date(year, month, day)
        except ValueError:
            return None
        return exact, exact
    return None


def parse_partial_date(text: str) -> tuple[date, date] | None:
    """First and last day a written date (or ``start~end`` span) can mean; ``None`` if malformed."""
    value = unicodedata.normalize("NFKC", text).strip()
    parts = [p.strip() for p in re.split(r"~|至", value)]
    if len(parts) == 1:
        return _parse_one_date(parts[0])
    if len(parts) != 2:
        return None
    start, end = _parse_one_date(parts[0]), _parse_one_date(parts[1])
    if start is None or end is None or start[0] > end[1]:
        return None
    return start[0], end[1]


_RETENTION = {
    "永久": "permanent", "permanent": "permanent", "y": "permanent",
    "30年": "30y", "定期30年": "30y", "30y": "30y", "d30": "30y", "30years": "30y",
    "10年": "10y", "定期10年": "10y", "10y": "10y", "d10": "10y", "10years": "10y",
}  # fmt: skip
_LEGACY_RETENTION = {"长期": "30y", "短期": "10y"}


def _key(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def parse_retention(text: str) -> tuple[str, bool] | None:
    """``(canonical, legacy)`` for a retention period, or ``None`` if unknown."""
    key = _key(text)
    if key in _RETENTION:
        return _RETENTION[key], False
    if key in _LEGACY_RETENTION:
        return _LEGACY_RETENTION[key], True
    return None


_ACCESS = {
    "": "auto", "自动": "auto", "auto": "auto",
    "开放": "open", "open": "open",
    "控制": "restricted", "不开放": "restricted", "限制": "restricted", "restricted": "restricted",
}  # fmt: skip


def parse_access(text: str) -> str | None:
    return _ACCESS.get(_key(text))


_CODE_PUNCTUATION = frozenset(" -·・._()（）〔〕[]【】－—–＿#+")


def bad_code_chars(code: str) -> list[str]:
    """Characters that cannot be part of an archival code, written so an archivist can see them."""
    bad: list[str] = []
    for ch in code:
        if ch.isalnum() or ch in _CODE_PUNCTUATION:
            continue
        shown = f"U+{ord(ch):04X}" if unicodedata.category(ch)[0] in "CZ" else ch
        if shown not in bad:
            bad.append(shown)
    return bad


def _code_key(code: str) -> str:
    return unicodedata.normalize("NFKC", code).casefold()


_KEYWORD_SEPARATORS = re.compile(r"[；;，,、]+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def split_keywords(text: str) -> list[str]:
    if _KEYWORD_SEPARATORS.search(text):
        parts = _KEYWORD_SEPARATORS.split(text)
    elif _CJK.search(text):
        parts = text.split()
    else:
        parts = [text]
    out: list[str] = []
    for part in (p.strip() for p in parts):
        if part and part not in out:
            out.append(part)
    return out


# ----------------------------------------------------------------------------------------------------
# Records


@dataclass
class RecordSpec:
    """One record as the transfer describes it."""

    row: int | None
    path: str
    files: list[str]
    archival_code: str
    title: str
    creator: str | None = None
    date_text: str | None = None
    date_start: date | None = None
    date_end: date | None = None
    retention: str | None = None
    security_class: str | None = None
    access_requested: str = "auto"
    fonds: str | None = None
    description: str | None = None
    keywords: list[str] = field(default_factory=list)
    language: str | None = None
    source: str | None = None  # the CSV it came from; None for the folder convention
    encoding: str | None = None  # the CSV's detected encoding

    def as_dict(self) -> dict[str, Any]:
        return {
            "archival_code": self.archival_code,
            "title": self.title,
            "creator": self.creator,
            "date": self.date_text,
            "date_start": self.date_start.isoformat() if self.date_start else None,
            "date_end": self.date_end.isoformat() if self.date_end else None,
            "retention": self.retention,
            "security_class": self.security_class,
            "access_requested": self.access_requested,
            "fonds": self.fonds,
            "description": self.description,
            "keywords": list(self.keywords),
            "language": self.language,
            "path": self.path,
            "files": list(self.files),
            "source": {"file": self.source, "row": self.row, "encoding": self.encoding},
        }


def _in_metadata(path: str) -> bool:
    return path.startswith(METADATA_DIR)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def bag_path(written: str) -> str:
    """The bag-relative path a written CSV path means (see the module docstring); ``data`` for the payload."""
    path = _nfc(written.strip()).replace("\\", "/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or parts == ["data"]:
        return "data"
    if parts[0] != "data":
        parts.insert(0, "data")
    return "/".join(parts)


class _Payload:
    """The record-bearing payload files, looked up by NFC path, file or folder."""

    def __init__(self, payload_paths: Iterable[str]) -> None:
        self.by_nfc: dict[str, str] = {}
        for p in payload_paths:
            if p.startswith("data/") and not _in_metadata(p):
                self.by_nfc[_nfc(p)] = p
        self.sorted = sorted(self.by_nfc)

    def files(self, path: str) -> list[str]:
        if path in self.by_nfc:
            return [self.by_nfc[path]]
        prefix = path + "/"
        start = bisect.bisect_left(self.sorted, prefix)
        end = bisect.bisect_left(self.sorted, prefix + "\U0010ffff")
        return [self.by_nfc[p] for p in self.sorted[start:end]]


def _find_csv(payload_paths: Collection[str]) -> str | None:
    if RECORDS_CSV in payload_paths:
        return RECORDS_CSV
    for p in sorted(payload_paths):
        if p.casefold() == RECORDS_CSV:
            return p
    return None


def read_records(bag_root: Path, payload_paths: Collection[str]) -> tuple[list[RecordSpec], list[Problem]]:
    """The records of a bag and every problem found in their metadata (see the module docstring)."""
    csv_path = _find_csv(payload_paths)
    if csv_path is None:
        return _folder_convention(payload_paths)
    try:
        data = (bag_root / csv_path).read_bytes()
    except OSError as exc:
        return [], [Problem("META025", path=csv_path, params={"error": exc.strerror or str(exc)})]
    decoded = decode_csv(data)
    if decoded is None:
        return [], [Problem("META001", path=csv_path)]
    text, encoding = decoded
    return _CsvReader(csv_path, encoding, _Payload(payload_paths)).read(text)


def _delimiter(text: str) -> str:
    line = _first_line(text)
    best, best_score = ",", -1
    for delimiter in (",", "\t", ";"):
        try:
            cells = next(csv.reader([line], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        score = sum(_header_key(c) in _HEADER_LOOKUP for c in cells)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _strip(value: str) -> str:
    return value.strip().strip("\ufeff").strip()


class _CsvReader:
    def __init__(self, csv_path: str, encoding: str, payload: _Payload) -> None:
        self.csv_path = csv_path
        self.encoding = encoding
        self.payload = payload
        self.problems: list[Problem] = []

    def problem(self, code: str, path: str | None = None, **params: Any) -> None:
        self.problems.append(Problem(code, path=path or self.csv_path, params=params))

    def read(self, text: str) -> tuple[list[RecordSpec], list[Problem]]:
        rows, broken = self._rows(text)
        if not rows:
            if not broken:
                self.problem("META015")
            return [], self.problems
        (_, header), body = rows[0], rows[1:]
        columns = self._columns(header, body)
        for name in REQUIRED:
            if name not in columns:
                self.problem("META003", column=_DISPLAY[name])
        if not body:
            if not broken:
                self.problem("META015")
            return [], self.problems
        specs = [self._spec(line, cells, columns, len(header)) for line, cells in body]
        self._check_codes(specs)
        if "path" in columns:
            self._check_files(specs, complete=not broken)
        return specs, self.problems

    def _rows(self, text: str) -> tuple[list[tuple[int, list[str]]], bool]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
        rows: list[tuple[int, list[str]]] = []
        last = 0
        try:
            for cells in reader:
                start, last = last + 1, reader.line_num
                stripped = [_strip(c) for c in cells]
                if any(stripped):
                    rows.append((start, stripped))
        except csv.Error as exc:
            self.problem("META002", row=last + 1, error=str(exc))
            return rows, True
        return rows, False

    def _columns(self, header: list[str], body: list[tuple[int, list[str]]]) -> dict[str, int]:
        columns: dict[str, int] = {}
        for index, cell in enumerate(header):
            if not cell:
                if any(index < len(cells) and cells[index] for _, cells in body):
                    self.problem("META021", column_number=index + 1)
                continue
            name = _HEADER_LOOKUP.get(_header_key(cell))
            if name is None:
                self.problem("META016", column=cell)
            elif name in columns:
                self.problem("META019", column=name, first=header[columns[name]], second=cell)
            else:
                columns[name] = index
        return columns

    def _spec(self, line: int, cells: list[str], columns: dict[str, int], width: int) -> RecordSpec:
        if len(cells) > width and any(cells[width:]):
            count = max(i for i, c in enumerate(cells) if c) + 1
            self.problem("META020", row=line, count=count, columns=width)

        def get(name: str) -> str:
            index = columns.get(name)
            return cells[index] if index is not None and index < len(cells) else ""

        for name in REQUIRED:
            if name in columns and not get(name):
                self.problem("META004", row=line, column=_DISPLAY[name])

        spec = RecordSpec(
            row=line,
            path=get("path"),
            files=[],
            archival_code=get("archival_code"),
            title=get("title"),
            creator=get("creator") or None,
            fonds=get("fonds") or None,
            description=get("description") or None,
            keywords=split_keywords(get("keywords")),
            language=get("language") or None,
            source=self.csv_path,
            encoding=self.encoding,
        )
        if spec.archival_code:
            bad = bad_code_chars(spec.archival_code)
            if bad:
                self.problem("META011", row=line, archival_code=spec.archival_code, chars=" ".join(bad))

        if value := get("date"):
            spec.date_text = value
            span = parse_partial_date(value)
            if span is None:
                self.problem("META005", row=line, value=value)
            else:
                spec.date_start, spec.date_end = span

        if value := get("retention"):
            retention = parse_retention(value)
            if retention is None:
                self.problem("META006", row=line, value=value)
            else:
                spec.retention = retention[0]
                if retention[1]:
                    self.problem("META017", row=line, value=value, retention=retention[0])

        if value := get("security_class"):
            try:
                spec.security_class = normalise_security_class(value)
            except ValueError:
                spec.security_class = value  # unknown counts as classified downstream (fail safe)
                self.problem("META008", row=line, value=value)

        access = parse_access(get("access"))
        if access is None:
            self.problem("META007", row=line, value=get("access"))
            access = "restricted"
        spec.access_requested = access
        if access == "open" and spec.security_class is not None:
            self.problem("META009", row=line, security_class=spec.security_class)
        return spec

    def _check_codes(self, specs: list[RecordSpec]) -> None:
        first: dict[str, int] = {}
        for spec in specs:
            if not spec.archival_code or spec.row is None:
                continue
            key = _code_key(spec.archival_code)
            if key in first:
                self.problem("META010", row=spec.row, archival_code=spec.archival_code, first_row=first[key])
            else:
                first[key] = spec.row

    def _check_files(self, specs: list[RecordSpec], *, complete: bool) -> None:
        owner: dict[str, int] = {}
        shared: dict[tuple[int, int], list[str]] = {}
        for spec in specs:
            if not spec.path or spec.row is None:
                continue
            target = bag_path(spec.path)
            if _in_metadata(target + "/"):
                self.problem("META018", row=spec.row, written=spec.path)
                continue
            spec.files = self.payload.files(target)
            if not spec.files:
                self.problem("META012", row=spec.row, written=spec.path)
            for f in spec.files:
                if f in owner:
                    shared.setdefault((owner[f], spec.row), []).append(f)
                else:
                    owner[f] = spec.row
        for (other_row, row), files in shared.items():
            self.problem("META013", path=files[0], row=row, other_row=other_row, count=len(files))
        if complete:
            for f in self.payload.sorted:
                original = self.payload.by_nfc[f]
                if original not in owner:
                    self.problem("META014", path=original)


def _folder_convention(payload_paths: Collection[str]) -> tuple[list[RecordSpec], list[Problem]]:
    problems: list[Problem] = []
    entries: dict[str, tuple[bool, list[str]]] = {}
    for p in sorted(payload_paths):
        if _in_metadata(p):
            name = p.rpartition("/")[2].casefold()
            if name.startswith("records.") and name.endswith(_SPREADSHEET_SUFFIXES):
                problems.append(Problem("META022", path=p))
            continue
        if not p.startswith("data/"):
            continue
        top, sep, _ = p.removeprefix("data/").partition("/")
        entries.setdefault(top, (bool(sep), []))[1].append(p)
    specs: list[RecordSpec] = []
    seen: dict[str, str] = {}
    for top, (is_folder, files) in entries.items():
        written = "data/" + top
        code = top if is_folder else PurePosixPath(top).stem
        bad = bad_code_chars(code)
        if bad:
            problems.append(
                Problem("META023", path=written, params={"archival_code": code, "chars": " ".join(bad)})
            )
        key = _code_key(code)
        if key in seen:
            problems.append(
                Problem("META024", path=written, params={"other": seen[key], "archival_code": code})
            )
        else:
            seen[key] = written
        specs.append(RecordSpec(row=None, path=written, files=files, archival_code=code, title=code))
    return specs, problems
