"""The Elasticsearch backend: the public index of this node behind an alias (``ARCHIVE_ELASTICSEARCH_INDEX``,
default ``pearl-archive``) that points at one versioned index ``<alias>-v<timestamp>``, so that
:mod:`search.reindex` can rebuild with no downtime.

Analysis: core Elasticsearch only
---------------------------------
The test server is the ``integ-test-zip`` distribution, which has only the core and x-pack-core/security
modules: no ``analysis-common`` (so no ``cjk`` analyzer, ``cjk_bigram``, ``ngram``, ``edge_ngram``,
``asciifolding``, ``pattern``/``keyword`` tokenizers or ``mapping``/``html_strip`` char filters) and no ICU.
Production runs the same 8.19 image family, and we use only what both have, so tests and production behave
alike:

- every text field uses the built-in ``standard`` analyzer (standard tokenizer + lowercase, no stop words):
  UAX #29 word breaks split a run of Han characters into **single characters** (广州市 → 广 州 市) and keep
  other words whole (``Tianhe``, ``2056.74``);
- each text field has a ``.bigram`` sub-field: the same tokens through the core ``shingle`` filter (pairs only,
  no separator), so 广州市 → 广州 州市. A 2-character query is one term lookup there, a 3+-character query a
  phrase of bigrams (consecutive, so 城市规划 does not match 城市总体规划) — far cheaper on a large index than a
  phrase of very common single characters;
- a 1-character query (港) is a term on the unigram field; other words are phrases on the unigram field
  (whole words, case-insensitive, no stemming);
- NFKC (full-width → half-width), which ES core cannot do, is applied in Python to the indexed text, as
  :func:`search.backend.normalise` does to the query; where NFKC changes a display field the original is kept
  in ``display`` (stored, not indexed) so hits show what the archive wrote;
- archival codes: ``archival_code`` (keyword, as written) for display and exact lookup, ``code_key`` (keyword,
  :func:`search.backend.code_key`, plus a ``lowercase`` normalizer) for exact and ``prefix`` matches, and
  ``archival_code.text``/``.bigram`` for words and characters inside codes;
- facet fields are ``keyword`` with eager global ordinals; ``decade`` is precomputed (the ``year`` facet);
  ``year_start``/``year_end`` are integers for the year-range filter (overlap, as the contract says).

Queries are built from :func:`search.backend.parse_query` only — ``multi_match`` (type phrase), ``term``,
``prefix`` and ``bool`` — never ``query_string``: no user input is ever Lucene syntax. A code-like query also
matches codes that start with it (``constant_score`` boosts put an exact code first, then prefix hits, then
text hits). Every search also filters on ``access_status: open`` (defence in depth; ``index`` already
refuses anything else through :func:`search.documents.require_public`).

A search is one ``_msearch`` round trip of two requests: a ``size: 0`` request for the exact total and the
facets (terms aggregations over every hit, so a facet count is what that filter would give; eligible for the
shard request cache, so repeated queries and "next page" do not recount) and a request for the page (with
``track_total_hits: false``, so relevance ranking can skip non-competitive documents). Highlights of the
short fields are computed with :func:`search.backend.highlight` from the stored originals (identical to the
embedded backend); the file text, which may be large, is highlighted by Elasticsearch (unified highlighter
on offsets stored in the postings, ``<mark>`` tags, HTML encoder).

Writes are ``_bulk`` requests whose NDJSON body is built here (each source serialised once, with orjson when
installed, which the client then also uses for its own JSON) and sent as bytes, in chunks of :data:`BULK_CHUNK`
documents (a bigger batch keeps one chunk in flight while the next is built); the answer is filtered to each
item's outcome. Documents are bounded by :mod:`search.documents` (at most ~1 M characters of file text and
20,000 of description per record). Writes are visible after the refresh interval (1 s) or after
:meth:`ElasticBackend.refresh`; pass ``refresh="wait_for"`` (or True) to wait. A write to a missing alias
never auto-creates a dynamically mapped index (``require_alias``). ``clear`` scrolls and bulk-deletes, as
``_delete_by_query`` (the ``reindex`` module) is not in the integ-test-zip either.
If Elasticsearch cannot be reached every method raises :class:`ElasticUnavailable` (a
:class:`search.SearchError`), so the indexer leaves its outbox rows pending and retries later.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, cast

import elasticsearch
from elastic_transport import TransportError
from elasticsearch import helpers

from archive.errors import ServiceUnavailable
from search.backend import (
    FACETS,
    MAX_WINDOW,
    TOKEN,
    Hit,
    ParsedQuery,
    RecordDoc,
    SearchError,
    SearchQuery,
    SearchResult,
    code_key,
    highlight,
    nfkc,
    normalise,
    parse_query,
)
from search.documents import require_public

if TYPE_CHECKING:
    from archive.config import Settings


def _json_dumps(value: Any) -> bytes:
    # as the client encodes by default: a lone surrogate in user text passes through instead of failing
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


try:  # orjson (an optional speed-up the elasticsearch client also uses) serialises ~3x faster than json
    import orjson
    from elasticsearch.serializer import OrjsonSerializer

    def _dumps(value: Any) -> bytes:
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:  # lone surrogates, which orjson refuses
            return _json_dumps(value)

    class _Serializer(OrjsonSerializer):
        """The client's JSON through orjson (requests and responses), or ``json`` for what orjson refuses."""

        def json_dumps(self, data: Any) -> bytes:
            try:
                return super().json_dumps(data)
            except TypeError:
                return _json_dumps(data)

    def _client_options() -> dict[str, Any]:
        return {"serializer": _Serializer()}

