"""The JSON API under /api/v1: search, records, archives, catalogues; strict parameters; OpenAPI."""

from __future__ import annotations

import pytest

from access_portal.schemas import api_record_url
from tests.access_portal import (
    OPEN_PDF,
    SECRET_CODE,
    PortalHome,
    TestClient,
    open_records,
)
from tests.access_portal import client as client  # the fixtures, re-exported for pytest
from tests.access_portal import portal_home as portal_home


def test_search_returns_hits_facets_and_highlights(client: TestClient) -> None:
    r = client.get("/api/v1/search", params={"q": "港"})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] >= 1 and body["page"] == 1 and body["size"] == 20
    hit = next(h for h in body["hits"] if h["archival_code"] == "GD-002-1998-永久-0003")
    assert hit["url"] == "/records/GD/GD-002-1998-%E6%B0%B8%E4%B9%85-0003"
    assert any("<mark>港</mark>" in s for snippets in hit["highlights"].values() for s in snippets)
    assert set(body["facets"]) == {"archive", "level", "fonds", "year", "retention", "format"}
    assert {"value": "GD", "count": 1} in body["facets"]["archive"]


def test_search_filters_and_sort(client: TestClient) -> None:
    body = client.get(
        "/api/v1/search", params={"archive": ["GZ", "GZ-TH"], "sort": "date_asc", "year_from": 1980}
    ).json()
    assert {h["archive"] for h in body["hits"]} <= {"GZ", "GZ-TH"}
    dates = [h["date"][:4] for h in body["hits"]]
    assert dates == sorted(dates)
    by_level = client.get("/api/v1/search", params={"level": "county"}).json()
    assert by_level["hits"] and {h["archive"] for h in by_level["hits"]} == {"GZ-TH"}


def test_archival_code_query(client: TestClient) -> None:
    body = client.get("/api/v1/search", params={"q": OPEN_PDF[1]}).json()
    assert body["hits"][0]["archival_code"] == OPEN_PDF[1]


def test_size_is_capped_and_bad_params_are_422(client: TestClient) -> None:
    capped = client.get("/api/v1/search", params={"size": 100000})
    assert capped.status_code == 200 and capped.json()["size"] == 100
    for params in ({"page": -1}, {"page": 0}, {"size": 0}, {"sort": "evil"}, {"year_from": "abc"}):
        r = client.get("/api/v1/search", params=params)
        assert r.status_code == 422, params
        assert r.headers["content-type"] == "application/json"
        assert isinstance(r.json()["detail"], list)


def test_long_and_odd_queries_are_answered(client: TestClient) -> None:
    for q in ("档" * 5000, "\x00", '"(*', "🙂🙂", "\u202e\u200b"):
        r = client.get("/api/v1/search", params={"q": q})
        assert r.status_code == 200, q


def test_record_is_whitelisted(client: TestClient) -> None:
    r = client.get(api_record_url(*OPEN_PDF))
    assert r.status_code == 200
    body = r.json()
    assert body["archival_code"] == OPEN_PDF[1] and body["archive_name_zh"] == "广东省档案馆"
    assert body["keywords"] == ["经济区", "规划", "珠江三角洲"]
    for private in (
        "security_class",
        "access_status",
        "access_reason",
        "transfer",
        "ocfl_object_id",
        "bag_path",
    ):
        assert private not in body
        assert all(private not in f for f in body["files"])
    (f,) = body["files"]
    assert f["role"] == "original" and len(f["sha256"]) == 64 and f["size"] > 0
    assert f["download_url"].startswith(body["url"] + "/files/originals/")
    assert client.get(f["download_url"]).status_code == 200


def test_restricted_and_missing_are_the_same_404(client: TestClient) -> None:
    a = client.get(api_record_url("GZ", SECRET_CODE))
    b = client.get(api_record_url("GZ", "GZ-000-0000-永久-0000"))
    c = client.get(api_record_url("NOPE", "x"))
    assert a.status_code == b.status_code == c.status_code == 404
    assert a.content == b.content == c.content
    assert a.json() == {
        "code": "ARC004",
        "message_zh": "未找到",
        "message_en": "Not Found",
        "detail": "Not Found",
        "detail_zh": "未找到",
    }


def test_archives_tree(client: TestClient, portal_home: PortalHome) -> None:
    body = client.get("/api/v1/archives").json()
    assert [(a["code"], a["level"], a["depth"], a["parent"]) for a in body] == [
        ("GD", "province", 0, None),
        ("GZ", "city", 1, "GD"),
        ("GZ-TH", "county", 2, "GZ"),
    ]
    opened = open_records(portal_home.settings)
    assert {a["code"]: a["open_records"] for a in body} == {
        code: sum(1 for o in opened if o[0] == code) for code in ("GD", "GZ", "GZ-TH")
    }


def test_catalogue_json(client: TestClient) -> None:
    body = client.get("/api/v1/archives/GD/catalogue").json()
    assert body["archive"] == "GD" and body["total"] == 2
    assert [r["archival_code"] for r in body["records"]] == ["GD-002-1998-永久-0003", "GD-001-1995-永久-0001"]
    small = client.get("/api/v1/archives/GD/catalogue", params={"size": 1, "page": 2}).json()
    assert small["pages"] == 2 and [r["archival_code"] for r in small["records"]] == ["GD-001-1995-永久-0001"]
    assert client.get("/api/v1/archives/GD/catalogue", params={"size": 10**9}).json()["size"] == 1000
    assert client.get("/api/v1/archives/GD/catalogue", params={"page": -1}).status_code == 422
    assert client.get("/api/v1/archives/NOPE/catalogue").status_code == 404


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/search",
        "/api/v1/records/{archive}/{code}",
        "/api/v1/archives",
        "/api/v1/archives/{code}/catalogue",
    ):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/records/GD", "/api/v1/records/%00/%00"])
def test_unknown_api_paths_are_json_404(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", ["/api/v1/search?q=港", "/api/v1/nothing", "/api/v1/search?page=0", "/"])
def test_every_answer_carries_the_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert len(headers.get_list("x-frame-options")) == 1


def test_failures_answer_with_the_catalogue_codes(portal_home: PortalHome) -> None:
    """503 with the public face of the failure (code, zh, en), never the URL or cause behind it."""
    import socket

    from access_portal.app import create_app
    from search import SearchError

    class Down:
        name = "down"

        def ensure_ready(self) -> None:
            raise SearchError("connection refused")

        def search(self, query: object) -> None:
            raise SearchError("connection refused")

    with TestClient(create_app(portal_home.settings, backend=Down()), raise_server_exceptions=False) as c:  # type: ignore[arg-type]
        r = c.get("/api/v1/search", params={"q": "广州"})
    assert r.status_code == 503 and "connection refused" not in r.text
    body = r.json()
    assert body["code"] == "SRC005" and body["message_zh"] == "检索服务暂时不可用" and body["message_en"]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://x:secret@127.0.0.1:{port}/db"
    settings = portal_home.settings.model_copy(update={"database_url": url})
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.get("/api/v1/archives")
    assert r.status_code == 503 and "secret" not in r.text and str(port) not in r.text
    assert r.json()["code"] == "ARC019" and r.json()["message_zh"] and r.json()["message_en"]
