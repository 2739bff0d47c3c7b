"""The bounds of what one portal request may carry, in one place for the pages and the JSON API.

Every search request, page or API, becomes a :class:`search.SearchQuery` through :func:`search_query`, and
every link a search page shows is built from that query (:func:`query_params`), never from the raw query
string: so an answer grows with what the query keeps, not with what was sent.

What is bounded, and how (the numbers are :class:`archive.config.Settings`, documented in the README):

- query parameters in all: at most ``portal_max_params`` (200) — beyond, :class:`OutOfBounds` ``POR001``;
- values of one filter (``archive=``, ``level=``, ``fonds=``, ``retention=``, ``format=``): at most
  ``portal_max_filter_values`` (20), counted as sent, repeats included — beyond, ``POR002``;
- one filter value: at most :data:`MAX_FILTER_CHARS` characters and no control character (a NUL byte is
  refused, not silently dropped so that ``format=%00x`` would act as no filter) — else ``POR003``;
- the search text: cut at ``portal_max_query_chars`` (256, what the search backends look at) characters,
  control characters become spaces (a long text is not an error: people paste whole paragraphs);
- the whole search as kept (text and filters, URL-encoded): at most ``portal_max_query_bytes`` (4,096) —
  beyond, ``POR005``. Every link of a result page (facets, chips, pager, language) repeats it, so this
  bounds the page: at most ~180 links of it beside 100 hits, well under a megabyte even at the bound;
- ``size``: capped at ``portal_max_page_size`` (100), the answer says which size was used;
- answers: besides the hits, an API answer lists at most :data:`MAX_FACET_VALUES` values of each facet
  (most frequent first), a page 12, and every link is bounded as above;
- ``page``: at most the last page that exists (``POR004`` names it), and never deeper than the search window
  (:data:`search.MAX_WINDOW` results) even before searching. Page 1 always exists, even with no hits.

A refusal is a 422 with the code and a message in Chinese and English (HTML page or JSON), never a 500.
Malformed numbers are the one place where pages and API differ: the API refuses ``page=abc`` through its
typed parameters (422), a page reads it as the default, as links pasted from chat apps often carry junk.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from archive.config import Settings
from archive.errors import BadArgument
from search import MAX_WINDOW, SearchQuery

#: Longest filter value (a fonds is ``ARCHIVE/全宗号``; format names are PRONOM names).
MAX_FILTER_CHARS = 255
MIN_YEAR, MAX_YEAR = 1, 9999
SORTS = ("relevance", "date_desc", "date_asc")

#: Most values of one facet an API answer lists (most frequent first); a page shows 12.
MAX_FACET_VALUES = 100

#: Filter parameters of /search and /api/v1/search, in the order links carry them.
FILTERS: tuple[str, ...] = ("archive", "level", "fonds", "retention", "format")


class OutOfBounds(BadArgument):
    """A request beyond the portal's bounds (answered 422); texts in ``archive/codes/portal.toml``::

    OutOfBounds (POR000)
    ├── TooManyParams (POR001)
    ├── TooManyValues (POR002)
    ├── BadFilterValue (POR003)
    ├── NoSuchPage (POR004)
    └── QueryTooLong (POR005)
    """

    code = "POR000"
    status_code = 422


class TooManyParams(OutOfBounds):
    code = "POR001"


class TooManyValues(OutOfBounds):
    code = "POR002"


class BadFilterValue(OutOfBounds):
    code = "POR003"


class NoSuchPage(OutOfBounds):
    code = "POR004"


class QueryTooLong(OutOfBounds):
    code = "POR005"


def too_many_params(limit: int) -> OutOfBounds:
    return TooManyParams(limit=limit)


def too_many_values(name: str, limit: int) -> OutOfBounds:
    return TooManyValues(parameter=name, limit=limit)


def bad_value(name: str) -> OutOfBounds:
    return BadFilterValue(parameter=name, limit=MAX_FILTER_CHARS)


def query_too_long(limit: int) -> OutOfBounds:
    return QueryTooLong(limit=limit)


def no_such_page(page: int, last: int) -> OutOfBounds:
    return NoSuchPage(page=page, last_page=last)


@dataclass(frozen=True)
class Limits:
    max_params: int = 200
    max_filter_values: int = 20
    max_query_chars: int = 256
    max_query_bytes: int = 4096
    max_page_size: int = 100

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            max_params=settings.portal_max_params,
            max_filter_values=settings.portal_max_filter_values,
            max_query_chars=settings.portal_max_query_chars,
            max_query_bytes=settings.portal_max_query_bytes,
            max_page_size=settings.portal_max_page_size,
        )

    def check_params(self, count: int) -> None:
        if count > self.max_params:
            raise too_many_params(self.max_params)

    def deepest_page(self, size: int) -> int:
        """The last page the search window reaches at ``size`` hits a page."""
        return max(1, MAX_WINDOW // size)


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def _values(name: str, values: Sequence[str] | None, limits: Limits) -> tuple[str, ...]:
    if not values:
        return ()
    if len(values) > limits.max_filter_values:
        raise too_many_values(name, limits.max_filter_values)
    out: list[str] = []
    for raw in values:
        value = raw.strip()
        if len(value) > MAX_FILTER_CHARS or _has_control(value):
            raise bad_value(name)
        if value and value not in out:
            out.append(value)
    return tuple(out)


def _year(value: int | None) -> int | None:
    return None if value is None else min(max(value, MIN_YEAR), MAX_YEAR)


def clean_text(q: str | None, limits: Limits) -> str:
    """The search text cut at the bound, control characters turned to spaces."""
    text = (q or "")[: limits.max_query_chars]
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text).strip()


def search_query(
    limits: Limits,
    q: str | None = None,
    *,
    archive: Sequence[str] | None = None,
    level: Sequence[str] | None = None,
    fonds: Sequence[str] | None = None,
    retention: Sequence[str] | None = None,
    format: Sequence[str] | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
    sort: str = "relevance",
    page: int = 1,
    size: int = 20,
) -> SearchQuery:
    """The :class:`SearchQuery` a request asks for, within the bounds (see the module docstring)."""
    size = min(max(size, 1), limits.max_page_size)
    page = max(page, 1)
    if page > limits.deepest_page(size):
        raise no_such_page(page, limits.deepest_page(size))
    query = SearchQuery(
        q=clean_text(q, limits),
        archives=tuple(a.upper() for a in _values("archive", archive, limits)),
        levels=_values("level", level, limits),
        fonds=_values("fonds", fonds, limits),
        retentions=_values("retention", retention, limits),
        formats=_values("format", format, limits),
        year_from=_year(year_from),
        year_to=_year(year_to),
        sort=sort if sort in SORTS else "relevance",  # type: ignore[arg-type]
        page=page,
        size=size,
    )
    if len(urlencode(query_params(query))) > limits.max_query_bytes:
        raise query_too_long(limits.max_query_bytes)
    return query


def check_page(page: int, pages: int) -> None:
    """Refuse a page past the last one (``pages`` counts at least 1)."""
    if page > pages:
        raise no_such_page(page, pages)


#: The fields of a :class:`SearchQuery` that links carry, in the order they carry them; the filters are
#: named as :data:`FILTERS`.
LINK_FIELDS: tuple[str, ...] = (
    "q",
    "archives",
    "levels",
    "fonds",
    "retentions",
    "formats",
    "year_from",
    "year_to",
    "sort",
    "size",
    "page",
)
_FILTER_OF_FIELD = dict(zip(LINK_FIELDS[1:6], FILTERS, strict=True))


def field_params(field: str, value: object, default_size: int = 20) -> list[tuple[str, str]]:
    """The query parameters one field of a query (one of :data:`LINK_FIELDS`) adds to its links: none for
    a default (no text, no filter, relevance, the default size, page 1)."""
    if field in _FILTER_OF_FIELD:
        name = _FILTER_OF_FIELD[field]
        return [(name, v) for v in value]  # type: ignore[attr-defined]
    if field == "q":
        return [("q", value)] if value else []  # type: ignore[list-item]
    if field in ("year_from", "year_to"):
        return [] if value is None else [(field, str(value))]
    if field == "sort":
        return [] if value == "relevance" else [("sort", value)]  # type: ignore[list-item]
    if field == "size":
        return [] if value == default_size else [("size", str(value))]
    if field == "page":
        return [] if value == 1 else [("page", str(value))]
    raise ValueError(f"not a link field: {field}")


def query_params(query: SearchQuery, default_size: int = 20) -> list[tuple[str, str]]:
    """The query parameters that ask for ``query`` again (page 1 and defaults left out): what every link
    of a search page is built from, so its length is bounded by the query's, whatever was sent."""
    return [p for f in LINK_FIELDS for p in field_params(f, getattr(query, f), default_size)]


def filter_values(query: SearchQuery) -> tuple[tuple[str, ...], ...]:
    """The query's filter values, in the order of :data:`FILTERS`."""
    return (query.archives, query.levels, query.fonds, query.retentions, query.formats)
