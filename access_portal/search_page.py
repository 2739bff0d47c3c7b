"""What a search result page shows, worked out in Python before rendering: its links, the filter chips,
the facet lists and the hits as the template prints them.

Every link is the page's query (page 1) with some fields changed, as :func:`access_portal.limits.query_params`
gives it, so its length is bounded by the query's whatever the request carried. A page has ~60 of them:
:class:`SearchLinks` encodes each field of the query once and re-encodes only the fields a link changes.
The template gets plain tuples and ready strings (``Markup`` where the text is already HTML-safe): a Jinja
attribute lookup on a dict, a call or a ``loop`` variable costs more than the Python that replaces it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote_plus

from markupsafe import Markup

from access_portal.limits import FILTERS, LINK_FIELDS, field_params
from access_portal.schemas import HitOut, record_url
from access_portal.services import safe_snippet
from search import Hit, SearchQuery

#: Facet name → the SearchQuery field its values filter.
FACET_FIELDS = dict(zip(FILTERS, ("archives", "levels", "fonds", "retentions", "formats"), strict=True))

#: Values of each facet a page shows (the backend counts more; the API gives them all).
FACET_VALUES_SHOWN = 12

#: Snippets of one field a hit shows.
SNIPPETS_SHOWN = 2

#: Scopes a visitor may choose explicitly; a link keeps the one chosen.
SCOPES = ("local", "region")


class SearchLinks:
    """The ``/search`` links of one result page: ``url(**changes)`` is
    ``/search?`` + ``urlencode(query_params(replace(query, page=1, **changes)))``, followed by
    ``scope=…`` when the visitor chose one (``local`` or ``region``)."""

    def __init__(self, query: SearchQuery, scope: str | None = None) -> None:
        self.query = query
        self._scope = [f"scope={scope}"] if scope in SCOPES else []
        self._encoded = {f: self._encode(f, 1 if f == "page" else getattr(query, f)) for f in LINK_FIELDS}

    @staticmethod
    def _encode(field: str, value: object) -> list[str]:
        # the names are the fixed ASCII words of LINK_FIELDS/FILTERS, which quote_plus leaves as they are
        return [f"{k}={quote_plus(v)}" for k, v in field_params(field, value)]

    def url(self, **changes: Any) -> str:
        parts: list[str] = []
        for f in LINK_FIELDS:
            parts += self._encode(f, changes[f]) if f in changes else self._encoded[f]
        parts += self._scope
        return "/search?" + "&".join(parts) if parts else "/search"


@dataclass(slots=True)
class FacetLink:
    """One facet value shown: its label, count, whether it is selected, and the plain link that toggles it."""

    value: str
    label: str
    count: int
    selected: bool
    url: str


class Chip(NamedTuple):
    """A filter in force, with the link that removes it."""

    facet: str
    value: str
    label: str
    url: str


def facet_links(
    links: SearchLinks, facets: Mapping[str, Mapping[str, int]], shown: Callable[[str, str], str]
) -> dict[str, list[FacetLink]]:
    """For each facet, its first :data:`FACET_VALUES_SHOWN` values as links."""
    query = links.query
    out: dict[str, list[FacetLink]] = {}
    for facet, values in facets.items():
        found: list[FacetLink] = []
        for value, count in itertools.islice(values.items(), FACET_VALUES_SHOWN):
            if facet == "year":
                try:
                    decade = int(value)
                except ValueError:
                    continue
                selected = query.year_from == decade and query.year_to == decade + 9
                url = (
                    links.url(year_from=None, year_to=None)
                    if selected
                    else links.url(year_from=decade, year_to=decade + 9)
                )
            else:
                field = FACET_FIELDS.get(facet)
                if field is None:
                    continue
                current: tuple[str, ...] = getattr(query, field)
                key = value.upper() if facet == "archive" else value
                selected = key in current
                kept = tuple(v for v in current if v != key) if selected else (*current, key)
                url = links.url(**{field: kept})
            found.append(FacetLink(value, shown(facet, value), count, selected, url))
        out[facet] = found
    return out


def active_filters(links: SearchLinks, shown: Callable[[str, str], str]) -> list[Chip]:
    """Chips for the filters in force, each with the link that removes it: one link per kept value, each at
    most as long as the kept query (bounded by ``ARCHIVE_PORTAL_MAX_QUERY_BYTES``), whatever was sent."""
    query = links.query
    chips: list[Chip] = []
    for name, field in FACET_FIELDS.items():
        values: tuple[str, ...] = getattr(query, field)
        for value in values:
            url = links.url(**{field: tuple(v for v in values if v != value)})
            chips.append(Chip(name, value, shown(name, value), url))
    if query.year_from is not None or query.year_to is not None:
        years = f"{query.year_from or ''}–{query.year_to or ''}"
        chips.append(Chip("year", years, years, links.url(year_from=None, year_to=None)))
    return chips


class PageHit(NamedTuple):
    """A hit as the page prints it. ``title`` is the highlighted title (``Markup``: the snippets are
    HTML-safe, :func:`access_portal.services.safe_snippet`) or the plain one (escaped by the template);
    ``snippets`` pairs each other highlighted field's label with its first snippets, joined."""

    url: str
    title: str
    archival_code: str
    archive_name: str
    date: str | None
    creator: str | None
    source: str
    harvested_at: str | None
    snippets: list[tuple[str, Markup]]


def _snippets(
    highlights: Mapping[str, Sequence[str]], field_label: Callable[[str], str], clean: Callable[[str], str]
) -> list[tuple[str, Markup]]:
    return [
        (field_label(field), Markup(" … ".join(clean(s) for s in snippets[:SNIPPETS_SHOWN])))
        for field, snippets in highlights.items()
        if field != "title"
    ]


def _same(snippet: str) -> str:
    return snippet


def page_hits(
    hits: Iterable[Hit | HitOut], names: Mapping[str, str], field_label: Callable[[str], str]
) -> list[PageHit]:
    """The hits as the page prints them; ``names`` are the archives' names in the page's language. A
    :class:`~search.Hit` of this node's index is shown as :meth:`HitOut.of` would give it (its snippets
    made safe here); a :class:`HitOut` (a regional answer) already is."""
    out = []
    labels: dict[str, str] = {}

    def label(field: str) -> str:
        if field not in labels:
            labels[field] = field_label(field)
        return labels[field]

    for h in hits:
        if isinstance(h, HitOut):
            url, source, harvested_at, clean = h.url, h.source, h.harvested_at, _same
        else:
            url, source, harvested_at, clean = (
                record_url(h.archive, h.archival_code),
                "live",
                None,
                safe_snippet,
            )
        title = h.highlights.get("title")
        out.append(
            PageHit(
                url=url,
                title=Markup(clean(title[0])) if title else h.title,
                archival_code=h.archival_code,
                archive_name=names.get(h.archive, h.archive),
                date=h.date,
                creator=h.creator,
                source=source,
                harvested_at=harvested_at,
                snippets=_snippets(h.highlights, label, clean),
            )
        )
    return out
