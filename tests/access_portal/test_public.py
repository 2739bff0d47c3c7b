"""The public pages: home tree, search with facets, record pages, downloads, catalogue, languages, errors."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from html import unescape
from urllib.parse import quote

import pytest

from access_portal.routes.public import content_disposition
from access_portal.schemas import file_url, record_url
from tests.access_portal import (
    ACCESS_COPY_PATH,
    ARCHIVIST_CLOSED,
    OPEN_PDF,
    PDF_NAME,
    SECRET_CODE,
    STALE_CODE,
    TIFF_PATH,
    WITH_ACCESS_COPY,
    PortalHome,
    TestClient,
    open_records,
)
from tests.access_portal import client as client  # the fixtures, re-exported for pytest
from tests.access_portal import portal_home as portal_home

HREF = re.compile(r'href="([^"]*)"')


def links(html: str) -> list[str]:
    return [unescape(h) for h in HREF.findall(html)]


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": True, "search": True, "backend": "embedded"}


def test_home_lists_the_tree_with_open_counts(client: TestClient, portal_home: PortalHome) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<html lang="zh-CN">' in page
    assert 'action="/search"' in page and 'name="q"' in page
    # province → city → county, in that order
    assert page.index("广东省档案馆") < page.index("广州市档案馆") < page.index("天河区档案馆")
    assert (
        "depth-0 level-province" in page and "depth-1 level-city" in page and "depth-2 level-county" in page
    )
    expected: dict[str, int] = {}
    for archive, _ in open_records(portal_home.settings):
        expected[archive] = expected.get(archive, 0) + 1
    for code, n in expected.items():
        block = page[page.index(f'<span class="code">{code}</span>') :]
        assert re.search(rf'<span class="count"><strong>{n}</strong>', block[:300]), code
    assert f"共 {sum(expected.values())} 件开放档案" in page


def test_search_chinese_with_highlights_and_facets(client: TestClient) -> None:
    r = client.get("/search", params={"q": "广州"})
    assert r.status_code == 200
    page = r.text
    assert "<mark>广州</mark>" in page
    total = int(re.search(r'class="total"><strong>(\d+)</strong>', page).group(1))  # type: ignore[union-attr]
    assert total >= 3
    facet_links = [h for h in links(page) if "archive=" in h and h.startswith("/search?")]
    assert facet_links, "facet links are plain links"
    # clicking the GZ facet keeps the query and narrows to GZ; the count shown equals the new total
    gz = re.search(
        r'<a href="([^"]*archive=GZ)" data-facet="archive">[^<]*</a> <span class="n">(\d+)</span>', page
    )
    assert gz is not None
    narrowed = client.get(unescape(gz.group(1)))
    assert narrowed.status_code == 200
    n = int(re.search(r'class="total"><strong>(\d+)</strong>', narrowed.text).group(1))  # type: ignore[union-attr]
    assert n == int(gz.group(2)) and n < total
    assert "广州市档案馆" in narrowed.text and 'class="chip"' in narrowed.text
    assert "/records/GD/" not in narrowed.text


def test_one_character_query_and_decade_facet(client: TestClient) -> None:
    r = client.get("/search", params={"q": "港"})
    assert r.status_code == 200 and "<mark>港</mark>" in r.text
    decade = re.search(r'<a href="([^"]*year_from=1990[^"]*)" data-facet="year">', r.text)
    assert decade is not None
    follow = client.get(unescape(decade.group(1)))
    assert follow.status_code == 200 and "year_to=1999" in unescape(decade.group(1))


def test_sort_by_date_and_pagination(client: TestClient) -> None:
    r = client.get("/search", params={"sort": "date_desc", "size": 2})
    assert r.status_code == 200
    dates = re.findall(r"</code> · [^·<]+ · (\d{4})", r.text)
    assert dates == sorted(dates, reverse=True)
    assert 'rel="next"' in r.text and 'rel="prev"' not in r.text
    nxt = re.search(r'<a href="([^"]*)" rel="next"', r.text)
    assert nxt is not None and "page=2" in nxt.group(1)
    second = client.get(unescape(nxt.group(1)))
    assert second.status_code == 200 and 'rel="prev"' in second.text


@pytest.mark.parametrize(
    "q",
    [
        '"',
        "(",
        "广州 AND (",
        "NEAR(档案",
        "*",
        "a:b",
        "\\",
        "-",
        "🙂" * 10,
        "档" * 5000,
        "'; DROP TABLE records;--",
    ],
)
def test_query_syntax_never_fails(client: TestClient, q: str) -> None:
    assert client.get("/search", params={"q": q}).status_code == 200


def test_record_page_shows_metadata_files_and_checksums(client: TestClient) -> None:
    r = client.get(record_url(*OPEN_PDF))
    assert r.status_code == 200
    page = r.text
    assert (
        "关于珠江三角洲经济区规划的通知" in page and "广东省人民政府办公厅" in page and "1995-03-12" in page
    )
    assert "Acrobat PDF" in page and re.search(r"<code>[0-9a-f]{64}</code>", page)
    assert file_url(*OPEN_PDF, f"originals/0001 规划通知/{PDF_NAME}") in links(page)
    assert "秘密" not in page and "access_reason" not in page


def test_record_url_must_be_encoded_and_works_encoded(client: TestClient) -> None:
    url = "/records/GD/" + quote(OPEN_PDF[1], safe="")
    assert "%E6%B0%B8%E4%B9%85" in url
    assert client.get(url).status_code == 200


def test_download_streams_the_original_with_chinese_filename(client: TestClient) -> None:
    r = client.get(file_url(*OPEN_PDF, f"originals/0001 规划通知/{PDF_NAME}"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"download.pdf\"; filename*=UTF-8''" + quote(PDF_NAME, safe="")
    )
    assert r.content.startswith(b"%PDF")
    assert r.headers["content-length"] == str(len(r.content))
    digest = hashlib.sha256(r.content).hexdigest()
    assert f"<code>{digest}</code>" in client.get(record_url(*OPEN_PDF)).text


def test_access_copy_is_delivered_instead_of_its_original(client: TestClient) -> None:
    page = client.get(record_url(*WITH_ACCESS_COPY)).text
    hrefs = links(page)
    assert file_url(*WITH_ACCESS_COPY, ACCESS_COPY_PATH) in hrefs
    assert file_url(*WITH_ACCESS_COPY, TIFF_PATH) not in hrefs
    assert "利用件" in page
    r = client.get(file_url(*WITH_ACCESS_COPY, ACCESS_COPY_PATH))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "filename*=UTF-8''" + quote("黄埔港码头 1998.jpg", safe="") in r.headers["content-disposition"]
    assert client.get(file_url(*WITH_ACCESS_COPY, TIFF_PATH)).status_code == 404


def test_content_disposition_fallback() -> None:
    assert (
        content_disposition("report.pdf")
        == "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )
    value = content_disposition('黄埔港 "码头" 1998;x.tif')
    fallback = re.search(r'filename="([^"]*)"', value).group(1)  # type: ignore[union-attr]
    assert fallback.isascii() and fallback.endswith(".tif") and '"' not in fallback and ";" not in fallback
    assert content_disposition("档案").startswith('attachment; filename="download"; ')


def test_restricted_and_missing_records_look_the_same(client: TestClient) -> None:
    urls = [
        record_url("GZ", SECRET_CODE),
        record_url(*ARCHIVIST_CLOSED),
        record_url("GZ", STALE_CODE),
        record_url("GZ", "GZ-000-0000-永久-0000"),
        record_url("XX", "nothing"),
    ]
    answers = [client.get(u) for u in urls]
    assert {a.status_code for a in answers} == {404}
    # the same page, but for the language switch, which links to the address asked for
    assert len({a.text.replace(u, "{url}") for u, a in zip(urls, answers, strict=True)}) == 1
    assert "未找到" in answers[0].text
    assert SECRET_CODE not in answers[0].text


def test_catalogue_page_csv_newest_first_open_only(client: TestClient, portal_home: PortalHome) -> None:
    page = client.get("/archives/GZ/catalogue")
    assert page.status_code == 200
    assert "GZ-020-1999-30年-0002" in page.text and "GZ-030-2021-永久-0003" not in page.text
    assert page.text.index("GZ-020-1999-30年-0002") < page.text.index("GZ-010-1985-永久-0001")
    r = client.get("/archives/GZ/catalogue.csv")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert "filename*=UTF-8''GZ-" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["档号", "题名", "责任者"]
    codes = [row[0] for row in rows[1:]]
    assert codes == ["GZ-020-1999-30年-0002", "GZ-010-1985-永久-0001"]
    assert sorted(("GZ", c) for c in codes) == [o for o in open_records(portal_home.settings) if o[0] == "GZ"]
    assert rows[1][-1].endswith(record_url("GZ", codes[0]))
    assert client.get("/archives/NOPE/catalogue").status_code == 404
    assert client.get("/archives/NOPE/catalogue.csv").status_code == 404


def test_english_switch_is_remembered(client: TestClient) -> None:
    zh = client.get("/")
    assert "English" in zh.text and "lang=en" in zh.text
    en = client.get("/", params={"lang": "en"})
    assert en.status_code == 200 and '<html lang="en">' in en.text
    assert "Guangzhou Municipal Archives" in en.text and "open records" in en.text
    assert "lang=en" in en.headers["set-cookie"]
    again = client.get("/search", params={"q": "archive"})
    assert '<html lang="en">' in again.text
    missing = client.get(record_url("GZ", SECRET_CODE))
    assert missing.status_code == 404 and "Not found" in missing.text
    back = client.get("/", params={"lang": "zh"})
    assert '<html lang="zh-CN">' in back.text
    client.cookies.clear()


HOSTILE = [
    "/search?q=%00",
    "/search?q=" + "x" * 20000,
    "/search?page=-1",
    "/search?page=0",
    "/search?page=99999999999999999999999",
    "/search?size=100000",
    "/search?size=-5",
    "/search?size=abc&page=abc",
    "/search?year_from=-99999999999999999999&year_to=99999999999999999999",
    "/search?year_from=abc",
    "/search?sort=evil",
    "/search?archive=%00&fonds=../../etc&format=%FF",
    "/search?q=%ED%A0%80",
    "/records/GD/%00",
    "/records/GD/..%2F..%2Fcatalogue.sqlite3",
    "/records/%2E%2E/%2E%2E",
    "/records/GD/" + "档" * 5000,
    "/records/GD/%F0%9F%99%82%E2%80%AE",
    "/records/GD/%ED%A0%80",
    "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/..%2F..%2F..%2Fcatalogue.sqlite3",
    "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/%00",
    "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/v1/content/originals",
    "/archives/%00/catalogue",
    "/archives/GD/catalogue?page=-1",
    "/archives/GD/catalogue?page=99999999999999999999",
    "/static/..%2F..%2Fapp.py",
    "/static/%00",
    "/nowhere",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_inputs_never_500(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code < 500, (url, r.status_code)
    assert r.status_code in (200, 404, 422), (url, r.status_code)
    if url.startswith("/records/") or url.startswith("/static/"):
        assert r.status_code == 404


def test_page_size_is_capped(client: TestClient) -> None:
    r = client.get("/search", params={"size": 100000})
    assert r.status_code == 200
    assert len(re.findall(r'<li class="hit">', r.text)) <= 100


def test_a_bug_gives_a_friendly_500(portal_home: PortalHome, monkeypatch: pytest.MonkeyPatch) -> None:
    from access_portal import services
    from access_portal.app import create_app

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "archives_tree", boom)
    with TestClient(create_app(portal_home.settings), raise_server_exceptions=False) as c:
        page = c.get("/")
        api = c.get("/api/v1/archives")
    assert page.status_code == 500 and "出错了" in page.text and "secret internals" not in page.text
    assert api.status_code == 500 and api.json()["detail"] == "Internal Server Error"


def test_search_backend_down_is_503(portal_home: PortalHome) -> None:
    from access_portal.app import create_app
    from search import SearchError

    class Down:
        name = "down"

        def ensure_ready(self) -> None:
            raise SearchError("connection refused")

        def search(self, query: object) -> None:
            raise SearchError("connection refused")

        def count(self, query: object = None) -> int:
            raise SearchError("connection refused")

    with TestClient(create_app(portal_home.settings, backend=Down()), raise_server_exceptions=False) as c:  # type: ignore[arg-type]
        assert c.get("/healthz").status_code == 503
        assert c.get("/search", params={"q": "广州"}).status_code == 503
        assert c.get("/api/v1/search", params={"q": "广州"}).status_code == 503
        assert c.get("/").status_code == 200
