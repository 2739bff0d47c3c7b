"""The embedded (SQLite FTS5) backend: the shared contract, plus what is particular to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.config import Settings
from search import EmbeddedBackend, SearchQuery, get_backend
from search.backend import parse_query
from search.embedded import match_expression, tokens
from tests.search.contract import CORPUS, BackendContract, doc


class TestEmbeddedContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[EmbeddedBackend]:
        b = EmbeddedBackend(tmp_path / "search.sqlite3")
        b.ensure_ready()
        yield b
        b.close()


def test_tokens() -> None:
    assert tokens("广州市档案馆") == ["广州", "州市", "市档", "档案", "案馆"]
    assert tokens("港") == ["港"]
    assert tokens("GZ-010 Tianhe，天河") == ["gz", "010", "tianhe", "天河"]
    uni: set[str] = set()
    tokens("黄埔港", uni)
    assert uni == {"黄", "埔", "港"}


@pytest.mark.parametrize("q", ['"', "NEAR(", "a AND b", "*", "{code}:x", "\\", "😀"])
def test_user_text_only_reaches_fts_quoted(q: str) -> None:
    expr = match_expression(parse_query(q)) or ""
    outside = expr.split('"')[::2]  # the parts outside quotes
    assert all(set(part) <= set(" AND{}unimetx_:") for part in outside), expr


def test_get_backend_is_embedded_by_default(tmp_path: Path) -> None:
    backend = get_backend(Settings(home=tmp_path))
    assert isinstance(backend, EmbeddedBackend)
    assert backend.path == tmp_path.resolve() / "search.sqlite3"


def test_index_survives_reopening_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite3"
    EmbeddedBackend(path).index(CORPUS)
    again = EmbeddedBackend(path)
    assert again.count() == len(CORPUS)
    assert again.search(SearchQuery(q="黄埔港")).total == 1
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_tokeniser_change_rebuilds_the_fts_index(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite3"
    EmbeddedBackend(path).index(CORPUS)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = 'old' WHERE key = 'tokeniser'")
    con.execute("INSERT INTO fts (fts) VALUES ('delete-all')")
    con.commit()
    con.close()
    assert EmbeddedBackend(path).search(SearchQuery(q="黄埔港")).total == 1


def test_deleting_keeps_the_fts_index_consistent(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "search.sqlite3")
    backend.index(CORPUS)
    for d in CORPUS:
        backend.index([d])  # upsert = delete + insert
    backend.delete([d.id for d in CORPUS[:3]])
    con = sqlite3.connect(tmp_path / "search.sqlite3")
    con.execute("INSERT INTO fts (fts, rank) VALUES ('integrity-check', 1)")
    assert backend.search(SearchQuery()).facets["archive"] == {"GD": 2, "GZ-TH": 2}


def test_a_batch_stores_the_last_version_of_a_document_given_twice(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "search.sqlite3")
    backend.index(CORPUS)
    first, *rest = CORPUS
    again = doc(first.archival_code, "珠江口航道疏浚", first.archive, year=1975)
    assert backend.index([first, again, *rest[:2]]) == 4
    assert backend.count() == len(CORPUS)
    assert backend.search(SearchQuery(q="航道")).total == 1
    con = sqlite3.connect(tmp_path / "search.sqlite3")
    con.execute("INSERT INTO fts (fts, rank) VALUES ('integrity-check', 1)")
    # the facet summary (browse without filters) counts each document once, at its last version
    fresh = EmbeddedBackend(tmp_path / "fresh.sqlite3")
    fresh.index([again, *rest])
    assert backend.search(SearchQuery()).facets == fresh.search(SearchQuery()).facets
    assert backend.search(SearchQuery(year_from=1975, year_to=1975)).total == 1


def test_a_side_file_is_unjournalled_and_replaces_the_live_index(tmp_path: Path) -> None:
    live = EmbeddedBackend(tmp_path / "search.sqlite3")
    live.index(CORPUS[:2])
    reader = EmbeddedBackend(tmp_path / "search.sqlite3")
    assert reader.count() == 2  # an open connection while the index is replaced
    side = EmbeddedBackend(tmp_path / "side.sqlite3", durable=False)
    side.index(CORPUS)
    assert side._conn().execute("PRAGMA journal_mode").fetchone()[0] == "memory"
    side.close()
    live.replace_with(side.path)
    side.remove_files()
    assert not list(tmp_path.glob("side.sqlite3*"))
    assert reader.count() == len(CORPUS) and reader.search(SearchQuery(q="黄埔港")).total == 1
    assert sqlite3.connect(live.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_scan_limit_makes_the_total_a_lower_bound(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "search.sqlite3", scan_limit=5, rank_limit=3)
    backend.index([doc(f"GZ-001-1990-永久-{i:04d}", f"档案 第{i}号") for i in range(12)])
    result = backend.search(SearchQuery(q="档案", size=100))
    assert (result.total, result.total_exact, len(result.hits)) == (5, False, 5)
    assert sum(result.facets["archive"].values()) == 5
    small = backend.search(SearchQuery(q="第3号"))
    assert (small.total, small.total_exact) == (1, True)
    browse = backend.search(SearchQuery(archives=("GZ",)))
    assert browse.total_exact is False
    assert backend.search(SearchQuery()).total == 12  # no filter: exact from the summary


def test_cache_sees_new_writes(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "search.sqlite3")
    backend.index(CORPUS[:1])
    assert backend.search(SearchQuery(q="广州")).total == 1
    other = EmbeddedBackend(tmp_path / "search.sqlite3")  # e.g. the indexer in another process
    other.index(CORPUS[1:3])
    assert backend.search(SearchQuery(q="广州")).total == 3
