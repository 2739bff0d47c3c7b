"""The search interface every backend implements, the types that cross it, and the query analysis both
backends share.

A backend stores :class:`RecordDoc` documents (one per open record, id ``ARCHIVE/档号``) and answers a
:class:`SearchQuery` with a :class:`SearchResult`. The contract, checked by ``tests/search/contract.py``:

- ``index`` upserts by id and **refuses** any document whose access status is not open
  (:class:`search.documents.NotPublic`, raised before anything is written);
- ``q`` is plain user text, never query syntax: quotes, brackets, ``AND``, ``*``, ``NEAR(``, backslashes,
  emoji and over-long input give results or none, never an exception;
- Chinese is matched on characters, so 1-, 2- and 3+-character queries all work (a run of 2+ Han characters
  must occur contiguously; a single character matches wherever it occurs); other words match whole,
  case-insensitively, without stemming; several words (whitespace-separated) must all match;
- a query that looks like an archival code (``GZ-010``, ``GZ-010-1985-永久-0001``) also matches codes that
  start with it, and an exact code match ranks first;
- filters: a tuple per facet is OR within the facet, AND across facets; ``year_from``/``year_to`` keep records
  whose date range overlaps the years;
- facets are counted over the hits (query + every filter), so a facet count is exactly the total that adding
  the value as a filter would give; the ``year`` facet is keyed by decade (``"1980"`` = 1980–1989);
- ``highlights`` holds HTML-safe snippets: the document text escaped, matches wrapped in ``<mark>…</mark>``;
- results never go past :data:`MAX_WINDOW` (page × size); a page beyond it is empty, not an error.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from archive.errors import ArchiveError

Sort = Literal["relevance", "date_desc", "date_asc"]
SORTS: tuple[str, ...] = ("relevance", "date_desc", "date_asc")
FACETS: tuple[str, ...] = ("archive", "level", "fonds", "year", "retention", "format")

MAX_PAGE_SIZE = 100
#: Deepest result reachable by paging (page × size), as Elasticsearch's default ``max_result_window``.
MAX_WINDOW = 10_000
#: Longest query text looked at; the rest is ignored (a 1,000-character query is not an error).
MAX_QUERY_CHARS = 256
#: Most whitespace-separated terms of a query that are used.
MAX_QUERY_TERMS = 16


class SearchError(ArchiveError):
    """The backend could not answer (index missing, service down). Never raised for bad query text.

    Codes SRC… (``archive/codes/search.toml``)::

        SearchError (SRC000)
        ├── search.elastic.ElasticUnavailable (SRC001)  also an archive.errors.ServiceUnavailable (exit 3)
        ├── search.elastic.IndexMissing (SRC002)        run ``archive reindex``
        ├── search.reindex.ReindexLocked (SRC003)       another reindex holds the lock
        └── search.documents.NotPublic (SRC004)         also a ValueError: a non-open record was offered
    """

    code = "SRC000"


@dataclass(frozen=True)
class RecordDoc:
    """What the public index holds about one open record; built by :func:`search.documents.build_document`."""

    id: str  # "ARCHIVE/档号"
    archive: str
    archive_level: str
    archival_code: str
    title: str
    access_status: str
    creator: str | None = None
    fonds: str | None = None  # "ARCHIVE/全宗号", unambiguous across archives
    date_text: str | None = None
    date_start: dt.date | None = None
    date_end: dt.date | None = None
    retention: str | None = None
    language: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()  # format names (facet keys)
    puids: tuple[str, ...] = ()
    text: str = ""  # text extracted from the record's files, capped
    text_truncated: bool = False

    @property
    def year_start(self) -> int | None:
        return self.date_start.year if self.date_start else None

    @property
    def year_end(self) -> int | None:
        end = self.date_end or self.date_start
        return end.year if end else None

    @property
    def decade(self) -> str | None:
        return str(self.date_start.year // 10 * 10) if self.date_start else None


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    archives: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    fonds: tuple[str, ...] = ()  # "ARCHIVE/全宗号"
    retentions: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()  # format name or PUID
    year_from: int | None = None
    year_to: int | None = None
    sort: Sort = "relevance"
    page: int = 1
    size: int = 20
    highlight: bool = True
    facets: bool = True

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        if self.page < 1:
            raise ValueError("page starts at 1")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise ValueError(f"size must be between 1 and {MAX_PAGE_SIZE}")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


@dataclass(frozen=True)
class Hit:
    id: str
    archive: str
    archival_code: str
    title: str
    creator: str | None
    date: str | None
    score: float
    level: str | None = None
    fonds: str | None = None
    retention: str | None = None
    formats: tuple[str, ...] = ()
    highlights: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]]
    page: int = 1
    size: int = 20
    #: False when ``total`` is a lower bound (too many matches to count; the facets then count those seen).
    total_exact: bool = True


@runtime_checkable
class SearchBackend(Protocol):
    name: str

    def ensure_ready(self) -> None:
        """Create the index if it is missing; raise :class:`SearchError` if it cannot be reached."""

    def index(self, docs: Iterable[RecordDoc]) -> int:
        """Upsert documents by id; refuses the whole batch if any is not open. Returns the number written."""

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (absent ids are fine). Returns how many were removed."""

    def search(self, query: SearchQuery) -> SearchResult: ...

    def count(self, query: SearchQuery | None = None) -> int: ...

    def clear(self) -> None:
        """Remove every document."""