except ImportError:  # pragma: no cover
    _dumps = _json_dumps

    def _client_options() -> dict[str, Any]:
        return {}


Refresh = bool | Literal["wait_for"]

#: Bump when the mapping or analysis changes; ``archive reindex`` then builds an index with the new one.
MAPPING_VERSION = 1
#: Most distinct values returned per facet (archives, fonds, formats… of one node stay far below this).
FACET_SIZE = 1_000
#: Most documents per ``_bulk`` request. A batch given to ``index`` that is bigger is sent as several requests,
#: one in flight while the next is built (a sending thread), so Python's work overlaps the server's.
BULK_CHUNK = 1_000
#: A document is at most ~3 MB (documents.py caps): a request stays well below Elasticsearch's 100 MB limit.
BULK_CHUNK_BYTES = 50 * 1024 * 1024
#: What a ``_bulk`` answer is cut down to: the outcome of each item, and the error of those that failed.
_BULK_FILTER = "items.*._id,items.*.status,items.*.result,items.*.error"
SNIPPET_CHARS = 80
MAX_SNIPPETS = 3

TEXT_FIELDS = ("title", "creator", "description", "keywords", "text")
#: field → boost, for the unigram and bigram sub-fields alike (code > title > creator/description > text).
FIELD_BOOSTS: dict[str, float] = {
    "archival_code.text": 8.0,
    "title": 5.0,
    "creator": 2.0,
    "description": 2.0,
    "keywords": 2.0,
    "text": 1.0,
}
EXACT_CODE_BOOST = 20_000.0
CODE_PREFIX_BOOST = 10_000.0
#: What is read back for a hit (never the file text, which may be a megabyte).
HIT_SOURCE = [
    "id", "archive", "archival_code", "title", "creator", "date_text", "level", "fonds", "retention",
    "formats", "description", "keywords", "display",
]  # fmt: skip
_FACET_FIELDS = {
    "archive": "archive",
    "level": "level",
    "fonds": "fonds",
    "year": "decade",
    "retention": "retention",
    "format": "formats",
}
# Characters the standard tokenizer keeps inside a word (UAX #29 MidNum/MidLetter/ExtendNumLet: 2056.74,
# don't, a_b): kept between the words of a query term so the query is tokenised like the index.
_JOINERS = frozenset(".,'’:_")


