"""The relevance query set: queries with the records they must find, over the demo data (``archive demo``)
and a generated corpus. Backend-independent: ``failures(backend, cases)`` lists what a backend gets wrong.

Kinds of expectation:

- ``exact``: the set of hits is exactly ``ids`` (leakage cases expect nothing: the demo's restricted records);
- ``top``: the first hits are ``ids``, in any order (ranking);
- ``first``: ``ids[0]`` is the very first hit;
- ``order``: the hits start with ``ids`` in this order (date sorting);
- ``oracle``: for the generated corpus, the set a plain substring/whole-word scan of the documents gives;
- ``oracle-range``: the oracle with the query's filters, and ``ids`` among the hits.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from search import RecordDoc, SearchBackend, SearchQuery
from search.backend import parse_query
from tests.search.contract import doc

Kind = Literal["exact", "top", "first", "order", "oracle", "oracle-range"]


@dataclass(frozen=True)
class Case:
    name: str
    query: SearchQuery
    kind: Kind
    ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)


def q(text: str = "", **kw: object) -> SearchQuery:
    return SearchQuery(q=text, size=100, **kw)  # type: ignore[arg-type]


GD1 = "GD/GD-001-1995-永久-0001"  # 关于珠江三角洲经济区规划的通知 (PDF)
GD3 = "GD/GD-002-1998-永久-0003"  # 黄埔港码头照片档案 (TIFF + JPEG)
GZ1 = "GZ/GZ-010-1985-永久-0001"  # 广州市城市总体规划（1984—2000年）说明 (DOCX)
GZ2 = "GZ/GZ-020-1999-30年-0002"  # 广州市主要经济指标（1999年） (CSV)
TH1 = "GZ-TH/TH-001-1987-Y-0001"  # 天河体育中心建设报告 (PDF + TIFF)
TH2 = "GZ-TH/TH-001-1985-Y-0002"  # 天河区成立公告 (text)
DEMO_OPEN = {GD1, GD3, GZ1, GZ2, TH1, TH2}

DEMO_CASES: list[Case] = [
    Case("1 char 港", q("港"), "exact", (GD3,), ("zh1",)),
    Case("1 char 州", q("州"), "exact", (GD1, GZ1, GZ2, TH2), ("zh1",)),
    Case("2 chars 广州", q("广州"), "exact", (GD1, GZ1, GZ2, TH2), ("zh2",)),
    Case("2 chars 广州 title first", q("广州"), "top", (GZ1, GZ2), ("zh2", "rank")),
    Case("2 chars 天河 titles first", q("天河"), "top", (TH1, TH2), ("zh2", "rank")),
    Case("2 chars 天河 also keyword", q("天河"), "exact", (TH1, TH2, GZ1), ("zh2",)),
    Case("2 chars 黄埔", q("黄埔"), "exact", (GD3,), ("zh2",)),
    Case("2 chars 档案 (the README's example)", q("档案"), "exact", (GD1, GD3, GZ1), ("zh2",)),
    Case("3+ chars 珠江三角洲", q("珠江三角洲"), "first", (GD1,), ("zh3",)),
    Case("3+ chars 天河体育中心", q("天河体育中心"), "exact", (TH1,), ("zh3",)),
    Case("3+ chars 经济指标", q("经济指标"), "exact", (GZ2,), ("zh3",)),
    Case(
        "3+ chars in PDF text 第六届全国运动会", q("第六届全国运动会"), "exact", (TH1,), ("zh3", "fulltext")
    ),
    Case("3+ chars in text file 国务院", q("国务院"), "exact", (TH2,), ("zh3", "fulltext")),
    Case("3+ chars in DOCX text 华南地区", q("华南地区"), "exact", (GZ1,), ("zh3", "fulltext")),
    Case("number in CSV 2056.74", q("2056.74"), "exact", (GZ2,), ("fulltext",)),
    Case("English tianhe", q("Tianhe"), "exact", (TH1, TH2), ("en",)),
    Case("English two words", q("national games"), "exact", (TH1,), ("en",)),
    Case("English founding", q("FOUNDING"), "exact", (TH2,), ("en",)),
    Case("mixed 天河 sports", q("天河 sports"), "exact", (TH1,), ("mixed",)),
    Case("code exact", q("GD-001-1995-永久-0001"), "first", (GD1,), ("code",)),
    Case("code prefix GZ-010", q("GZ-010"), "exact", (GZ1,), ("code",)),
    Case("code prefix TH-001", q("TH-001"), "exact", (TH1, TH2), ("code",)),
    Case("code prefix lower case", q("gd-00"), "exact", (GD1, GD3), ("code",)),
    Case("restricted 会议纪要 never shown", q("会议纪要"), "exact", (), ("leak",)),
    Case("classified 电报 never shown", q("电报"), "exact", (), ("leak",)),
    Case("restricted 越秀山 never shown", q("越秀山"), "exact", (), ("leak",)),
    Case("restricted code never shown", q("GZ-030-2021-永久-0003"), "exact", (), ("leak", "code")),
    Case("browse all open", q(), "exact", tuple(DEMO_OPEN), ("facet",)),
    Case("archive filter", q(archives=("GZ-TH",)), "exact", (TH1, TH2), ("facet",)),
    Case("level filter", q(levels=("province",)), "exact", (GD1, GD3), ("facet",)),
    Case("fonds filter", q(fonds=("GZ/020",)), "exact", (GZ2,), ("facet",)),
    Case("retention filter", q(retentions=("30y",)), "exact", (GZ2,), ("facet",)),
    Case("format filter (DOCX PUID)", q(formats=("fmt/412",)), "exact", (GZ1,), ("facet",)),
    Case("format filter (TIFF)", q("", formats=("fmt/353",)), "exact", (GD3, TH1), ("facet",)),
    Case("year range 1985–1987", q(year_from=1985, year_to=1987), "exact", (GZ1, TH1, TH2), ("date",)),
    Case("text + year range", q("广州", year_from=1990), "exact", (GD1, GZ2), ("date",)),
    Case("sort date asc", q("规划", sort="date_asc"), "order", (GZ1, GD1), ("date",)),
    Case("sort date desc", q(sort="date_desc"), "order", (GZ2, GD3, GD1), ("date",)),
]


# -- the generated corpus -----------------------------------------------------------------------------------

PLACES = ["广州", "深圳", "佛山", "珠海", "东莞", "香港", "澳门", "江门", "肇庆", "汕头"]
SUBJECTS = ["港口建设", "城市规划", "水利工程", "教育事业", "交通运输", "档案管理", "农业生产", "工业普查"]
DOCTYPES = ["报告", "通知", "会议纪要", "批复", "请示", "统计表"]
ENGLISH = ["harbour", "survey", "census", "railway", "school", "river", "budget", "housing"]
ARCHIVES = [("GD", "province"), ("GZ", "city"), ("GZ-TH", "county"), ("SZ", "city"), ("FS", "city")]


def generated_corpus(n: int = 400, seed: int = 20240601) -> list[RecordDoc]:
    """A deterministic corpus: titles place+subject+doctype, English words in descriptions, planted records."""
    rnd = random.Random(seed)
    docs: list[RecordDoc] = []
    for i in range(n):
        archive, level = ARCHIVES[i % len(ARCHIVES)]
        year = 1950 + rnd.randrange(70)
        retention = rnd.choice(["permanent", "30y", "10y"])
        place, subject, kind = rnd.choice(PLACES), rnd.choice(SUBJECTS), rnd.choice(DOCTYPES)
        words = rnd.sample(ENGLISH, 2)
        fmt = rnd.choice([("Acrobat PDF 1.4", "fmt/18"), ("Plain Text File", "x-fmt/111"),
                          ("Tagged Image File Format", "fmt/353")])  # fmt: skip
        docs.append(doc(
            f"{archive}-{100 + i % 7:03d}-{year}-{retention}-{i:04d}", f"{place}{subject}{kind}", archive,
            archive_level=level, year=year, retention=retention, creator=f"{place}市人民政府",
            description=f"{year}年 {place} {words[0]} {words[1]}", formats=(fmt[0],), puids=(fmt[1],),
            text=f"{place}{subject}。{kind}正文 {words[0]}",
        ))  # fmt: skip
    docs.append(doc("GZ-900-1957-permanent-9001", "广州港务局关于黄埔新港选址的报告", "GZ", year=1957,
                    creator="广州港务局", description="Whampoa new port site selection",
                    text="选址报告全文：黄埔新港位于珠江口。"))  # fmt: skip
    docs.append(doc("GZ-900-1958-permanent-9002", "一九五八年档案工作规划", "GZ", year=1958,
                    creator="广州市档案馆", description="archives work plan"))  # fmt: skip
    return docs


_FIELDS = ("archival_code", "title", "creator", "description", "text")


def oracle(docs: Sequence[RecordDoc], text: str) -> set[str]:
    """What a plain scan finds: every CJK run of the query as a substring, every word as a whole word."""
    parsed = parse_query(text)
    out = set()
    for d in docs:
        hay = "\n".join(filter(None, [*(getattr(d, f) for f in _FIELDS), *d.keywords])).casefold()
        ok = True
        for term in parsed.terms:
            for part in term.parts:
                if part.cjk:
                    ok = ok and part.text in hay
                else:
                    ok = ok and re.search(rf"(?<![^\W_]){re.escape(part.text)}(?![^\W_])", hay) is not None
        if ok:
            out.add(d.id)
    return out


# fmt: off
GENERATED_CASES: list[Case] = [
    *(Case(f"oracle {t}", q(t), "oracle", tags=(tag,)) for t, tag in [
        ("港", "zh1"), ("档", "zh1"), ("澳", "zh1"), ("广州", "zh2"), ("香港", "zh2"), ("档案", "zh2"), ("规划", "zh2"),
        ("港口建设", "zh3"), ("会议纪要", "zh3"), ("人民政府", "zh3"), ("深圳城市规划", "zh3"), ("黄埔新港", "zh3"),
        ("harbour", "en"), ("Census", "en"), ("railway river", "en"), ("广州 harbour", "mixed"),
        ("香港 school", "mixed"), ("珠江口", "fulltext"),
    ]),
    Case("planted: 黄埔新港 ranks its title first", q("黄埔新港"), "first", ("GZ/GZ-900-1957-permanent-9001",),
         ("rank",)),
    Case("planted: 档案工作 first", q("档案工作"), "first", ("GZ/GZ-900-1958-permanent-9002",), ("rank",)),
    Case("planted code exact", q("GZ-900-1958-permanent-9002"), "first", ("GZ/GZ-900-1958-permanent-9002",),
         ("code",)),
    Case("planted code prefix", q("GZ-900"), "exact",
         ("GZ/GZ-900-1957-permanent-9001", "GZ/GZ-900-1958-permanent-9002"), ("code",)),
    Case("English phrase-free words", q("whampoa"), "exact", ("GZ/GZ-900-1957-permanent-9001",), ("en",)),
    Case("date range with text", q("港", year_from=1957, year_to=1957, archives=("GZ",)), "oracle-range",
         ("GZ/GZ-900-1957-permanent-9001",), ("date",)),
]
# fmt: on


def expected_filtered(docs: Sequence[RecordDoc], query: SearchQuery) -> set[str]:
    """The oracle with the query's filters applied (archive, retention, format, years)."""
    found = oracle(docs, query.q) if query.q.strip() else {d.id for d in docs}
    by_id = {d.id: d for d in docs}
    keep = set()
    for i in found:
        d = by_id[i]
        if query.archives and d.archive not in query.archives:
            continue
        if query.retentions and d.retention not in query.retentions:
            continue
        if query.formats and not set(query.formats) & {*d.formats, *d.puids}:
            continue
        if query.year_from is not None and (d.year_end is None or d.year_end < query.year_from):
            continue
        if query.year_to is not None and (d.year_start is None or d.year_start > query.year_to):
            continue
        keep.add(i)
    return keep


