"""Zero-downtime reindex (``search.reindex``) on the real Elasticsearch and on the embedded index: searches
issued during a reindex never fail and never see an empty index; a reindex that fails leaves the old index
serving and nothing half-built behind; changes made while it runs are not lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import elasticsearch
import pytest

from archive import db
from archive.config import Settings
from archive.models import Record
from search import EmbeddedBackend, RecordDoc, SearchBackend, SearchQuery, drain, enqueue
from search.elastic import ElasticBackend
from search.reindex import ReindexLocked, elastic_lock, reindex
from tests.search.contract import catalogue_record
from tests.search.elastic_server import es_client as es_client  # the fixtures, re-exported for pytest
from tests.search.elastic_server import es_prefix as es_prefix
from tests.search.relevance import generated_corpus

N = 1_000


def corpus() -> list[RecordDoc]:
    return generated_corpus(N)


def slowly(docs: Iterable[RecordDoc], every: int = 100, pause: float = 0.05) -> Iterator[RecordDoc]:
    for i, d in enumerate(docs):
        if i and i % every == 0:
            time.sleep(pause)
        yield d


def failing_after(docs: Iterable[RecordDoc], n: int) -> Iterator[RecordDoc]:
    for i, d in enumerate(docs):
        if i == n:
            raise RuntimeError("the catalogue went away mid-reindex")
        yield d


def search_during(
    backend: SearchBackend, run: Callable[[], object], refresh: Callable[[], None] = lambda: None
) -> list[int]:
    """Run ``run`` in a thread while searching; returns the totals seen (any search error fails the test)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    totals = []
    while thread.is_alive():
        result = backend.search(SearchQuery(q="广州", size=5))
        assert result.hits
        totals.append(backend.search(SearchQuery(size=1, facets=False)).total)
    thread.join()
    if errors:
        raise errors[0]
    return totals


# -- Elasticsearch ----------------------------------------------------------------------------------------


@pytest.fixture
def es_backend(
    es_client: elasticsearch.Elasticsearch, es_prefix: str, request: pytest.FixtureRequest
) -> ElasticBackend:
    backend = ElasticBackend(es_client, f"{es_prefix}-re-{request.node.name[:30].lower().replace('[', '-')}")
    backend.ensure_ready()
    backend.index(corpus())
    backend.refresh()
    return backend


def versioned(backend: ElasticBackend) -> list[str]:
    return sorted(backend.client.indices.get(index=f"{backend.alias}-v*").body)


def test_searches_during_a_reindex_never_fail_nor_see_an_empty_index(es_backend: ElasticBackend) -> None:
    before = es_backend.indices()
    reports = []
    totals = search_during(
        es_backend, lambda: reports.append(reindex(None, es_backend, docs=slowly(corpus())))
    )
    assert len(totals) > 5 and set(totals) == {N + 2}
    (report,) = reports
    assert report.indexed == N + 2 and report.removed == before
    assert es_backend.indices() == versioned(es_backend) == [report.target]
    assert not es_backend.client.indices.exists(index=f"{es_backend.alias}-reindex-lock")
    assert es_backend.search(SearchQuery(q="黄埔新港")).hits[0].id == "GZ/GZ-900-1957-permanent-9001"


def test_a_failed_reindex_leaves_the_old_index_serving(es_backend: ElasticBackend) -> None:
    before = es_backend.indices()
    with pytest.raises(RuntimeError, match="mid-reindex"):
        search_during(
            es_backend, lambda: reindex(None, es_backend, docs=failing_after(slowly(corpus()), 600))
        )
    assert es_backend.indices() == versioned(es_backend) == before  # the half-built index is gone
    assert es_backend.count() == N + 2
    assert not es_backend.client.indices.exists(index=f"{es_backend.alias}-reindex-lock")


def test_a_document_refused_mid_reindex_also_cleans_up(es_backend: ElasticBackend) -> None:
    from search import NotPublic
    from tests.search.contract import doc

    before = es_backend.indices()
    bad = [*corpus()[:700], doc("GZ-999-2020-永久-0001", "不该进入的", access_status="restricted")]
    with pytest.raises(NotPublic):
        reindex(None, es_backend, docs=bad)
    assert versioned(es_backend) == before


def test_a_second_reindex_waits_for_the_lock(es_backend: ElasticBackend) -> None:
    with elastic_lock(es_backend, timeout=1), pytest.raises(ReindexLocked):
        reindex(None, es_backend, docs=corpus(), lock_timeout=0.5)
    report = reindex(None, es_backend, docs=corpus())  # released
    assert es_backend.indices() == [report.target]


def test_a_concrete_index_on_the_alias_name_is_replaced(
    es_client: elasticsearch.Elasticsearch,
    es_prefix: str,
) -> None:
    name = f"{es_prefix}-legacy"
    es_client.indices.create(index=name)
    backend = ElasticBackend(es_client, name)
    report = reindex(None, backend, docs=corpus())
    backend.refresh()
    assert backend.indices() == [report.target] and backend.count() == N + 2


def test_reindex_from_the_catalogue_keeps_changes_made_meanwhile(
    home: Settings,
    es_client: elasticsearch.Elasticsearch,
    es_prefix: str,
) -> None:
    backend = ElasticBackend(es_client, f"{es_prefix}-catalogue")
    backend.ensure_ready()
    ids = [catalogue_record(home, f"GZ-001-1990-永久-{i:04d}", f"重建索引测试{i}") for i in range(5)]
    assert drain(home, backend).indexed == 5

    def meanwhile(docs: Iterable[RecordDoc]) -> Iterator[RecordDoc]:
        # while the new index loads, an archivist closes record 0 and the indexer applies it (to the old index)
        yield from docs
        with db.write_session(home) as s:
            record = s.get(Record, ids[0])
            assert record is not None
            record.access_status = "restricted"
            enqueue(s, record, "access-change")
        assert drain(home, backend).deleted == 1

    from search.reindex import open_documents

    report = reindex(home, backend, docs=meanwhile(open_documents(home)))
    backend.refresh()
    assert report.indexed == 5 and report.caught_up >= 1
    assert backend.ids() == {f"GZ/GZ-001-1990-永久-{i:04d}" for i in range(1, 5)}


# -- embedded ---------------------------------------------------------------------------------------------


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "search.sqlite3")
    backend.index(corpus())
    yield backend
    backend.close()


def side_files(backend: EmbeddedBackend) -> list[str]:
    return sorted(p.name for p in backend.path.parent.iterdir() if ".rebuild-" in p.name)


def test_embedded_searches_during_a_reindex(embedded: EmbeddedBackend) -> None:
    embedded.search(SearchQuery(q="广州"))  # warm the result cache of this process
    extra = [*corpus(), *generated_corpus(50, seed=7)[:1]]  # one more document: the rebuild is visible
    totals = search_during(embedded, lambda: reindex(None, embedded, docs=slowly(extra)))
    assert totals and set(totals) <= {N + 2, N + 3}
    assert embedded.search(SearchQuery(size=1)).total == N + 3  # not served from the old cache
    assert side_files(embedded) == []


def test_embedded_failed_reindex_leaves_the_old_index(embedded: EmbeddedBackend) -> None:
    with pytest.raises(RuntimeError):
        search_during(embedded, lambda: reindex(None, embedded, docs=failing_after(slowly(corpus()), 600)))
    assert embedded.count() == N + 2
    assert side_files(embedded) == []