def _text_field(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "text",
        "analyzer": "standard",
        **(extra or {}),
        "fields": {"bigram": {"type": "text", "analyzer": "han_bigram", "index_options": "positions"}},
    }


def _keyword(**extra: Any) -> dict[str, Any]:
    return {"type": "keyword", **extra}


SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "number_of_replicas": 0,
    "refresh_interval": "1s",
    # the unified highlighter reads offsets from the postings of ``text``; this only bounds re-analysis
    "highlight.max_analyzed_offset": 1_000_000,
    "analysis": {
        "filter": {
            "bigram_shingle": {
                "type": "shingle",
                "min_shingle_size": 2,
                "max_shingle_size": 2,
                "output_unigrams": False,
                "token_separator": "",
            }
        },
        "analyzer": {
            # built from core parts only (standard tokenizer, lowercase, shingle): see the module docstring
            "han_bigram": {
                "type": "custom",
                "tokenizer": "standard",
                "filter": ["lowercase", "bigram_shingle"],
            }
        },
        "normalizer": {"folded": {"type": "custom", "filter": ["lowercase"]}},
    },
}

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "_meta": {"mapping_version": MAPPING_VERSION},
    "properties": {
        "id": _keyword(),
        "archive": _keyword(eager_global_ordinals=True),
        "level": _keyword(eager_global_ordinals=True),
        "fonds": _keyword(eager_global_ordinals=True),
        "retention": _keyword(eager_global_ordinals=True),
        "formats": _keyword(eager_global_ordinals=True),
        "puids": _keyword(),
        "language": _keyword(),
        "access_status": _keyword(),
        # a multi-field cannot have multi-fields of its own: the code's word and bigram views sit side by side
        "archival_code": {
            "type": "keyword",
            "fields": {
                "text": {"type": "text", "analyzer": "standard"},
                "bigram": {"type": "text", "analyzer": "han_bigram", "index_options": "positions"},
            },
        },
        "code_key": _keyword(normalizer="folded"),
        "title": _text_field(),
        "creator": _text_field(),
        "description": _text_field(),
        "keywords": _text_field(),
        "text": _text_field({"index_options": "offsets"}),
        "date_text": _keyword(index=False, doc_values=False),
        "date_start": {"type": "date", "format": "strict_date"},
        "date_end": {"type": "date", "format": "strict_date"},
        "year_start": {"type": "integer"},
        "year_end": {"type": "integer"},
        "decade": _keyword(eager_global_ordinals=True),
        "text_truncated": {"type": "boolean", "index": False},
        "display": {"type": "object", "enabled": False},
    },
}


class ElasticUnavailable(SearchError, ServiceUnavailable):
    """Elasticsearch could not be reached or is overloaded (connection refused, timeout, 429/5xx): retry later."""

    code = "SRC001"
    service_name = "Elasticsearch"


class IndexMissing(SearchError):
    """The alias points at no index (call ``ensure_ready`` or ``archive reindex``)."""

    code = "SRC002"


def client_url(client: elasticsearch.Elasticsearch) -> str:
    """The first node's URL of ``client`` (for messages), or "" if it cannot be told."""
    try:
        return str(client.transport.node_pool.all()[0].base_url)
    except (AttributeError, IndexError, TypeError):
        return ""


def translate_error(exc: Exception, what: str, url: str = "") -> SearchError:
    """The coded error for an Elasticsearch client failure (``what``: what we were doing, in English)."""
    if isinstance(exc, TransportError):
        return ElasticUnavailable(url=url, reason=exc, what=what)
    if isinstance(exc, elasticsearch.ApiError):
        status = exc.meta.status if exc.meta else 0
        if status == 429 or status >= 500:
            return ElasticUnavailable(url=url, reason=exc, what=what)
        if status == 404:
            return IndexMissing(what=what, reason=exc)
    return SearchError(variant="elastic", what=what, reason=exc)


