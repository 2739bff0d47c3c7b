"""The portal's hardening: request bounds (access_portal/limits.py), restricted and absent records answered
by the same statements, absolute links from ARCHIVE_PUBLIC_URL, HEAD on every GET route, /docs without a CDN,
Chinese format names."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from pydantic import ValidationError
from sqlalchemy import event

from access_portal.i18n import format_label
from access_portal.schemas import catalogue_url, file_url, record_url
from archive import db
from archive.config import Settings
from tests.access_portal import (
    ARCHIVIST_CLOSED,
    OPEN_PDF,
    PDF_NAME,
    SECRET_CODE,
    PortalHome,
    TestClient,
    closed_files,
)
from tests.access_portal import client as client  # the fixtures, re-exported for pytest
from tests.access_portal import portal_home as portal_home

HREF = re.compile(r'href="([^"]*)"')
FILTERS = ("archive", "level", "fonds", "retention", "format")


def links(html: str) -> list[str]:
    return [unescape(h) for h in HREF.findall(html)]


# -- bounds -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/search", "/api/v1/search"])
def test_thousands_of_repeated_filter_values_get_a_small_coded_refusal(client: TestClient, path: str) -> None:
    # the issue's case: 3,000 values (41 KB of query string) made a 159 MB page
    query = "q=%E6%A1%A3%E6%A1%88&" + "&".join(["archive=GZ"] * 3000)
    r = client.get(f"{path}?{query}")
    assert r.status_code == 422
    assert len(r.content) < 20_000
    assert "POR001" in r.text  # 3,001 parameters: refused before the values are even looked at
    if path.startswith("/api/"):
        body = r.json()
        assert body["code"] == "POR001" and body["message_zh"] and body["message_en"]
    else:
        assert "archive=GZ" not in r.text  # nothing of the request is echoed
    # within the parameter bound, past the values' bound
    r = client.get(f"{path}?" + "&".join(["archive=GZ"] * 21))
    assert r.status_code == 422 and "POR002" in r.text and len(r.content) < 20_000


@pytest.mark.parametrize("path", ["/search", "/api/v1/search"])
def test_too_many_parameters_are_refused(client: TestClient, path: str) -> None:
    r = client.get(path + "?" + "&".join(f"x{i}=1" for i in range(500)))
    assert r.status_code == 422 and "POR001" in r.text and len(r.content) < 20_000


def _page_size(client: TestClient, n: int) -> int:
    params: list[tuple[str, str | int | float | bool | None]] = [("q", "档案")]
    for name in FILTERS:
        params += [(name, f"{name}-{i:02d}") for i in range(n)]
    r = client.get("/search", params=params)
    assert r.status_code == 200
    return len(r.content)


def test_the_page_grows_linearly_with_the_filter_values(client: TestClient) -> None:
    """At the bound (20 values for each of 5 filters) each chip links to the kept query without itself:
    the page grows with the square of the values kept, but they are bounded; 10 → 20 values stays far from
    the old quadratic growth in what was *sent* (repeats and unknown parameters add nothing)."""
    small, full = _page_size(client, 10), _page_size(client, 20)
    assert full < 4.5 * small
    # repeats and junk parameters are not echoed in any link
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("q", "档案"),
        *[("archive", "GZ")] * 20,
        *[("junk", "Z" * 100)] * 100,
    ]
    page = client.get("/search", params=params).text
    assert "ZZZZ" not in page
    chips = re.findall(r'<a class="chip" href="([^"]*)"', page)
    assert len(chips) == 1 and unescape(chips[0]) == "/search?q=%E6%A1%A3%E6%A1%88"
    hidden = re.findall(r'<input type="hidden" name="archive" value="([^"]*)"', page)
    assert hidden.count("GZ") == 2  # once in the search form, once in the years form


def _bounded_search(width: int) -> list[tuple[str, str | int | float | bool | None]]:
    """Real values that match (so facets show) padded with long junk, 20 values in each filter."""
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name, real in (("archive", ("GD", "GZ", "GZ-TH")), ("level", ("province", "city", "county"))):
        params += [(name, v) for v in real] + [(name, f"J{i:02d}".ljust(width, "x")) for i in range(17)]
    params += [("retention", v) for v in ("永久", "permanent", "30y")]
    params += [("retention", f"R{i:02d}".ljust(width, "x")) for i in range(17)]
    return params


def test_the_kept_search_is_bounded_in_bytes_and_so_is_the_page(client: TestClient) -> None:
    at_bound = client.get("/search", params=_bounded_search(60))
    assert at_bound.status_code == 200 and 'class="hit"' in at_bound.text
    assert len(at_bound.content) < 1_000_000
    over = client.get("/search", params=_bounded_search(80))
    assert over.status_code == 422 and "POR005" in over.text and len(over.content) < 20_000
    api = client.get("/api/v1/search", params=_bounded_search(80))
    assert api.status_code == 422 and api.json()["code"] == "POR005"


@pytest.mark.parametrize("path", ["/search", "/api/v1/search"])
@pytest.mark.parametrize("value", ["\x00x", "x\x00", "\x00", "GZ\x07", "x" * 300])
def test_control_characters_and_long_values_in_filters_are_refused(
    client: TestClient, path: str, value: str
) -> None:
    r = client.get(path, params={"q": "广州", "format": value})
    assert r.status_code == 422 and "POR003" in r.text
    assert "\x00" not in r.text and "\\u0000" not in r.text


def test_a_nul_in_the_query_text_is_not_echoed(client: TestClient) -> None:
    page = client.get("/search", params={"q": "广州\x00港"}).text
    assert "\x00" not in page
    assert 'value="广州 港"' in page


def test_api_page_beyond_the_last_is_refused_with_the_last_page(client: TestClient) -> None:
    first = client.get("/api/v1/search", params={"q": "广州"}).json()
    assert first["page"] == 1 and first["pages"] >= 1
    for page in (first["pages"] + 1, 999, 100_000):
        r = client.get("/api/v1/search", params={"q": "广州", "page": page})
        assert r.status_code == 422, page
        body = r.json()
        assert body["code"] == "POR004" and body["page"] == str(page)
        assert body["last_page"] == str(first["pages"] if page <= 500 else 500)
    last = client.get("/api/v1/search", params={"q": "广州", "page": first["pages"]}).json()
    assert last["page"] == first["pages"] and last["pages"] == first["pages"] and last["hits"]
    # no hits at all: page 1 exists and says so
    none = client.get("/api/v1/search", params={"q": "没有这个词ZZQ"}).json()
    assert none["page"] == 1 and none["pages"] == 1 and none["hits"] == []
    assert client.get("/api/v1/search", params={"q": "没有这个词ZZQ", "page": 2}).status_code == 422


def test_page_beyond_the_last_on_pages_and_catalogues(client: TestClient) -> None:
    r = client.get("/search", params={"q": "广州", "page": 999})
    assert r.status_code == 422 and "POR004" in r.text and "第 999 页不存在" in r.text
    en = client.get("/search", params={"q": "广州", "page": 999, "lang": "en"})
    assert "Page 999 does not exist" in en.text
    client.cookies.clear()
    api = client.get("/api/v1/archives/GD/catalogue", params={"size": 1, "page": 999})
    assert api.status_code == 422 and api.json()["code"] == "POR004" and api.json()["last_page"] == "2"
    assert client.get("/archives/GD/catalogue", params={"page": 999}).status_code == 422


def test_api_facets_are_capped(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from access_portal import schemas

    full = client.get("/api/v1/search").json()["facets"]
    assert max(len(v) for v in full.values()) > 2
    monkeypatch.setattr(schemas, "MAX_FACET_VALUES", 2)
    capped = client.get("/api/v1/search").json()["facets"]
    for name, values in capped.items():
        assert values == full[name][:2]  # the most frequent ones


def test_size_is_capped_by_the_setting(portal_home: PortalHome) -> None:
    from access_portal.app import create_app

    settings = portal_home.settings.model_copy(
        update={"portal_max_page_size": 2, "portal_max_filter_values": 3}
    )
    with TestClient(create_app(settings)) as c:
        body = c.get("/api/v1/search", params={"q": "档案", "size": 50}).json()
        assert body["size"] == 2 and len(body["hits"]) <= 2
        assert c.get("/api/v1/search", params={"archive": ["GD", "GZ", "GZ-TH"]}).status_code == 200
        assert c.get("/api/v1/search", params={"archive": ["GD", "GZ", "GZ-TH", "GD"]}).status_code == 422


def test_portal_codes_match_their_catalogue() -> None:
    """The POR codes' messages as raised are the catalogue's (archive/codes/portal.toml), for the integrator's
    move of every message into that catalogue."""
    import tomllib
    from pathlib import Path

    from access_portal import limits

    catalogue = tomllib.loads((Path(__file__).parents[2] / "archive/codes/portal.toml").read_text())
    raised = [
        limits.too_many_params(7),
        limits.too_many_values("fonds", 7),
        limits.bad_value("fonds"),
        limits.no_such_page(9, 2),
        limits.query_too_long(7),
    ]
    assert sorted(catalogue) == sorted([limits.OutOfBounds.code, *(e.code for e in raised)])  # + the base
    for error in raised:
        entry = catalogue[error.code]
        assert entry["zh"].format(**error.details) == error.zh
        assert entry["en"].format(**error.details) == error.en


# -- restricted and absent records cost the same -----------------------------------------------------------


@pytest.fixture
def statements(portal_home: PortalHome) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = db.get_engine(portal_home.settings)

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _issued(client: TestClient, statements: list[str], url: str) -> list[str]:
    statements.clear()
    r = client.get(url)
    assert r.status_code == 404, url
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1, statements
    return list(statements)


def test_restricted_and_absent_records_issue_the_same_statements(
    client: TestClient, portal_home: PortalHome, statements: list[str]
) -> None:
    restricted = next((a, c, p) for a, c, p in closed_files(portal_home.settings) if c == SECRET_CODE)
    archive, code, path = restricted
    absent = "GZ-000-1990-永久-9999"
    for make in (record_url, lambda a, c: "/api" + "/v1" + record_url(a, c)):
        shut = _issued(client, statements, make(archive, code))
        missing = _issued(client, statements, make(archive, absent))
        assert shut == missing
    shut = _issued(client, statements, file_url(archive, code, path))
    missing = _issued(client, statements, file_url(archive, absent, path))
    assert shut == missing
    # the archivist-closed record of another archive alike
    shut = _issued(client, statements, record_url(*ARCHIVIST_CLOSED))
    missing = _issued(client, statements, record_url(ARCHIVIST_CLOSED[0], absent))
    assert shut == missing


# -- absolute links and caching -----------------------------------------------------------------------------


def test_catalogue_csv_links_come_from_configuration_not_the_host(portal_home: PortalHome) -> None:
    from access_portal.app import create_app

    settings = portal_home.settings.model_copy(update={"public_url": "https://dangan.example.gov.cn/portal"})
    with TestClient(create_app(settings)) as c:
        r = c.get("/archives/GD/catalogue.csv", headers={"Host": "evil.example"})
    assert r.status_code == 200
    assert "evil.example" not in r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][-1] == "链接" and len(rows) > 1
    for row in rows[1:]:
        assert row[-1] == "https://dangan.example.gov.cn/portal" + record_url("GD", row[0])
    assert "public" in r.headers["cache-control"] and "max-age=" in r.headers["cache-control"]


def test_oai_links_come_from_configuration_not_the_host(client: TestClient) -> None:
    for params in ({"verb": "Identify"}, {"verb": "ListRecords", "metadataPrefix": "oai_dc"}):
        r = client.get("/oai", params=params, headers={"Host": "evil.example"})
        assert r.status_code == 200
        assert "evil.example" not in r.text and "http://testserver/" in r.text


def test_csv_retention_reads_as_on_the_pages(client: TestClient) -> None:
    text = client.get("/archives/GD/catalogue.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert "永久" in {row[4] for row in rows[1:]}
    assert "permanent" not in text and "30y" not in text


def test_downloads_carry_cache_control(client: TestClient) -> None:
    r = client.get(file_url(*OPEN_PDF, f"originals/0001 规划通知/{PDF_NAME}"))
    assert r.status_code == 200 and r.headers["cache-control"].startswith("public, max-age=")


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example", "dangan.example.gov.cn", "/portal", "http://", "http://x.example/?a=1", "http://x#y"],
)
def test_public_url_must_be_an_absolute_http_url(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(public_url=url)


def test_public_url_trailing_slash_is_dropped() -> None:
    assert Settings(public_url="https://x.example/portal/").public_url == "https://x.example/portal"
    assert Settings().public_url == "http://127.0.0.1:8000"


# -- HEAD -------------------------------------------------------------------------------------------------

#: An example address for every GET route with parameters; a new route must add one here.
EXAMPLES = {
    "/records/{archive}/{code}": record_url(*OPEN_PDF),
    "/records/{archive}/{code}/files/{path:path}": file_url(*OPEN_PDF, f"originals/0001 规划通知/{PDF_NAME}"),
    "/archives/{code}/catalogue": catalogue_url("GD"),
    "/archives/{code}/catalogue.csv": catalogue_url("GD") + ".csv",
    "/api/v1/records/{archive}/{code}": "/api/v1" + record_url(*OPEN_PDF),
    "/api/v1/archives/{code}/catalogue": "/api/v1" + catalogue_url("GD"),
}


def _flat(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI ≥ 0.16x keeps included routers whole
        yield from _flat(included.routes) if included is not None else (route,)


#: Headers that may differ between two answers to the same request (a signature's time and nonce).
VOLATILE = {"date", "signature", "signature-input", "x-request-id"}


def _get_routes(client: TestClient) -> list[tuple[str, bool]]:
    """A URL for every GET route of the app, and whether it must answer 200 (the public portal's routes,
    with real examples); a route added later is filled with placeholders and only compared with its GET."""
    from starlette.routing import Mount, Route

    urls = []
    for route in _flat(client.app.routes):  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route), route
        if "GET" not in (route.methods or ()):
            continue
        if route.path in EXAMPLES:
            urls.append((EXAMPLES[route.path], True))
        elif "{" in route.path:
            urls.append((re.sub(r"\{[^}]*\}", "x", route.path), False))
        else:
            public = route.path in ("/", "/search", "/healthz", "/docs", "/openapi.json")
            urls.append((route.path + ("?q=广州" if route.path.endswith("search") else ""), public))
    return urls


def test_every_get_route_answers_head(client: TestClient) -> None:
    urls = [*_get_routes(client), ("/static/portal.css", True), ("/docs-assets/swagger-ui.css", True)]
    assert sum(ok for _, ok in urls) >= 12
    for url, ok in urls:
        get, head = client.get(url), client.head(url)
        assert head.status_code == get.status_code, url
        assert head.status_code == 200 or not ok, url
        assert head.status_code != 405, url
        assert head.content == b"", url
        assert {k: v for k, v in head.headers.items() if k not in VOLATILE} == {
            k: v for k, v in get.headers.items() if k not in VOLATILE
        }, url
    missing = client.head(record_url("GZ", SECRET_CODE))
    assert missing.status_code == 404 and missing.content == b""
    assert client.head("/healthz").headers["content-type"] == "application/json"


# -- /docs ------------------------------------------------------------------------------------------------


def test_docs_use_only_local_assets_and_they_are_served(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    refs += re.findall(r"""url: ['"]([^'"]+)['"]""", page.text)
    assert refs
    for ref in refs:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, ref
        r = client.get(ref)
        assert r.status_code == 200, ref
    assert "http://" not in page.text and "https://" not in page.text.replace("https://fastapi", "")
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert client.get("/redoc").status_code == 404


# -- Chinese names of formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "puid", "zh"),
    [
        ("Acrobat PDF 1.4 - Portable Document Format", "fmt/18", "PDF 版式文档 1.4"),
        ("Acrobat PDF/A - Portable Document Format", "fmt/354", "PDF/A 长期保存版式文档"),
        ("Microsoft Word Document", "fmt/40", "Word 文档（DOC）"),
        ("Microsoft Word for Windows", "fmt/412", "Word 文档（DOCX）"),
        ("Microsoft Excel 97 Workbook (xls)", "fmt/61", "Excel 电子表格（XLS）"),
        ("Microsoft Excel for Windows", "fmt/214", "Excel 电子表格（XLSX）"),
        ("Microsoft Powerpoint Presentation", "fmt/126", "PowerPoint 演示文稿（PPT）"),
        ("JPEG File Interchange Format", "fmt/43", "JPEG 图像"),
        ("Tagged Image File Format", "fmt/353", "TIFF 图像"),
        ("Portable Network Graphics", "fmt/11", "PNG 图像"),
        ("Graphics Interchange Format", "fmt/4", "GIF 图像"),
        ("Windows Bitmap", "fmt/116", "BMP 图像"),
        ("Plain Text File", "x-fmt/111", "纯文本"),
        ("Waveform Audio", "fmt/141", "WAV 音频"),
        ("MPEG 1/2 Audio Layer 3", "fmt/134", "MP3 音频"),
        ("MPEG-4 Media File", "fmt/199", "MP4 视频"),
        ("OFD", None, "OFD 版式文档"),
    ],
)
def test_common_formats_have_chinese_names(name: str, puid: str | None, zh: str) -> None:
    if puid:  # by PRONOM id: the family, without the version only a name carries
        assert format_label("zh", None, puid) == re.sub(r" [\d.]+$", "", zh)
    assert format_label("zh", name) == zh
    assert format_label("en", name, puid) == name


def test_unknown_formats_keep_their_name() -> None:
    assert format_label("zh", "Some Rare Format 2.1") == "Some Rare Format 2.1"


def test_format_facet_reads_in_chinese_on_chinese_pages(client: TestClient) -> None:
    zh = client.get("/search", params={"q": "规划"}).text
    facet = zh[zh.index("facet-format") :]
    facet = facet[: facet.index("</section>")]
    assert "PDF 版式文档" in facet and "Portable Document Format" not in facet
    # the link still filters by the PRONOM name
    assert any("format=Acrobat" in h for h in links(facet))
    en = client.get("/search", params={"q": "规划", "lang": "en"}).text
    client.cookies.clear()
    facet = en[en.index("facet-format") :]
    assert "Portable Document Format" in facet[: facet.index("</section>")]
    record = client.get(record_url(*OPEN_PDF)).text
    assert "PDF 版式文档" in record and "Acrobat PDF" in record


def test_catalogue_download_buttons_do_not_touch(client: TestClient) -> None:
    page = client.get("/archives/GD/catalogue").text
    exports = re.search(r'<p class="exports">(.*?)</p>', page)
    assert exports is not None
    assert len(re.findall(r'class="button[^"]*"', exports.group(1))) == 2
    css = client.get("/static/portal.css").text
    assert re.search(r"\.exports\s*\{[^}]*gap:\s*[.\d]+rem", css)


def test_page_links_never_carry_the_raw_query(client: TestClient) -> None:
    url = "/records/GD/" + quote(OPEN_PDF[1], safe="") + "?" + "&".join(["junk=JUNKVALUE"] * 50)
    page = client.get(url).text
    assert "JUNKVALUE" not in page