# -- query analysis shared by the backends ----------------------------------------------------------------

_CJK_RANGES = (
    (0x3040, 0x30FF),  # kana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x3134F),  # extensions B–G
)


_CJK_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES)
#: A run of CJK characters, or a run of other letters/digits (a "word").
TOKEN = re.compile(rf"([{_CJK_CLASS}]+)|([^\W_{_CJK_CLASS}]+)")


@functools.cache
def _nfkc_table() -> tuple[dict[str, str], re.Pattern[str]]:
    """Every BMP character that NFKC changes, with what it becomes (full-width forms, compatibility
    ideographs, ligatures…), and a pattern matching any of them, for :func:`nfkc`'s fast path."""
    table: dict[str, str] = {}
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        folded = unicodedata.normalize("NFKC", ch)
        if folded != ch:
            table[ch] = folded
    ranges: list[list[int]] = []
    for cp in map(ord, table):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    pattern = "".join(re.escape(chr(lo)) + (f"-{re.escape(chr(hi))}" if hi > lo else "") for lo, hi in ranges)
    return table, re.compile(f"[{pattern}]")


def nfkc(value: str) -> str:
    """NFKC, fast for long CJK text: ``unicodedata.normalize`` costs ~0.3 µs a character, while replacing
    only the characters NFKC changes (in archival text, mostly full-width punctuation such as ，) gives
    the NFKC form whenever the result passes NFKC's own check (NFKD of a character's NFKC form is NFKD of
    the character, so both strings have the same NFKC); otherwise the full algorithm runs."""
    if unicodedata.is_normalized("NFKC", value):
        return value
    table, unstable = _nfkc_table()
    mapped = value
    for ch in set(unstable.findall(value)):  # usually one or two distinct characters
        mapped = mapped.replace(ch, table[ch])
    if unicodedata.is_normalized("NFKC", mapped):
        return mapped
    return unicodedata.normalize("NFKC", value)


def normalise(text: str) -> str:
    """NFKC (full-width → half-width) and case folding: what both the index and the query see."""
    return nfkc(text).casefold()


@dataclass(frozen=True)
class Part:
    """One searchable piece of a query term: a CJK run or a word."""

    text: str
    cjk: bool


@dataclass(frozen=True)
class Term:
    """A whitespace-separated piece of the query: its parts must occur in this order, adjacent."""

    raw: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[Term, ...]
    code: str | None  # the query normalised, when it looks like an archival code

    @property
    def empty(self) -> bool:
        return not self.terms


#: A lone surrogate: possible in a Python str (e.g. from a raw query string), never in stored text.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CODE_LIKE = re.compile(r"^[0-9a-z][0-9a-z\-_./·]*$|^[0-9a-z][^\s]*[-_./·][^\s]*$")


def parse_query(q: str) -> ParsedQuery:
    """Split user text into terms and their CJK/word parts; punctuation and syntax characters are dropped."""
    # Lone surrogates are dropped like punctuation.
    text = normalise(LONE_SURROGATE.sub("", q[: MAX_QUERY_CHARS * 2]))[:MAX_QUERY_CHARS]
    terms: list[Term] = []
    for chunk in text.split()[:MAX_QUERY_TERMS]:
        parts = tuple(Part(m.group(0), m.group(1) is not None) for m in TOKEN.finditer(chunk))
        if parts:
            terms.append(Term(chunk, parts))
    stripped = text.strip()
    code = None
    if (
        len(terms) == 1
        and _CODE_LIKE.match(stripped)
        and any(c.isdigit() for c in stripped)
        and any(c.isascii() and c.isalnum() for c in stripped)
    ):
        code = stripped
    return ParsedQuery(tuple(terms), code)