def index_settings() -> dict[str, Any]:
    return {"settings": SETTINGS, "mappings": MAPPINGS}


def new_index_name(alias: str) -> str:
    """A fresh versioned index name, ``<alias>-v<UTC timestamp with microseconds>``."""
    return f"{alias}-v{dt.datetime.now(dt.UTC).strftime('%Y%m%d%H%M%S%f')}"


# -- documents ------------------------------------------------------------------------------------------


def to_source(doc: RecordDoc) -> dict[str, Any]:
    """The ``_source`` stored for ``doc``: searchable fields NFKC-normalised, originals kept in ``display``."""
    display: dict[str, Any] = {}
    searchable: dict[str, Any] = {}
    for name in ("title", "creator", "description"):
        value = getattr(doc, name)
        if value is None:
            continue
        folded = nfkc(value)
        searchable[name] = folded
        if folded != value:
            display[name] = value
    keywords = [nfkc(k) for k in doc.keywords]
    if keywords != list(doc.keywords):
        display["keywords"] = list(doc.keywords)
    source: dict[str, Any] = {
        "id": doc.id,
        "archive": doc.archive,
        "level": doc.archive_level,
        "fonds": doc.fonds,
        "retention": doc.retention,
        "language": doc.language,
        "access_status": doc.access_status,
        "archival_code": doc.archival_code,
        "code_key": code_key(doc.archival_code),
        "keywords": keywords,
        "formats": list(doc.formats),
        "puids": list(doc.puids),
        "date_text": doc.date_text,
        "date_start": doc.date_start.isoformat() if doc.date_start else None,
        "date_end": doc.date_end.isoformat() if doc.date_end else None,
        "year_start": doc.year_start,
        "year_end": doc.year_end,
        "decade": doc.decade,
        "text_truncated": doc.text_truncated,
        **searchable,
    }
    if doc.text:
        source["text"] = nfkc(doc.text)
    if display:
        source["display"] = display
    return source  # None is stored as null, which Elasticsearch indexes as a missing value


# -- queries --------------------------------------------------------------------------------------------


def _fields(suffix: str = "") -> list[str]:
    out = []
    for name, boost in FIELD_BOOSTS.items():
        field = name.removesuffix(".text") + ".bigram" if suffix and name.endswith(".text") else name + suffix
        out.append(f"{field}^{boost:g}")
    return out


def _phrase(text: str, fields: list[str]) -> dict[str, Any]:
    return {"multi_match": {"query": text, "type": "phrase", "fields": fields}}


def _word_span(raw: str, start: int, end: int) -> str:
    """The query text of consecutive words of a term, keeping word-inner joiners (2056.74) as written."""
    return "".join(c if c.isalnum() or c in _JOINERS else " " for c in raw[start:end])


def text_clauses(parsed: ParsedQuery, *, field: str | None = None) -> list[dict[str, Any]]:
    """One clause per piece that must match (AND), mirroring the embedded backend's analysis.

    A run of 2+ CJK characters is a phrase on the ``.bigram`` fields, one CJK character a term on the unigram
    fields, consecutive words a phrase on the unigram fields. ``field`` restricts to one unigram field, for
    the highlighter, which marks only terms of the field it highlights.
    """
    uni = [field] if field else _fields()
    bi = [field] if field else _fields(".bigram")
    clauses: list[dict[str, Any]] = []
    for term in parsed.terms:
        words: tuple[int, int] | None = None
        for m in TOKEN.finditer(term.raw):
            if m.group(1) is None:
                words = (words[0] if words else m.start(), m.end())
                continue
            if words:
                clauses.append(_phrase(_word_span(term.raw, *words), uni))
                words = None
            run = m.group(1)
            clauses.append(_phrase(run, uni if len(run) == 1 else bi))
        if words:
            clauses.append(_phrase(_word_span(term.raw, *words), uni))
    unique: dict[str, dict[str, Any]] = {repr(c): c for c in clauses}
    return list(unique.values())


