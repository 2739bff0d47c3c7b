"""Restricted records never leave the portal, whatever the exit.

The node (see :mod:`tests.access_portal`) holds restricted records carrying :data:`SECRET`, a word no test ever
sends, and a record closed after it was indexed carrying :data:`STALE`. The crawler follows every link from
the home page (pages, facet links, pagination, language switch, catalogues, CSV/JSON exports, record pages,
downloads, the API links found in JSON) and a set of direct probes (searches for a word only the restricted
records hold, guessed download URLs, path traversal); no answer may carry the secret, in any encoding.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import pytest

from access_portal.schemas import api_record_url, file_url, record_url
from tests.access_portal import (
    ARCHIVIST_CLOSED,
    OPEN_PDF,
    PROBE,
    SECRET,
    SECRET_CODE,
    STALE,
    STALE_CODE,
    PortalHome,
    TestClient,
    closed_files,
    open_records,
)
from tests.access_portal import client as client  # the fixtures, re-exported for pytest
from tests.access_portal import portal_home as portal_home

LINK = re.compile(r'(?:href|src|action)="([^"]*)"')
MAX_PAGES = 1500
#: Search pages are followed only this deep in filters, so facet combinations do not explode.
MAX_FILTERS = 2


def forbidden() -> list[str]:
    words = [
        SECRET,
        "XYZZY",
        STALE,
        "QUUX",
        SECRET_CODE,
        STALE_CODE,
        ARCHIVIST_CLOSED[1],
        "GZ/099",
        "GZ-TH/009",
    ]
    out: list[str] = []
    for w in words:
        out += [w, quote(w, safe=""), quote(w), quote_plus(w), json.dumps(w)[1:-1]]
    return list(dict.fromkeys(out))


FORBIDDEN = forbidden()


def assert_clean(url: str, status: int, headers: dict[str, str], body: bytes, sent: str = "") -> None:
    """No forbidden word in the answer; ``sent`` (what the test itself asked for, which a page may link back
    to, e.g. in its language switch) is taken out first."""
    assert status < 500, (url, status)
    text = body.decode("utf-8", errors="replace")
    if sent:
        text = text.replace(sent, "")
    head = "\n".join(f"{k}: {v}" for k, v in headers.items())
    for word in FORBIDDEN:
        assert word not in text, f"{word!r} leaked in the body of {url}"
        assert word not in head, f"{word!r} leaked in the headers of {url}"


def json_urls(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("url", "download_url", "catalogue_url", "api_url") and isinstance(value, str):
                yield value
            else:
                yield from json_urls(value)
    elif isinstance(data, list):
        for item in data:
            yield from json_urls(item)


def filters_in(url: str) -> int:
    query = urlsplit(url).query
    return sum(
        1
        for part in query.split("&")
        if part.split("=")[0] in ("archive", "level", "fonds", "retention", "format", "year_from")
    )


def crawl(client: TestClient, seeds: list[str]) -> dict[str, int]:
    """Breadth-first over same-site links; every answer is checked. Returns status by URL."""
    pages: deque[str] = deque(seeds)
    searches: deque[str] = deque()
    seen: dict[str, int] = {}
    while (pages or searches) and len(seen) < MAX_PAGES:
        url = pages.popleft() if pages else searches.popleft()
        if url in seen:
            continue
        r = client.get(url)
        seen[url] = r.status_code
        assert_clean(url, r.status_code, dict(r.headers), r.content)
        kind = r.headers.get("content-type", "")
        found: list[str] = []
        if kind.startswith("text/html"):
            found = [unescape(h) for h in LINK.findall(r.text)]
        elif kind.startswith("application/json"):
            found = list(json_urls(r.json()))
        for link in found:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or not link.startswith("/") or link in seen:
                continue
            if link.startswith("/search") and filters_in(link) > MAX_FILTERS:
                continue
            (searches if link.startswith(("/search", "/api/v1/search")) else pages).append(link)
    return seen


def test_crawl_from_home_never_shows_a_restricted_record(client: TestClient, portal_home: PortalHome) -> None:
    seeds = [
        "/",
        "/?lang=en",
        "/search",
        "/search?size=100",
        "/search?lang=en&size=100",
        "/api/v1/search?size=100",
        "/api/v1/archives",
        "/openapi.json",
    ]
    try:
        seen = crawl(client, seeds)
    finally:
        client.cookies.clear()
    # the crawl reached every open record's page and every exit kind
    for archive, code in open_records(portal_home.settings):
        assert record_url(archive, code) in seen, code
    assert any("/files/" in u for u in seen)
    assert any(u.endswith("/catalogue.csv") for u in seen)
    assert any(u.startswith("/api/v1/archives/") for u in seen)
    assert any(u.startswith("/api/v1/records/") for u in seen)
    assert any("archive=" in u for u in seen) and any("year_from=" in u for u in seen)
    assert all(status in (200,) for status in seen.values()), {u: s for u, s in seen.items() if s != 200}


def test_search_for_words_only_restricted_records_hold(client: TestClient) -> None:
    for q in (PROBE, "探针词", "PLUGH", "GZ-099", "TH-009", "GZ-098", "撤回词"):
        page = client.get("/search", params={"q": q})
        assert_clean(page.url.path, page.status_code, dict(page.headers), page.content)
        assert re.search(r'class="total"><strong>0</strong>', page.text), q
        api = client.get("/api/v1/search", params={"q": q})
        assert_clean(str(api.url), api.status_code, dict(api.headers), api.content)
        assert api.json()["hits"] == [] and api.json()["total"] == 0, q


def test_facet_counts_count_open_records_only(client: TestClient, portal_home: PortalHome) -> None:
    body = client.get("/api/v1/search", params={"size": 100}).json()
    opened = open_records(portal_home.settings)
    assert sorted((h["archive"], h["archival_code"]) for h in body["hits"]) == opened
    assert body["total"] == len(opened)
    archive_counts = {f["value"]: f["count"] for f in body["facets"]["archive"]}
    for code in ("GD", "GZ-TH"):
        assert archive_counts.get(code, 0) == sum(1 for o in opened if o[0] == code)
    # GZ's count may still include the record closed after indexing until the outbox is drained — but
    # never the classified record, which was never indexed
    assert archive_counts["GZ"] <= sum(1 for o in opened if o[0] == "GZ") + 1
    fonds = {f["value"] for f in body["facets"]["fonds"]}
    assert "GZ/099" not in fonds and "GZ-TH/009" not in fonds


def test_guessed_download_urls_of_restricted_files_are_404(
    client: TestClient, portal_home: PortalHome
) -> None:
    files = closed_files(portal_home.settings)
    assert len(files) >= 4
    answers = []
    for archive, code, path in files:
        answers.append(client.get(file_url(archive, code, path)))
        # the restricted file's path under an open record's URL
        answers.append(client.get(file_url(*OPEN_PDF, path)))
        answers.append(client.get(api_record_url(archive, code)))
        answers.append(client.get(record_url(archive, code) + "?lang=en"))
    for r in answers:
        assert r.status_code == 404, r.url
        assert_clean(
            str(r.url), r.status_code, dict(r.headers), r.content, sent=r.url.raw_path.decode().split("?")[0]
        )


@pytest.mark.parametrize(
    "url",
    [
        "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/..%2F..%2F..%2F..%2Fcatalogue.sqlite3",
        "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/%2E%2E/%2E%2E/%2E%2E/catalogue.sqlite3",
        "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/v1/content/originals/0004%20%E7%94%B5%E6%8A%A5/x.txt",
        "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files//etc/passwd",
        "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/inventory.json",
        "/records/GD/GD-001-1995-%E6%B0%B8%E4%B9%85-0001/files/originals/..%2F..%2Finventory.json",
        "/static/..%2F..%2F..%2Fcatalogue.sqlite3",
        "/static/%2E%2E/services.py",
        "/catalogue.sqlite3",
        "/search.sqlite3",
    ],
)
def test_path_traversal_is_404(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 404, url
    assert b"SQLite format" not in r.content and b"ocfl_object" not in r.content
    assert_clean(url, r.status_code, dict(r.headers), r.content)


def test_stale_index_entry_is_dropped(client: TestClient) -> None:
    """The record closed after indexing is still in the index; the portal must drop it on every page."""
    body = client.get("/api/v1/search", params={"archive": "GZ", "size": 100}).json()
    assert STALE_CODE not in [h["archival_code"] for h in body["hits"]]
    page = client.get("/search", params={"archive": "GZ", "fonds": "GZ/098"})
    assert_clean(page.url.path, page.status_code, dict(page.headers), page.content)
    assert 'class="hit"' not in page.text
