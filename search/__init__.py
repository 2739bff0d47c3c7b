"""Search over the open records of this node: one interface, two backends, indexing through the outbox.

    backend = get_backend(settings)          # embedded (SQLite FTS5) unless ARCHIVE_ELASTICSEARCH_URL is set
    backend.ensure_ready()
    drain(settings, backend)                  # index what ingest and access changes queued
    result = backend.search(SearchQuery(q="广州", archives=("GZ",), sort="date_desc"))

A regional query fans out to the peer nodes and merges their answers (:mod:`search.federation`:
``await Federation(settings).search(identity, peers, query, local=...)``). Peers' open records harvested
over OAI-PMH live apart, in the regional catalogue copy
(:mod:`search.harvest`; ``catalogue_search(settings, origin_url, SearchQuery(...))`` answers from it).

Only open records ever enter the index (:func:`search.documents.require_public` is called by every backend's
``index``); the contract every backend meets is described in :mod:`search.backend`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from archive.config import Settings
    from search.backend import (
        FACETS,
        MAX_PAGE_SIZE,
        MAX_WINDOW,
        SORTS,
        Hit,
        RecordDoc,
        SearchBackend,
        SearchError,
        SearchQuery,
        SearchResult,
    )
    from search.documents import NotPublic, build_document, doc_id
    from search.embedded import EmbeddedBackend
    from search.federation import Federation, RegionalResult
    from search.harvest import CatalogueAnswer, catalogue_search
    from search.indexer import DrainCounts, drain, enqueue, index_records, pending

# Imported on first use (PEP 562), so that `archive` commands loading search's CLI start quickly.
_WHERE = {
    "FACETS": "backend", "MAX_PAGE_SIZE": "backend", "MAX_WINDOW": "backend", "SORTS": "backend",
    "Hit": "backend", "RecordDoc": "backend", "SearchBackend": "backend", "SearchError": "backend",
    "SearchQuery": "backend", "SearchResult": "backend", "NotPublic": "documents",
    "build_document": "documents", "doc_id": "documents", "EmbeddedBackend": "embedded",
    "DrainCounts": "indexer", "drain": "indexer", "enqueue": "indexer", "pending": "indexer",
    "index_records": "indexer",
    "CatalogueAnswer": "harvest", "catalogue_search": "harvest",
    "Federation": "federation", "RegionalResult": "federation",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"search.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")


__all__ = [
    "FACETS",
    "MAX_PAGE_SIZE",
    "MAX_WINDOW",
    "SORTS",
    "CatalogueAnswer",
    "DrainCounts",
    "EmbeddedBackend",
    "Federation",
    "Hit",
    "NotPublic",
    "RecordDoc",
    "RegionalResult",
    "SearchBackend",
    "SearchError",
    "SearchQuery",
    "SearchResult",
    "build_document",
    "catalogue_search",
    "doc_id",
    "drain",
    "embedded_path",
    "enqueue",
    "get_backend",
    "index_records",
    "pending",
]


def embedded_path(settings: Settings) -> str:
    return str(settings.home_dir / "search.sqlite3")


def get_backend(settings: Settings) -> SearchBackend:
    """The node's search backend: Elasticsearch when ``ARCHIVE_ELASTICSEARCH_URL`` is set, else embedded."""
    url = getattr(settings, "elasticsearch_url", None)
    if url:
        module = importlib.import_module("search.elastic")
        return cast("SearchBackend", module.ElasticBackend.from_settings(settings))
    from search.embedded import EmbeddedBackend

    return EmbeddedBackend(settings.home_dir / "search.sqlite3")