def filter_clauses(query: SearchQuery) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"term": {"access_status": "open"}}]
    for field, values in (
        ("archive", query.archives),
        ("level", query.levels),
        ("fonds", query.fonds),
        ("retention", query.retentions),
    ):
        if values:
            filters.append({"terms": {field: list(values)}})
    if query.formats:
        filters.append(
            {
                "bool": {
                    "should": [
                        {"terms": {"formats": list(query.formats)}},
                        {"terms": {"puids": list(query.formats)}},
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    if query.year_from is not None:
        filters.append({"range": {"year_end": {"gte": query.year_from}}})
    if query.year_to is not None:
        filters.append({"range": {"year_start": {"lte": query.year_to}}})
    return filters


def build_query(query: SearchQuery, parsed: ParsedQuery) -> dict[str, Any]:
    """The Elasticsearch query of a search: text (and code) clauses plus filters. Never raw user syntax."""
    filters = filter_clauses(query)
    clauses = text_clauses(parsed)
    if not clauses and not parsed.code:
        return {"bool": {"filter": filters}}
    text = {"bool": {"must": clauses}} if clauses else None
    if parsed.code:
        key = code_key(parsed.code)
        should: list[dict[str, Any]] = [
            {"constant_score": {"filter": {"term": {"code_key": key}}, "boost": EXACT_CODE_BOOST}},
            {"constant_score": {"filter": {"prefix": {"code_key": key}}, "boost": CODE_PREFIX_BOOST}},
        ]
        if text:
            should.append(text)
        return {"bool": {"should": should, "minimum_should_match": 1, "filter": filters}}
    assert text is not None
    return {"bool": {"must": clauses, "filter": filters}}


def _sort(query: SearchQuery, has_text: bool) -> list[Any]:
    if query.sort == "relevance" and has_text:
        return ["_score"]  # score alone lets Lucene skip non-competitive blocks (no total is tracked here)
    if query.sort == "date_asc":
        return [{"date_start": {"order": "asc", "missing": "_last"}}, {"id": "asc"}]
    return [{"date_start": {"order": "desc", "missing": "_last"}}, {"id": "desc"}]


_ADJACENT_MARKS = re.compile(r"</mark>(\s*)<mark>")


def _merge_marks(snippet: str) -> str:
    """Join the per-character marks of a CJK phrase (<mark>深</mark><mark>圳</mark> → <mark>深圳</mark>)."""
    return _ADJACENT_MARKS.sub(lambda m: m.group(1), snippet)


def _highlights(source: Mapping[str, Any], parsed: ParsedQuery, es_text: list[str]) -> dict[str, list[str]]:
    display = source.get("display") or {}
    code = str(source.get("archival_code", ""))
    keywords = display.get("keywords", source.get("keywords") or [])
    fields: list[tuple[str, str | None, bool]] = [
        ("title", display.get("title", source.get("title")), True),
        ("archival_code", code, True),
        ("creator", display.get("creator", source.get("creator")), True),
        ("description", display.get("description", source.get("description")), False),
        ("keywords", "；".join(keywords), True),
    ]
    marks: dict[str, list[str]] = {}
    needles = {part.text for term in parsed.terms for part in term.parts}
    for name, value, whole in fields:
        # the shared highlighter folds character by character (slow); skip fields that cannot match
        folded = normalise(value) if value else ""
        snippets = highlight(value, parsed, whole=whole) if any(n in folded for n in needles) else []
        if name == "archival_code" and parsed.code and code_key(code).startswith(parsed.code):
            n = len(parsed.code)
            snippets = [f"<mark>{html.escape(code[:n])}</mark>{html.escape(code[n:])}"]
        if snippets:
            marks[name] = snippets
    if es_text:
        marks["text"] = [_merge_marks(s) for s in es_text]
    return marks


def _facets(aggs: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for facet in FACETS:
        buckets = aggs.get(facet, {}).get("buckets", [])
        counted = {str(b["key"]): int(b["doc_count"]) for b in buckets}
        out[facet] = dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


# -- the backend ----------------------------------------------------------------------------------------


class ElasticBackend:
    """SearchBackend on Elasticsearch 8.x, reading and writing through the alias ``alias``."""

    name = "elastic"

    def __init__(
        self,
        client: elasticsearch.Elasticsearch | str,
        alias: str = "pearl-archive",
        *,
        refresh: Refresh = False,
        chunk_size: int = BULK_CHUNK,
        request_timeout: float = 30.0,
    ) -> None:
        if isinstance(client, str):
            client = elasticsearch.Elasticsearch(
                client,
                request_timeout=request_timeout,
                max_retries=2,
                retry_on_timeout=True,
                **_client_options(),
            )
        self.client = client
        self.url = client_url(client)
        self.alias = alias
        self.refresh_mode = refresh
        self.chunk_size = chunk_size
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> ElasticBackend:
        if not settings.elasticsearch_url:
            raise SearchError(variant="no_url")
        return cls(settings.elasticsearch_url, settings.elasticsearch_index, **kw)

    def __repr__(self) -> str:
        return f"ElasticBackend(alias={self.alias!r})"

    def close(self) -> None:
        self.client.close()

    # -- index management -------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Whether the cluster answers (``GET /`` is refused by some distributions; health is not)."""
        try:
            self.client.cluster.health(timeout="5s")
            return True
        except (TransportError, elasticsearch.ApiError):
            return False

    def indices(self) -> list[str]:
        """The concrete indices behind the alias (normally one)."""
        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except elasticsearch.NotFoundError:
            return []
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, "reading the alias", self.url) from exc

    def create_index(self, name: str, *, alias: bool = False, bulk_load: bool = False) -> None:
        """Create the versioned index ``name`` with our mapping; with ``alias`` the alias is added atomically.

        ``bulk_load`` turns refreshes off (the reindex turns them on again before swapping the alias).
        """
        body = index_settings()
        settings = dict(body["settings"])
        if bulk_load:
            settings["refresh_interval"] = "-1"
        try:
            self.client.indices.create(
                index=name,
                settings=settings,
                mappings=body["mappings"],
                aliases={self.alias: {"is_write_index": True}} if alias else None,
                wait_for_active_shards="1",
            )
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, f"creating index {name}", self.url) from exc

    def ensure_ready(self) -> None:
        """Create the first versioned index and the alias if the alias is missing."""
        try:
            if self.client.indices.exists_alias(name=self.alias):
                self._ready = True
                return
            if self.client.indices.exists(index=self.alias):
                raise SearchError(variant="concrete_index", alias=self.alias)
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, "checking the index", self.url) from exc
        try:
            # A deterministic first name: two processes starting together create it once.
            self.create_index(f"{self.alias}-v0", alias=True)
        except SearchError as exc:
            if "resource_already_exists_exception" not in str(exc):
                raise
        self._ready = True

    def refresh(self) -> None:
        """Make every write so far visible to search."""
        try:
            self.client.indices.refresh(index=self.alias)
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, "refreshing", self.url) from exc

    # -- writing ----------------------------------------------------------------------------------------

    def _bulk(
        self, docs: Iterable[tuple[bytes, ...]], count: int, what: str, index: str | None = None
    ) -> list[Any]:
        """Send ``count`` documents, each given as its NDJSON lines (the action, and for an index its source),
        in requests of at most :attr:`chunk_size` documents and :data:`BULK_CHUNK_BYTES`; the items of the
        answers, cut down to :data:`_BULK_FILTER`, in order.

        Each request body is joined here and given to the client as bytes: no per-document action dicts,
        no second JSON encoding. A 429 on an item (the server is overloaded) is reported as a failed item
        and turned into :class:`ElasticUnavailable` by the caller, so the indexer retries the batch later.
        """
        refresh = self.refresh_mode if index is None else False

        def send(body: bytes) -> list[Any]:
            answer = self.client.bulk(
                operations=cast(Any, body),  # bytes are sent as they are
                index=index or self.alias,
                refresh=refresh,
                # never let a write to a missing alias auto-create a concrete index with a dynamic mapping
                require_alias=index is None,
                filter_path=_BULK_FILTER,
            )
            return list(answer.body.get("items", ()))

        items: list[Any] = []
        bodies = _bodies(docs, self.chunk_size, BULK_CHUNK_BYTES)
        try:
            if count <= self.chunk_size:  # one request (unless over the byte cap): no sending thread
                for body in bodies:
                    items += send(body)
                return items
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="es-bulk") as sender:
                in_flight: Future[list[Any]] | None = None
                for body in bodies:
                    if in_flight is not None:
                        items += in_flight.result()
                    in_flight = sender.submit(send, body)
                if in_flight is not None:
                    items += in_flight.result()
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, what, self.url) from exc
        return items

    def index(self, docs: Iterable[RecordDoc], *, into: str | None = None) -> int:
        """Upsert ``docs`` (refusing the whole batch if any is not open); ``into`` names a concrete index
        instead of the alias (used by the reindex)."""
        batch = require_public(docs)
        if not batch:
            return 0
        unique = list({d.id: d for d in batch}.values())
        if into is None and not self._ready:
            self.ensure_ready()  # once per instance: the indexer may write before anyone searched
        lines = ((b'{"index":{"_id":' + _dumps(d.id) + b"}}\n", _dumps(to_source(d)) + b"\n") for d in unique)
        items = self._bulk(lines, len(unique), f"indexing {len(unique)} documents", into)
        failed = [item["index"] for item in items if "error" in item.get("index", {})]
        if failed:
            first = failed[0]
            status = int(first.get("status") or 0)
            refused = {
                "failed": len(failed),
                "total": len(unique),
                "doc_id": first.get("_id"),
                "error": first["error"],
            }
            if status == 429 or status >= 500:
                raise ElasticUnavailable(variant="overloaded", url=self.url, **refused)
            raise SearchError(variant="refused", **refused)
        return len(batch)

    def delete(self, ids: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        lines = ((b'{"delete":{"_id":' + _dumps(i) + b"}}\n",) for i in wanted)
        removed = 0
        for item in self._bulk(lines, len(wanted), f"deleting {len(wanted)} documents"):
            outcome = item.get("delete", {})
            if outcome.get("result") == "deleted":
                removed += 1
            elif "error" in outcome and outcome.get("status") != 404:
                raise SearchError(variant="delete", doc_id=outcome.get("_id"), error=outcome.get("error"))
        return removed

    def clear(self) -> None:
        """Remove every document: the ids are scrolled and bulk-deleted (``_delete_by_query`` lives in the
        ``reindex`` module, which the integ-test-zip lacks). To drop a large index at once, reindex instead."""
        try:
            ids = [
                h["_id"]
                for h in helpers.scan(
                    self.client,
                    index=self.alias,
                    query={"query": {"match_all": {}}},
                    _source=False,
                    size=1_000,
                )
            ]
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, "clearing the index", self.url) from exc
        self.delete(ids)
        self.refresh()

    # -- searching --------------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        parsed = parse_query(query.q)
        if parsed.empty and not parsed.code and query.q.strip():
            # Text with nothing searchable in it (only punctuation, emoji…): it matches nothing.
            return SearchResult(0, [], {k: {} for k in FACETS}, query.page, query.size)
        es_query = build_query(query, parsed)
        has_text = not parsed.empty or bool(parsed.code)
        size = max(0, min(query.size, MAX_WINDOW - query.offset))
        counting: dict[str, Any] = {"size": 0, "query": es_query, "track_total_hits": True}
        if query.facets:
            counting["aggs"] = {
                facet: {"terms": {"field": field, "size": FACET_SIZE}}
                for facet, field in _FACET_FIELDS.items()
            }
        page: dict[str, Any] = {
            "size": size,
            "from": query.offset if size else 0,
            "query": es_query,
            "sort": _sort(query, has_text),
            "track_total_hits": False,
            "_source": HIT_SOURCE,
        }
        # Sorted by date, scores are not computed (as on the embedded index): ``track_scores`` would score
        # every match only to label the page, and costs a date-sorted text query about half its time.
        highlight_on = query.highlight and not parsed.empty
        if highlight_on and size:
            clauses = text_clauses(parsed, field="text")
            page["highlight"] = {
                "pre_tags": ["<mark>"],
                "post_tags": ["</mark>"],
                "encoder": "html",
                "fields": {
                    "text": {
                        "type": "unified",
                        "fragment_size": SNIPPET_CHARS,
                        "number_of_fragments": MAX_SNIPPETS,
                        "no_match_size": 0,
                        "highlight_query": {"bool": {"should": clauses}},
                    }
                },
            }
        searches: list[dict[str, Any]] = [{"request_cache": True}, counting]
        if size:
            searches += [{}, page]
        try:
            body = b"".join(_dumps(line) + b"\n" for line in searches)
            answer = self.client.msearch(index=self.alias, searches=cast(Any, body))  # sent as it is
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, "searching", self.url) from exc
        responses = answer["responses"]
        for r in responses:
            if "error" in r:
                status = int(r.get("status") or 0)
                error = r["error"]
                if status == 429 or status >= 500:
                    raise ElasticUnavailable(variant="query", url=self.url, reason=error)
                raise (IndexMissing if status == 404 else SearchError)(variant="query", reason=error)
        counted = responses[0]
        total = int(counted["hits"]["total"]["value"])
        facets = _facets(counted.get("aggregations", {})) if query.facets else {k: {} for k in FACETS}
        hits: list[Hit] = []
        if size:
            for h in responses[1]["hits"]["hits"]:
                src = h["_source"]
                display = src.get("display") or {}
                marks = (
                    _highlights(src, parsed, h.get("highlight", {}).get("text", [])) if highlight_on else {}
                )
                score = h.get("_score")
                hits.append(
                    Hit(
                        id=src["id"],
                        archive=src["archive"],
                        archival_code=src["archival_code"],
                        title=display.get("title", src.get("title", "")),
                        creator=display.get("creator", src.get("creator")),
                        date=src.get("date_text"),
                        score=round(float(score), 4) if score else 0.0,
                        level=src.get("level"),
                        fonds=src.get("fonds"),
                        retention=src.get("retention"),
                        formats=tuple(src.get("formats") or ()),
                        highlights=marks,
                    )
                )
        return SearchResult(total, hits, facets, query.page, query.size, True)

    def count(self, query: SearchQuery | None = None) -> int:
        try:
            if query is None:
                return int(self.client.count(index=self.alias)["count"])
            parsed = parse_query(query.q)
            if parsed.empty and not parsed.code and query.q.strip():
                return 0
            return int(self.client.count(index=self.alias, query=build_query(query, parsed))["count"])
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, "counting", self.url) from exc

    def ids(self) -> set[str]:
        """Every document id in the index (for reconciliation and tests)."""
        try:
            return {
                h["_id"]
                for h in helpers.scan(
                    self.client, index=self.alias, query={"query": {"match_all": {}}}, _source=False
                )
            }
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, "listing ids", self.url) from exc


def _bodies(docs: Iterable[tuple[bytes, ...]], count: int, max_bytes: int) -> Iterator[bytes]:
    """NDJSON bodies of at most ``count`` documents (each given as its lines) and at most ``max_bytes``
    (unless one document alone is bigger)."""
    chunk: list[bytes] = []
    n = size = 0
    for lines in docs:
        length = sum(map(len, lines))
        if n and (n >= count or size + length > max_bytes):
            yield b"".join(chunk)
            chunk, n, size = [], 0, 0
        chunk.extend(lines)
        n += 1
        size += length
    if n:
        yield b"".join(chunk)
