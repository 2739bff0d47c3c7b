"""Indexing from the outbox: rows drain, failures are retried later and never lost, closed records leave."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.models import Outbox, Record, utcnow
from ingest.pipeline import ingest
from search import EmbeddedBackend, RecordDoc, SearchQuery, drain, enqueue, pending
from tests.e2e.helpers import simple_bag
from tests.search.contract import catalogue_record, check_closed_record_leaves_the_index


@pytest.fixture
def backend(home: Settings) -> EmbeddedBackend:
    return EmbeddedBackend(home.home_dir / "search.sqlite3")


class BrokenBackend(EmbeddedBackend):
    """An index that is down: every write raises."""

    def index(self, docs: Iterable[RecordDoc]) -> int:
        raise ConnectionError("search service unavailable")

    def delete(self, ids: Iterable[str]) -> int:
        raise ConnectionError("search service unavailable")


def rows(settings: Settings) -> list[Outbox]:
    with db.read_session(settings) as s:
        return list(s.execute(select(Outbox).where(Outbox.topic == "index").order_by(Outbox.id)).scalars())


def test_drain_indexes_open_records_only(home: Settings, backend: EmbeddedBackend) -> None:
    catalogue_record(home, "GZ-001-1990-永久-0001", "广州港档案")
    catalogue_record(home, "GZ-001-1990-永久-0002", "天河档案", creator="天河区")
    catalogue_record(home, "GZ-001-1990-永久-0003", "控制使用的秘密词丙丁", status="restricted")
    assert pending(home) == 3
    counts = drain(home, backend)
    assert (counts.indexed, counts.deleted, counts.failed, counts.rows) == (2, 1, 0, 3)
    assert pending(home) == 0
    assert all(r.done_at is not None and r.last_error is None for r in rows(home))
    assert backend.ids() == {"GZ/GZ-001-1990-永久-0001", "GZ/GZ-001-1990-永久-0002"}
    assert backend.search(SearchQuery(q="秘密词丙丁")).total == 0
    assert drain(home, backend).rows == 0  # nothing left


def test_backend_outage_delays_but_never_loses(home: Settings, backend: EmbeddedBackend) -> None:
    for i in range(3):
        catalogue_record(home, f"GZ-001-1990-永久-000{i}", f"档案{i}")
    broken = BrokenBackend(home.home_dir / "search.sqlite3")
    counts = drain(home, broken)
    assert (counts.failed, counts.indexed) == (3, 0)
    for row in rows(home):
        assert row.done_at is None and row.claimed_by is None
        assert row.attempts == 1 and "search service unavailable" in (row.last_error or "")
        assert row.available_at.replace(tzinfo=dt.UTC) > utcnow()
    assert drain(home, backend).rows == 0  # still backing off
    assert drain(home, broken, now=utcnow() + dt.timedelta(minutes=5)).failed == 3
    assert {r.attempts for r in rows(home)} == {2}
    later = drain(home, backend, now=utcnow() + dt.timedelta(hours=2))
    assert (later.indexed, later.failed) == (3, 0)
    assert pending(home) == 0 and backend.count() == 3


def test_one_bad_document_does_not_hold_back_the_others(home: Settings, backend: EmbeddedBackend) -> None:
    class Picky(EmbeddedBackend):
        def index(self, docs: Iterable[RecordDoc]) -> int:
            docs = list(docs)
            if any("坏" in d.title for d in docs):
                raise ValueError("cannot index this one")
            return super().index(docs)

    catalogue_record(home, "GZ-001-1990-永久-0001", "好档案")
    catalogue_record(home, "GZ-001-1990-永久-0002", "坏档案")
    counts = drain(home, Picky(home.home_dir / "search.sqlite3"))
    assert (counts.indexed, counts.failed) == (1, 1)
    assert backend.ids() == {"GZ/GZ-001-1990-永久-0001"}
    assert [r.attempts for r in rows(home)] == [0, 1]


def test_stale_claims_are_taken_over(home: Settings, backend: EmbeddedBackend) -> None:
    catalogue_record(home, "GZ-001-1990-永久-0001", "死进程的档案")
    catalogue_record(home, "GZ-001-1990-永久-0002", "正在处理的档案")
    with db.write_session(home) as s:
        dead, busy = s.execute(select(Outbox).order_by(Outbox.id)).scalars().all()
        dead.claimed_by, dead.claimed_at = "dead-worker", utcnow() - dt.timedelta(hours=1)
        busy.claimed_by, busy.claimed_at = "live-worker", utcnow()
    counts = drain(home, backend)
    assert counts.rows == 1
    assert backend.ids() == {"GZ/GZ-001-1990-永久-0001"}


def test_a_record_that_closes_leaves_the_index(home: Settings, backend: EmbeddedBackend) -> None:
    check_closed_record_leaves_the_index(home, backend)


def test_a_deleted_record_leaves_the_index(home: Settings, backend: EmbeddedBackend) -> None:
    rid = catalogue_record(home, "GZ-001-1990-永久-0001", "将被删除")
    drain(home, backend)
    with db.write_session(home) as s:
        record = s.get(Record, rid)
        assert record is not None
        enqueue(s, record, "deleted")
        s.flush()
        row = s.execute(select(Outbox).where(Outbox.payload["reason"].as_string() == "deleted")).scalar_one()
        row.record_id = None  # as if the record row were gone
    assert drain(home, backend).deleted == 1
    assert backend.count() == 0


def test_ingest_then_drain_finds_file_text(home: Settings, backend: EmbeddedBackend, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "bag", [
        ("r1", "GZ-050-1990-永久-0001", "港口调查", "黄埔港一九九〇年吞吐量调查报告，独有词戊己。".encode()),
        ("r2", "GZ-050-1990-永久-0002", "会议记录", b"Meeting minutes of the harbour board."),
    ])  # fmt: skip
    result = ingest(bag, "GZ", home)
    assert result.stored, result.problems
    counts = drain(home, backend)
    assert counts.indexed == 2
    hit = backend.search(SearchQuery(q="戊己")).hits[0]
    assert hit.id == "GZ/GZ-050-1990-永久-0001"
    assert any("<mark>戊己</mark>" in s for s in hit.highlights["text"])
    assert backend.search(SearchQuery(q="harbour")).hits[0].archival_code == "GZ-050-1990-永久-0002"
    facets = backend.search(SearchQuery()).facets
    assert facets["format"] == {"Plain Text File": 2}