GENERATED_CASES += [
    Case(f"oracle filtered: {name}", query, "oracle", tags=("facet",))
    for name, query in [
        ("港 in SZ", q("港", archives=("SZ",))),
        ("规划 30y", q("规划", retentions=("30y",))),
        ("报告 as PDF", q("报告", formats=("fmt/18",))),
        ("广州 1960s", q("广州", year_from=1960, year_to=1969)),
        ("census, text files", q("census", formats=("Plain Text File",))),
    ]
]


def failures(backend: SearchBackend, cases: Sequence[Case], docs: Sequence[RecordDoc] = ()) -> list[str]:
    """One line per case the backend gets wrong."""
    bad: list[str] = []
    for case in cases:
        result = backend.search(case.query)
        got = [h.id for h in result.hits]
        expected = set(case.ids)
        if case.kind == "oracle":
            expected = expected_filtered(docs, case.query)
            # pages hold at most 100 hits: all of them must be expected, and the total must agree
            ok = (
                result.total == len(expected) > 0
                and set(got) <= expected
                and len(got) == min(100, len(expected))
            )
        elif case.kind == "oracle-range":
            ok = set(got) == expected_filtered(docs, case.query) and set(case.ids) <= set(got)
        elif case.kind == "exact":
            ok = set(got) == expected and result.total == len(expected)
        elif case.kind == "top":
            ok = set(got[: len(expected)]) == expected
        elif case.kind == "first":
            ok = bool(got) and got[0] == case.ids[0]
        else:
            ok = got[: len(case.ids)] == list(case.ids)
        if not ok:
            bad.append(
                f"{case.name}: expected {case.kind} {sorted(expected)}, got {got[:10]} (total {result.total})"
            )
    return bad