def code_key(code: str) -> str:
    """An archival code as compared for exact and prefix matches."""
    return normalise(code).strip()


# -- highlighting ---------------------------------------------------------------------------------------

SNIPPET_CHARS = 80
MAX_SNIPPETS = 3


@functools.lru_cache(maxsize=256)
def _needles(parsed: ParsedQuery) -> tuple[tuple[str, bool], ...]:
    """The distinct parts of the query, longest first, each with whether it is CJK (computed once per query:
    a page of hits highlights several fields of each hit)."""
    needles = {part.text: part.cjk for term in parsed.terms for part in term.parts}
    return tuple(sorted(needles.items(), key=lambda kv: len(kv[0]), reverse=True))


def _spans(folded: str, needles: Sequence[tuple[str, bool]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for needle, cjk in needles:
        start = 0
        while (i := folded.find(needle, start)) != -1:
            end = i + len(needle)
            whole_word = cjk or (
                (i == 0 or not folded[i - 1].isalnum()) and (end == len(folded) or not folded[end].isalnum())
            )
            if whole_word:
                spans.append((i, end))
            start = end if whole_word else i + 1
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


@functools.cache
def _fold_table() -> dict[str, str]:
    """For each character NFKC changes into *one* character that case-folds to one character: that
    character, folded. Characters NFKC changes otherwise (ligatures, ``㎏``…) are left out, so that
    :func:`_fold_aligned` takes its exact loop when it meets one."""
    table, _ = _nfkc_table()
    return {ch: f for ch, to in table.items() if len(f := to.casefold()) == 1 and f.casefold() == f}


def _fold_aligned(text: str) -> str:
    """Case-fold character by character so that positions line up with ``text`` (NFKC where length-safe)."""
    mapped = text
    if not unicodedata.is_normalized("NFKC", text):
        # Archival text is rarely NFKC-stable only because of a few characters (full-width ，。：): each is
        # replaced by its one-character fold, when it has one, as :func:`nfkc` does.
        one = _fold_table()
        for ch in set(_nfkc_table()[1].findall(text)):
            if ch not in one:
                mapped = ""
                break
            mapped = mapped.replace(ch, one[ch])
        if mapped and not unicodedata.is_normalized("NFKC", mapped):
            mapped = ""  # characters the BMP table does not know (outside the BMP), or a combining sequence
    if mapped:
        # Every character is now NFKC-stable on its own or was replaced by a fold that is stable under case
        # folding, and folding maps each to one character exactly when the lengths agree: the same string
        # as the loop below, in a few C calls.
        folded = mapped.casefold()
        if len(folded) == len(text):
            return folded
    out = []
    for ch in text:
        f = unicodedata.normalize("NFKC", ch).casefold()
        out.append(f if len(f) == 1 else ch.lower())
    return "".join(out)


def highlight(text: str | None, parsed: ParsedQuery, *, whole: bool = False) -> list[str]:
    """HTML-safe snippets of ``text`` with the query's matches in ``<mark>…</mark>``; [] when nothing matches.

    ``whole`` marks the full text (for short fields such as the title) instead of windows around matches.
    """
    if not text or parsed.empty:
        return []
    spans = _spans(_fold_aligned(text), _needles(parsed))
    if not spans:
        return []

    def render(lo: int, hi: int) -> str:
        out, pos = [], lo
        for s, e in spans:
            if e <= lo or s >= hi:
                continue
            s, e = max(s, lo), min(e, hi)
            out.append(html.escape(text[pos:s]))
            out.append(f"<mark>{html.escape(text[s:e])}</mark>")
            pos = e
        out.append(html.escape(text[pos:hi]))
        return ("…" if lo > 0 else "") + "".join(out) + ("…" if hi < len(text) else "")

    if whole:
        return [render(0, len(text))]
    snippets: list[str] = []
    covered = -1
    for s, e in spans:
        if s < covered:
            continue
        lo = max(0, s - SNIPPET_CHARS // 2)
        hi = min(len(text), max(e, lo + SNIPPET_CHARS))
        snippets.append(render(lo, hi))
        covered = hi
        if len(snippets) >= MAX_SNIPPETS:
            break
    return snippets
