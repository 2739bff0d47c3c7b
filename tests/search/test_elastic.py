"""The Elasticsearch backend against the real server started by ``scripts/services.sh start elasticsearch``
(``ARCHIVE_TEST_ELASTICSEARCH_URL``): the shared contract, the relevance set, outages, and what is particular
to Elasticsearch. Every index this session creates is named ``pearl-test-<random>-…`` and deleted at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import elasticsearch
import pytest
from rich.console import Console
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.models import Outbox
from ingest.demo import run_demo
from search import SearchBackend, SearchError, SearchQuery, drain, get_backend, pending
from search.backend import parse_query
from search.elastic import MAPPINGS, SETTINGS, ElasticBackend, ElasticUnavailable, build_query
from tests.search.contract import (
    CORPUS,
    BackendContract,
    catalogue_record,
    check_closed_record_leaves_the_index,
    doc,
)
from tests.search.elastic_server import es_client as es_client  # the fixtures, re-exported for pytest
from tests.search.elastic_server import es_prefix as es_prefix
from tests.search.elastic_server import es_url
from tests.search.relevance import DEMO_CASES, GENERATED_CASES, failures, generated_corpus

DEAD_URL = "http://127.0.0.1:1"  # nothing listens there: an Elasticsearch outage


def make_backend(client: elasticsearch.Elasticsearch, alias: str, **kw: object) -> ElasticBackend:
    backend = ElasticBackend(client, alias, **kw)  # type: ignore[arg-type]
    backend.ensure_ready()
    return backend


def refresh(backend: SearchBackend) -> None:
    assert isinstance(backend, ElasticBackend)
    backend.refresh()


# -- the shared contract ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def contract_backend(es_client: elasticsearch.Elasticsearch, es_prefix: str) -> ElasticBackend:
    return make_backend(es_client, f"{es_prefix}-contract")


class TestElasticContract(BackendContract):
    @pytest.fixture
    def backend(self, contract_backend: ElasticBackend) -> ElasticBackend:
        contract_backend.clear()  # one index for the session, emptied per test (creating one costs ~1 s)
        return contract_backend

    def refresh(self, backend: SearchBackend) -> None:
        refresh(backend)


# -- the relevance set ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_backend(
    es_client: elasticsearch.Elasticsearch, es_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ElasticBackend]:
    """The real demo, ingested through the pipeline and indexed into Elasticsearch through the outbox."""
    home = tmp_path_factory.mktemp("demo")
    settings = Settings(home=home / "home")
    run_demo(settings, home / "bags", Console(quiet=True))
    backend = make_backend(es_client, f"{es_prefix}-demo")
    counts = drain(settings, backend)
    assert counts.failed == 0, counts.errors
    backend.refresh()
    yield backend
    db.dispose_engines()


@pytest.fixture(scope="module")
def generated_backend(es_client: elasticsearch.Elasticsearch, es_prefix: str) -> ElasticBackend:
    backend = make_backend(es_client, f"{es_prefix}-generated")
    backend.index(generated_corpus())
    backend.refresh()
    return backend


def test_the_set_is_big_enough() -> None:
    assert len(DEMO_CASES) + len(GENERATED_CASES) >= 40


@pytest.mark.parametrize("case", DEMO_CASES, ids=lambda c: c.name)
def test_relevance_demo(demo_backend: ElasticBackend, case: object) -> None:
    assert failures(demo_backend, [case]) == []  # type: ignore[list-item]


@pytest.mark.parametrize("case", GENERATED_CASES, ids=lambda c: c.name)
def test_relevance_generated(generated_backend: ElasticBackend, case: object) -> None:
    assert failures(generated_backend, [case], generated_corpus()) == []  # type: ignore[list-item]


# -- outages and the outbox -------------------------------------------------------------------------------


def test_every_call_raises_a_typed_error_when_elasticsearch_is_down() -> None:
    dead = ElasticBackend(DEAD_URL, "pearl-test-dead", request_timeout=2)
    for call in (
        dead.ensure_ready,
        lambda: dead.index(CORPUS[:1]),
        lambda: dead.delete(["GZ/x"]),
        lambda: dead.search(SearchQuery(q="广州")),
        dead.count,
        dead.refresh,
    ):
        with pytest.raises(ElasticUnavailable):
            call()
    assert not dead.healthy()


def test_outage_leaves_outbox_rows_pending_then_the_backlog_drains(
    home: Settings, es_client: elasticsearch.Elasticsearch, es_prefix: str
) -> None:
    import datetime as dt

    from archive.models import utcnow

    for i in range(3):
        catalogue_record(home, f"GZ-001-1990-永久-000{i}", f"停机期间的档案{i}")
    dead = ElasticBackend(DEAD_URL, f"{es_prefix}-outage", request_timeout=2)
    counts = drain(home, dead)
    assert (counts.failed, counts.indexed) == (3, 0)
    with db.read_session(home) as s:
        rows = list(s.execute(select(Outbox).where(Outbox.topic == "index")).scalars())
    assert len(rows) == 3
    for row in rows:
        assert row.done_at is None and row.attempts == 1
        assert "ElasticUnavailable" in (row.last_error or "")
    assert pending(home) == 3

    live = make_backend(es_client, f"{es_prefix}-outage")
    later = drain(home, live, now=utcnow() + dt.timedelta(hours=2))  # past the backoff
    assert (later.indexed, later.failed) == (3, 0)
    live.refresh()
    assert pending(home) == 0
    assert live.count() == 3
    assert live.search(SearchQuery(q="停机")).total == 3


def test_a_record_that_closes_leaves_the_index(
    home: Settings, es_client: elasticsearch.Elasticsearch, es_prefix: str
) -> None:
    backend = make_backend(es_client, f"{es_prefix}-closing")
    check_closed_record_leaves_the_index(home, backend, refresh)


# -- particular to Elasticsearch ----------------------------------------------------------------------------


def test_the_server_lacks_analysis_common_and_our_mapping_needs_none(
    es_client: elasticsearch.Elasticsearch,
) -> None:
    """The integ-test-zip has no analysis-common: the mapping must use only core analysis (module docstring)."""
    nodes = es_client.nodes.info(metric="plugins")["nodes"]
    modules = {m["name"] for node in nodes.values() for m in node["modules"]}
    uses = json.dumps([SETTINGS, MAPPINGS])
    for missing in ("cjk_bigram", "ngram", "edge_ngram", "icu_", "smartcn", "asciifolding", "html_strip"):
        assert f'"{missing}' not in uses
    if "analysis-common" not in modules:  # the test server: prove the core analyzer does what we rely on
        tokens = es_client.indices.analyze(tokenizer="standard", filter=["lowercase"], text="广州 GZ-010")
        assert [t["token"] for t in tokens["tokens"]] == ["广", "州", "gz", "010"]


def test_mapping_is_strict(contract_backend: ElasticBackend) -> None:
    with pytest.raises(elasticsearch.BadRequestError, match="strict"):
        contract_backend.client.index(
            index=contract_backend.alias, id="x", document={"id": "x", "surprise": 1}, refresh=True
        )


def test_queries_never_carry_user_syntax() -> None:
    for q in ["title:广州 OR *", "a AND (b", '"港', "NEAR(x, 2)", "\\", "GZ-010*"]:
        body = json.dumps(build_query(SearchQuery(q=q), parse_query(q)), ensure_ascii=False)
        assert "query_string" not in body and "wildcard" not in body and "regexp" not in body


def test_full_width_text_in_the_index(contract_backend: ElasticBackend) -> None:
    contract_backend.clear()
    contract_backend.index([doc("GZ-001-2001-永久-0001", "ＴＩＡＮＨＥ　报告（全角）", year=2001)])
    contract_backend.refresh()
    hit = contract_backend.search(SearchQuery(q="tianhe")).hits[0]
    assert hit.title == "ＴＩＡＮＨＥ　报告（全角）"  # shown as written
    assert "<mark>ＴＩＡＮＨＥ</mark>" in hit.highlights["title"][0]


def test_a_big_document_is_indexed_and_highlighted(contract_backend: ElasticBackend) -> None:
    contract_backend.clear()
    text = "档案正文。" * 190_000 + "结尾处的独特词"  # ~950,000 characters, the documents.py cap is 1,000,000
    contract_backend.index([doc("GZ-001-2002-永久-0001", "大文件", year=2002, text=text)])
    contract_backend.refresh()
    hit = contract_backend.search(SearchQuery(q="独特词")).hits[0]
    assert any("<mark>独特词</mark>" in s for s in hit.highlights["text"])


def test_wait_for_refresh_makes_writes_visible(
    es_client: elasticsearch.Elasticsearch, es_prefix: str
) -> None:
    backend = make_backend(es_client, f"{es_prefix}-waitfor", refresh="wait_for")
    backend.index(CORPUS)
    assert backend.count() == len(CORPUS)
    backend.delete([CORPUS[0].id])
    assert backend.count() == len(CORPUS) - 1


def test_ensure_ready_is_idempotent(es_client: elasticsearch.Elasticsearch, es_prefix: str) -> None:
    backend = make_backend(es_client, f"{es_prefix}-ready")
    backend.ensure_ready()
    ElasticBackend(es_client, f"{es_prefix}-ready").ensure_ready()
    assert backend.indices() == [f"{es_prefix}-ready-v0"]


def test_get_backend_selects_elasticsearch(tmp_path: Path, es_prefix: str) -> None:
    settings = Settings(
        home=tmp_path, elasticsearch_url=es_url(), elasticsearch_index=f"{es_prefix}-settings"
    )
    backend = get_backend(settings)
    assert isinstance(backend, ElasticBackend)
    assert backend.alias == f"{es_prefix}-settings"
    backend.close()


def test_a_batch_bigger_than_a_chunk_goes_in_several_requests(
    es_client: elasticsearch.Elasticsearch, es_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(es_client, f"{es_prefix}-chunks", chunk_size=4)
    requests: list[bytes] = []
    send = backend.client.bulk

    def counting_bulk(**kw: Any) -> Any:
        requests.append(kw["operations"])
        return send(**kw)

    monkeypatch.setattr(backend.client, "bulk", counting_bulk)  # the session's client: undone after the test
    docs = [doc(f"GZ-030-2001-永久-{i:04d}", f"分批写入的档案{i}", year=2001) for i in range(10)]
    assert backend.index(docs) == 10
    assert [body.count(b"\n") for body in requests] == [8, 8, 4]  # 4 + 4 + 2 documents, two lines each
    backend.refresh()
    assert backend.count() == 10
    assert backend.search(SearchQuery(q="分批写入")).total == 10
    assert backend.delete([d.id for d in docs[:5]] + ["GZ/absent"]) == 5


def test_refused_documents_fail_the_batch_with_the_first_reason(
    es_client: elasticsearch.Elasticsearch, es_prefix: str
) -> None:
    backend = make_backend(es_client, f"{es_prefix}-refused")
    narrow = f"{es_prefix}-refused-narrow"
    es_client.indices.create(
        index=narrow, mappings={"dynamic": "strict", "properties": {"id": {"type": "keyword"}}}
    )
    with pytest.raises(SearchError, match=r"2 of 2 documents refused, first GZ/.*strict_dynamic_mapping"):
        backend.index(CORPUS[:2], into=narrow)
