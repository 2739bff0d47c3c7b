"""The contract every :class:`search.SearchBackend` meets, as a base class a backend's tests inherit.

    class TestEmbeddedContract(BackendContract):
        @pytest.fixture
        def backend(self, tmp_path): return EmbeddedBackend(tmp_path / "s.sqlite3")

The backend fixture yields an empty, ready backend. ``refresh(backend)`` is called after writes (a no-op for
the embedded index; Elasticsearch backends override it to refresh the index).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from search import NotPublic, RecordDoc, SearchBackend, SearchQuery, SearchResult


def doc(code: str, title: str, archive: str = "GZ", **fields: Any) -> RecordDoc:
    """A document stating only what a test cares about (open, dated 1990 unless said otherwise)."""
    year = fields.pop("year", 1990)
    defaults: dict[str, Any] = {
        "archive_level": {"GD": "province", "GZ": "city"}.get(archive, "county"),
        "access_status": "open",
        "date_text": str(year) if year else None,
        "date_start": dt.date(year, 1, 1) if year else None,
        "date_end": dt.date(year, 12, 31) if year else None,
        "retention": "permanent",
        "fonds": f"{archive}/{code.split('-')[1]}" if code.count("-") >= 2 else None,
    }
    defaults.update(fields)
    return RecordDoc(id=f"{archive}/{code}", archive=archive, archival_code=code, title=title, **defaults)


CORPUS = [
    doc("GZ-010-1985-永久-0001", "广州市城市总体规划说明", year=1985, creator="广州市城市规划局",
        description="城市向东发展，建设天河新区。", keywords=("城市规划", "天河"),
        formats=("Microsoft Word for Windows",), puids=("fmt/412",)),
    doc("GZ-010-1985-永久-0002", "广州港码头建设报告", year=1986, creator="广州港务局",
        description="Port of Guangzhou: harbour works.", formats=("Acrobat PDF 1.4",), puids=("fmt/18",)),
    doc("GZ-020-1999-30年-0001", "广州市主要经济指标", year=1999, retention="30y", creator="广州市统计局",
        formats=("Comma Separated Values",), puids=("x-fmt/18",), text="地区生产总值 2056.74 亿元"),
    doc("GD-001-1995-永久-0001", "关于珠江三角洲经济区规划的通知", archive="GD", year=1995,
        creator="广东省人民政府办公厅", keywords=("经济区", "规划"), formats=("Acrobat PDF 1.4",), puids=("fmt/18",),
        text="珠江三角洲经济区规划范围包括广州、深圳、珠海、佛山。"),
    doc("GD-002-1998-永久-0003", "黄埔港码头照片", archive="GD", year=1998, creator="广东省航运厅",
        formats=("Tagged Image File Format", "JPEG File Interchange Format"), puids=("fmt/353", "fmt/43")),
    doc("TH-001-1987-Y-0001", "天河体育中心建设报告", archive="GZ-TH", year=1987, creator="天河区建设局",
        description="Construction of Tianhe Sports Centre for the 6th National Games.",
        formats=("Acrobat PDF 1.4",), puids=("fmt/18",), text="Tianhe Sports Centre, 1987. ARCHIVES of the district."),
    doc("TH-001-1985-Y-0002", "天河区成立公告", archive="GZ-TH", year=None, retention="10y",
        description="Founding notice of Tianhe District.", text="经国务院批准，设立广州市天河区。"),
]  # fmt: skip


def ids(result: SearchResult) -> list[str]:
    return [h.id for h in result.hits]


class BackendContract:
    """Inherit and provide a ``backend`` fixture; every test here must pass for every backend."""

    def refresh(self, backend: SearchBackend) -> None:
        """Make writes visible to search (Elasticsearch: refresh the index)."""

    @pytest.fixture
    def filled(self, backend: SearchBackend) -> SearchBackend:
        assert backend.index(CORPUS) == len(CORPUS)
        self.refresh(backend)
        return backend

    def search(self, backend: SearchBackend, q: str = "", **kw: Any) -> SearchResult:
        return backend.search(SearchQuery(q=q, **kw))

    def found(self, backend: SearchBackend, q: str = "", **kw: Any) -> set[str]:
        return set(ids(self.search(backend, q, size=100, **kw)))

    # -- writing ------------------------------------------------------------------------------------------

    def test_index_count_upsert_delete(self, backend: SearchBackend) -> None:
        assert backend.count() == 0
        assert backend.index(CORPUS[:3]) == 3
        self.refresh(backend)
        assert backend.count() == 3
        backend.index([doc("GZ-010-1985-永久-0001", "改过的题名", year=1985)])
        self.refresh(backend)
        assert backend.count() == 3
        assert self.found(backend, "改过") == {"GZ/GZ-010-1985-永久-0001"}
        assert self.found(backend, "总体规划") == set()
        assert backend.delete(["GZ/GZ-010-1985-永久-0001", "GZ/no-such-record"]) == 1
        self.refresh(backend)
        assert backend.count() == 2
        assert self.found(backend, "改过") == set()
        assert backend.index([]) == 0
        assert backend.delete([]) == 0

    def test_clear(self, filled: SearchBackend) -> None:
        filled.clear()
        self.refresh(filled)
        assert filled.count() == 0
        assert self.search(filled, "广州").total == 0

    def test_count_with_query(self, filled: SearchBackend) -> None:
        assert filled.count(SearchQuery(q="广州")) == self.search(filled, "广州").total
        assert filled.count(SearchQuery(archives=("GZ-TH",))) == 2

    @pytest.mark.parametrize("q", ["GZ-010\udc00", "a1-\ud800", "\ud800广州", "广州\udfff"])
    def test_lone_surrogates_in_a_query_are_dropped(self, filled: SearchBackend, q: str) -> None:
        """A lone surrogate (possible in a str, never in stored text) is dropped like punctuation; as a filter
        value it equals nothing stored. (orjson and SQLite both refuse such strings.)"""
        clean = "".join(ch for ch in q if not 0xD800 <= ord(ch) <= 0xDFFF)
        assert self.found(filled, q) == self.found(filled, clean)
        assert filled.count(SearchQuery(q=q)) == filled.count(SearchQuery(q=clean))
        assert self.search(filled, archives=("GZ\ud800",)).total == 0
        assert self.search(filled, "广州", formats=("\udc00",), archives=("GZ", "GZ\ud800")).total == 0
        assert self.found(filled, "广州", archives=("GZ", "GZ\ud800")) == self.found(
            filled, "广州", archives=("GZ",)
        )

    # -- only open records --------------------------------------------------------------------------------

    @pytest.mark.parametrize("status", ["restricted", "", "OPEN", "closed"])
    def test_refuses_documents_that_are_not_open(self, backend: SearchBackend, status: str) -> None:
        secret = doc("GZ-099-2020-永久-0001", "机密文件独特词", access_status=status)
        with pytest.raises(NotPublic):
            backend.index([CORPUS[0], secret])
        self.refresh(backend)
        assert backend.count() == 0  # nothing of the batch was written
        assert self.search(backend, "独特词").total == 0

    # -- text matching ------------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            ("港", {"GZ/GZ-010-1985-永久-0002", "GD/GD-002-1998-永久-0003"}),
            ("广州", {"GZ/GZ-010-1985-永久-0001", "GZ/GZ-010-1985-永久-0002", "GZ/GZ-020-1999-30年-0001",
                    "GD/GD-001-1995-永久-0001", "GZ-TH/TH-001-1985-Y-0002"}),
            ("黄埔港", {"GD/GD-002-1998-永久-0003"}),
            ("珠江三角洲经济区", {"GD/GD-001-1995-永久-0001"}),
            ("天河区", {"GZ-TH/TH-001-1985-Y-0002", "GZ-TH/TH-001-1987-Y-0001"}),  # title; creator 天河区建设局
        ],
    )  # fmt: skip
    def test_chinese_one_two_three_characters(
        self, filled: SearchBackend, q: str, expected: set[str]
    ) -> None:
        assert self.found(filled, q) == expected

    def test_chinese_characters_must_be_contiguous(self, filled: SearchBackend) -> None:
        # 城市规划 is not in 城市总体规划 (the characters are not adjacent) but is a keyword of the record.
        assert self.found(filled, "城市规划") == {"GZ/GZ-010-1985-永久-0001"}
        assert self.found(filled, "港广") == set()

    def test_english_whole_words_case_insensitive_no_stemming(self, filled: SearchBackend) -> None:
        assert self.found(filled, "tianhe") == {"GZ-TH/TH-001-1987-Y-0001", "GZ-TH/TH-001-1985-Y-0002"}
        assert self.found(filled, "TIANHE sports") == {"GZ-TH/TH-001-1987-Y-0001"}
        assert self.found(filled, "archives") == {"GZ-TH/TH-001-1987-Y-0001"}
        assert self.found(filled, "archive") == set()
        assert self.found(filled, "harbou") == set()

    def test_mixed_chinese_and_english(self, filled: SearchBackend) -> None:
        assert self.found(filled, "天河 sports") == {"GZ-TH/TH-001-1987-Y-0001"}
        assert self.found(filled, "广州 harbour") == {"GZ/GZ-010-1985-永久-0002"}
        assert self.found(filled, "广州 nonexistentword") == set()

    def test_full_width_and_digits(self, filled: SearchBackend) -> None:
        assert self.found(filled, "ＴＩＡＮＨＥ") == self.found(filled, "tianhe")
        assert "GZ/GZ-020-1999-30年-0001" in self.found(filled, "2056.74")

    def test_archival_code_exact_and_prefix(self, filled: SearchBackend) -> None:
        exact = self.search(filled, "GZ-010-1985-永久-0001")
        assert ids(exact)[0] == "GZ/GZ-010-1985-永久-0001"
        assert self.found(filled, "GZ-010") == {"GZ/GZ-010-1985-永久-0001", "GZ/GZ-010-1985-永久-0002"}
        assert self.found(filled, "gz-010-1985-永") == {
            "GZ/GZ-010-1985-永久-0001",
            "GZ/GZ-010-1985-永久-0002",
        }
        assert self.found(filled, "GD-00") == {"GD/GD-001-1995-永久-0001", "GD/GD-002-1998-永久-0003"}
        assert ids(self.search(filled, "TH-001-1985-Y-0002"))[0] == "GZ-TH/TH-001-1985-Y-0002"

    # -- filters and facets -------------------------------------------------------------------------------

    def test_filters(self, filled: SearchBackend) -> None:
        assert self.found(filled, "广州", archives=("GD",)) == {"GD/GD-001-1995-永久-0001"}
        assert self.found(filled, archives=("GZ-TH", "GD")) == {d.id for d in CORPUS if d.archive != "GZ"}
        assert self.found(filled, levels=("county",)) == {d.id for d in CORPUS if d.archive == "GZ-TH"}
        assert self.found(filled, fonds=("GZ/010",)) == {
            "GZ/GZ-010-1985-永久-0001",
            "GZ/GZ-010-1985-永久-0002",
        }
        assert self.found(filled, retentions=("30y", "10y")) == {"GZ/GZ-020-1999-30年-0001",
                                                                 "GZ-TH/TH-001-1985-Y-0002"}  # fmt: skip
        pdfs = {d.id for d in CORPUS if "fmt/18" in d.puids}
        assert self.found(filled, formats=("fmt/18",)) == pdfs
        assert self.found(filled, formats=("Acrobat PDF 1.4",)) == pdfs
        assert self.found(filled, "报告", formats=("fmt/18",)) == {"GZ/GZ-010-1985-永久-0002",
                                                                  "GZ-TH/TH-001-1987-Y-0001"}  # fmt: skip

    def test_year_range(self, filled: SearchBackend) -> None:
        assert self.found(filled, year_from=1985, year_to=1986) == {"GZ/GZ-010-1985-永久-0001",
                                                                    "GZ/GZ-010-1985-永久-0002"}  # fmt: skip
        assert self.found(filled, year_from=1995) == {"GZ/GZ-020-1999-30年-0001", "GD/GD-001-1995-永久-0001",
                                                      "GD/GD-002-1998-永久-0003"}  # fmt: skip
        assert self.found(filled, "广州", year_to=1985) == {"GZ/GZ-010-1985-永久-0001"}
        assert self.found(filled, year_from=2000, year_to=1990) == set()

    def test_facets_count_the_hits(self, filled: SearchBackend) -> None:
        result = self.search(filled, "广州")
        facets = result.facets
        assert facets["archive"] == {"GZ": 3, "GD": 1, "GZ-TH": 1}
        assert facets["level"] == {"city": 3, "province": 1, "county": 1}
        assert facets["year"] == {"1980": 2, "1990": 2}  # the undated record has no year
        assert facets["retention"] == {"permanent": 3, "30y": 1, "10y": 1}
        assert facets["fonds"]["GZ/010"] == 2
        assert facets["format"]["Acrobat PDF 1.4"] == 2
        for facet, param in (("archive", "archives"), ("level", "levels"), ("fonds", "fonds"),
                             ("retention", "retentions"), ("format", "formats")):  # fmt: skip
            for value, n in facets[facet].items():
                assert self.search(filled, "广州", **{param: (value,)}).total == n, (facet, value)

    def test_facets_follow_filters(self, filled: SearchBackend) -> None:
        result = self.search(filled, "广州", archives=("GZ",))
        assert result.total == 3
        assert result.facets["archive"] == {"GZ": 3}
        assert sum(result.facets["retention"].values()) == 3
        everything = self.search(filled)
        assert everything.total == len(CORPUS)
        assert sum(everything.facets["archive"].values()) == len(CORPUS)

    # -- paging, sorting, highlighting ----------------------------------------------------------------------

    def test_pagination(self, filled: SearchBackend) -> None:
        pages = [self.search(filled, "", size=3, page=p, sort="date_desc") for p in (1, 2, 3, 4)]
        assert [len(p.hits) for p in pages] == [3, 3, 1, 0]
        assert all(p.total == len(CORPUS) for p in pages)
        seen = [i for p in pages for i in ids(p)]
        assert len(seen) == len(set(seen)) == len(CORPUS)
        text = [self.search(filled, "广州", size=2, page=p) for p in (1, 2, 3)]
        assert sorted(i for p in text for i in ids(p)) == sorted(self.found(filled, "广州"))

    def test_page_beyond_the_window_is_empty(self, filled: SearchBackend) -> None:
        result = self.search(filled, "广州", page=10_000, size=100)
        assert result.hits == [] and result.total == 5

    def test_bad_paging_is_refused_when_asked(self) -> None:
        for kw in ({"page": 0}, {"size": 0}, {"size": 101}, {"sort": "title"}):
            with pytest.raises(ValueError):
                SearchQuery(**kw)

    def test_sort_by_date(self, filled: SearchBackend) -> None:
        desc = ids(self.search(filled, "", sort="date_desc", size=100))
        asc = ids(self.search(filled, "", sort="date_asc", size=100))
        assert desc[0] == "GZ/GZ-020-1999-30年-0001"
        assert asc[0] == "GZ/GZ-010-1985-永久-0001"
        assert desc[-1] == asc[-1] == "GZ-TH/TH-001-1985-Y-0002"  # undated last either way
        text_desc = ids(self.search(filled, "广州", sort="date_desc"))
        assert text_desc[:2] == ["GZ/GZ-020-1999-30年-0001", "GD/GD-001-1995-永久-0001"]
        text_asc = ids(self.search(filled, "广州", sort="date_asc"))
        assert text_asc[0] == "GZ/GZ-010-1985-永久-0001"

    def test_relevance_prefers_title_matches(self, filled: SearchBackend) -> None:
        hits = ids(self.search(filled, "天河"))
        assert set(hits[:2]) == {"GZ-TH/TH-001-1987-Y-0001", "GZ-TH/TH-001-1985-Y-0002"}

    def test_highlights(self, filled: SearchBackend) -> None:
        hit = self.search(filled, "黄埔港").hits[0]
        assert any("<mark>" in s and "黄埔港" in s.replace("<mark>", "").replace("</mark>", "")
                   for s in hit.highlights["title"])  # fmt: skip
        text_hit = self.search(filled, "深圳").hits[0]
        assert any("<mark>深圳</mark>" in s for s in text_hit.highlights["text"])
        english = self.search(filled, "sports").hits[0]
        assert any("<mark>" in s for snippets in english.highlights.values() for s in snippets)
        plain = filled.search(SearchQuery(q="黄埔港", highlight=False)).hits[0]
        assert plain.highlights == {}

    def test_highlights_are_html_safe(self, backend: SearchBackend) -> None:
        backend.index([doc("GZ-001-2000-永久-0009", "<script>alert(1)</script> 档案", year=2000)])
        self.refresh(backend)
        hit = self.search(backend, "档案").hits[0]
        rendered = " ".join(hit.highlights["title"])
        assert "<script>" not in rendered and "&lt;script&gt;" in rendered and "<mark>档案</mark>" in rendered

    @pytest.mark.parametrize(
        "q",
        ['"', '""', "(", ")", "AND", "OR NOT", "*", "广州*", "NEAR(", "NEAR(广州 天河, 2)", "\\", "'", "-",
         "^", ":", "title:广州", "{title}:港", "😀", "😀广州", "a" * 1000, "广" * 1000, "港 " * 500, "\x00",
         "%", "_", "AND(", ")OR(", "港\"口", "\u200b", "   "],
    )  # fmt: skip
    def test_hostile_queries_never_raise(self, filled: SearchBackend, q: str) -> None:
        result = self.search(filled, q)
        assert result.total >= 0
        for sort in ("date_desc", "date_asc"):
            self.search(filled, q, sort=sort, archives=("GZ",), formats=("fmt/18",), year_from=1900)

    def test_operators_are_plain_words(self, filled: SearchBackend) -> None:
        assert self.search(filled, "广州 AND").total == 0  # "and" is a word no record contains
        assert self.found(filled, "广州*") == self.found(filled, "广州")
        assert self.found(filled, '"天河"') == self.found(filled, "天河")


# -- the indexer side of the contract (catalogue + outbox → backend) -----------------------------------------


def catalogue_record(
    settings: Any, code: str, title: str, *, archive: str = "GZ", status: str = "open", **fields: Any
) -> int:
    """A record row (no files, no OCFL object) with its ``index`` outbox row, as ingest writes them."""
    import uuid

    from archive import db, services
    from archive.models import Outbox, Record, Transfer

    with db.write_session(settings) as s:
        arch = services.get_archive(s, archive)
        transfer = Transfer(id=f"T-{uuid.uuid4().hex[:12]}", archive_id=arch.id, source="test", bag_name="test",
                            status="stored")  # fmt: skip
        s.add(transfer)
        s.flush()
        record = Record(archive_id=arch.id, archival_code=code, title=title, access_status=status,
                        transfer_id=transfer.id, ocfl_object_id=f"urn:test:{archive}:{code}",
                        date_text="1990", date_start=dt.date(1990, 1, 1), date_end=dt.date(1990, 12, 31),
                        retention="permanent", **fields)  # fmt: skip
        s.add(record)
        s.flush()
        s.add(
            Outbox(
                topic="index", key=f"index:{record.id}:v1", record_id=record.id, payload={"reason": "ingest"}
            )
        )
        return record.id


def check_closed_record_leaves_the_index(settings: Any, backend: SearchBackend, refresh: Any = None) -> None:
    """A record that stops being open is removed from the index by the indexer (any backend)."""
    from archive import db
    from archive.models import Record
    from search import drain, enqueue

    rid = catalogue_record(settings, "GZ-001-1990-永久-7777", "即将关闭的档案独特词甲乙")
    drain(settings, backend)
    if refresh:
        refresh(backend)
    assert backend.search(SearchQuery(q="独特词甲乙")).total == 1
    with db.write_session(settings) as s:
        record = s.get(Record, rid)
        assert record is not None
        record.access_status = "restricted"
        enqueue(s, record, "access-change")
    counts = drain(settings, backend)
    if refresh:
        refresh(backend)
    assert counts.deleted == 1 and counts.failed == 0
    assert backend.search(SearchQuery(q="独特词甲乙")).total == 0
    assert backend.search(SearchQuery(archives=("GZ",))).facets["archive"].get("GZ", 0) == 0
