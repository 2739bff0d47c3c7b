"""The regional fan-out and merge (search/federation.py) against httpx.MockTransport peers: RRF order and
its tie-break, paging without repeats, facet sums, statuses, the deadline, the circuit breaker, and the
harvested-catalogue fallback. The real thing — three portals over real HTTP — is tests/e2e/test_federation.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive.config import Settings
from archive.federation.identity import NodeIdentity
from archive.federation.signing import verify_request
from search.backend import SearchQuery
from search.federation import Breaker, Dispatch, Federation, NodeAnswer, PeerRef, merge, windows

ME = NodeIdentity("me", "广东省档案馆", "http://me.test", Ed25519PrivateKey.generate(), "")
A = PeerRef("aaa", "广州市档案馆", "http://a.test")
B = PeerRef("bbb", "天河区档案馆", "http://b.test")


def hits(archive: str, n: int, prefix: str = "R") -> list[dict[str, Any]]:
    return [
        {
            "archive": archive,
            "archival_code": f"{prefix}-{i:03d}",
            "title": f"{archive} 档案 {i}",
            "date": f"19{50 + i % 50:02d}",
            "formats": [],
            "highlights": {},
        }
        for i in range(n)
    ]


def node_app(archive: str, n: int, *, delay: float = 0.0, status: int = 200) -> Any:
    """A peer's /federation/v1/search over ``n`` ranked hits, checking our signature."""
    data = hits(archive, n)
    calls: list[dict[str, list[str]]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        verify_request(
            request.method,
            str(request.url),
            request.headers.multi_items(),
            b"",
            public_key=lambda k: ME.public_key if k == "me" else None,
            remember_nonce=lambda *a: True,
        )
        params = parse_qs(urlsplit(str(request.url)).query)
        calls.append(params)
        if delay:
            await asyncio.sleep(delay)
        if status != 200:
            return httpx.Response(status, json={"detail": "no"})
        page, size = int(params["page"][0]), int(params["size"][0])
        body = {
            "q": params.get("q", [""])[0],
            "total": n,
            "total_exact": True,
            "page": page,
            "size": size,
            "hits": data[(page - 1) * size : page * size],
            "facets": {"archive": [{"value": archive, "count": n}], "year": [{"value": "1950", "count": 3}]},
        }
        return httpx.Response(200, json=body)

    handler.calls = calls  # type: ignore[attr-defined]
    return handler


def router(apps: dict[str, Any]) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        app = apps.get(request.url.host)
        if app is None:
            raise httpx.ConnectError("connection refused", request=request)
        result: httpx.Response = await app(request)
        return result

    return httpx.MockTransport(handle)


def local_of(archive: str, n: int) -> Any:
    data = hits(archive, n, prefix="L")

    async def local(query: SearchQuery, top: int) -> NodeAnswer:
        return NodeAnswer(
            ME.node_id,
            ME.name,
            "ok",
            1.0,
            total=n,
            hits=[{**h, "url": f"/records/{archive}/{h['archival_code']}"} for h in data[:top]],
            facets={"archive": {archive: n}},
            local=True,
        )

    return local


def fed(settings: Settings, apps: dict[str, Any], **kw: Any) -> Federation:
    return Federation(settings, transport=router(apps), catalogue=kw.pop("catalogue", None), **kw)


@pytest.fixture
def settings(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ARCHIVE_HOME", str(tmp_path))
    monkeypatch.setenv("ARCHIVE_FEDERATION_TIMEOUT", "0.5")
    return Settings()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_windows() -> None:
    assert windows(20) == [(1, 20)]
    assert windows(100) == [(1, 100)]
    assert windows(250) == [(1, 100), (2, 100), (3, 100)]


def test_rrf_interleaves_with_stable_tie_break_and_sums_facets(settings: Settings) -> None:
    f = fed(settings, {"a.test": node_app("GZ", 5), "b.test": node_app("GZ-TH", 5)})
    r = run(f.search(ME, [A, B], SearchQuery(q="档案", size=6), local=local_of("GD", 5)))
    # equal ranks tie: node id order aaa < bbb < me
    assert [(h["node"], h["archival_code"]) for h in r.hits] == [
        ("aaa", "R-000"),
        ("bbb", "R-000"),
        ("me", "L-000"),
        ("aaa", "R-001"),
        ("bbb", "R-001"),
        ("me", "L-001"),
    ]
    assert r.total == 15 and r.total_exact
    assert r.facets["archive"] == {"GD": 5, "GZ": 5, "GZ-TH": 5}
    assert r.facets["year"] == {"1950": 6}
    assert [n.status for n in r.nodes] == ["ok", "ok", "ok"] and r.nodes[0].local
    remote = r.hits[0]
    assert remote["url"] == "/remote/aaa/records/GZ/R-000" and remote["source"] == "live"
    assert r.hits[2]["url"] == "/records/GD/L-000"


def test_pages_never_repeat_and_cover_everything(settings: Settings) -> None:
    apps = {"a.test": node_app("GZ", 37), "b.test": node_app("GZ-TH", 150)}
    f = fed(settings, apps)
    seen: list[tuple[str, str]] = []
    for page in range(1, 30):
        r = run(f.search(ME, [A, B], SearchQuery(q="x", page=page, size=10), local=local_of("GD", 23)))
        if not r.hits:
            break
        seen += [(h["archive"], h["archival_code"]) for h in r.hits]
    assert len(seen) == len(set(seen)) == 37 + 150 + 23
    # page 12 of 10 needs the top 120 of each node: two requests of 100 to the big one
    sizes = [c["size"][0] for c in apps["b.test"].calls]
    assert "100" in sizes


def test_date_sort_merges_by_date(settings: Settings) -> None:
    f = fed(settings, {"a.test": node_app("GZ", 8)})
    r = run(f.search(ME, [A], SearchQuery(q="x", size=16, sort="date_desc"), local=local_of("GD", 8)))
    dates = [h["date"] for h in r.hits]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize(
    ("apps", "status"),
    [
        ({}, "unreachable"),
        ({"a.test": node_app("GZ", 3, status=401)}, "refused"),
        ({"a.test": node_app("GZ", 3, status=500)}, "error"),
        ({"a.test": node_app("GZ", 3, delay=5)}, "timeout"),
    ],
)
def test_a_failing_peer_gives_a_partial_answer(settings: Settings, apps: dict[str, Any], status: str) -> None:
    f = fed(settings, apps)
    start = time.perf_counter()
    r = run(f.search(ME, [A], SearchQuery(q="x"), local=local_of("GD", 4)))
    assert time.perf_counter() - start < 0.5 + 1.0  # deadline 0.5 s, generous margin
    assert {n.node_id: n.status for n in r.nodes} == {"me": "ok", "aaa": status}
    assert [h["node"] for h in r.hits] == ["me"] * 4
    assert not r.total_exact


def test_garbage_answer_is_an_error_not_a_crash(settings: Settings) -> None:
    async def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"hits": [{"title": 1}, "x"], "total": 1}))

    r = run(fed(settings, {"a.test": garbage}).search(ME, [A], SearchQuery(), local=local_of("GD", 1)))
    assert r.nodes[1].status == "ok" and [h["node"] for h in r.hits] == ["me"]
    r = run(
        fed(settings, {"a.test": lambda req: _resp(b"<html>")}).search(
            ME, [A], SearchQuery(), local=local_of("GD", 1)
        )
    )
    assert r.nodes[1].status == "error"


async def _resp(content: bytes) -> httpx.Response:
    return httpx.Response(200, content=content)


def test_breaker_opens_skips_then_half_opens() -> None:
    now = [0.0]
    b = Breaker(3, 30.0, clock=lambda: now[0])
    for _ in range(3):
        assert b.allow("x")
        b.failure("x")
    assert not b.allow("x")
    now[0] = 29.0
    assert not b.allow("x")
    now[0] = 31.0
    assert b.allow("x")  # half-open trial
    b.failure("x")
    assert not b.allow("x")  # one failure re-opens
    now[0] = 62.0
    assert b.allow("x")
    b.success("x")
    b.failure("x")
    assert b.allow("x")  # closed again: needs 3 in a row


def test_a_dead_peer_is_skipped_after_repeated_failures(settings: Settings) -> None:
    now = [0.0]
    f = fed(settings, {"a.test": node_app("GZ", 3, delay=5)}, clock=lambda: now[0])
    statuses = []
    for _ in range(4):
        start = time.perf_counter()
        r = run(f.search(ME, [A], SearchQuery(), local=local_of("GD", 1)))
        statuses.append((r.nodes[1].status, time.perf_counter() - start))
    assert [s for s, _ in statuses] == ["timeout", "timeout", "timeout", "skipped"]
    assert statuses[-1][1] < 0.4  # a skipped node adds no wait


def test_catalogue_fallback_for_a_peer_that_cannot_answer(settings: Settings) -> None:
    asked: list[tuple[str, SearchQuery]] = []

    def catalogue(s: Settings, origin_url: str, params: SearchQuery) -> dict[str, Any] | None:
        asked.append((origin_url, params))
        if origin_url != A.url:
            return None
        found = [{**h, "harvested_at": "2026-12-06T20:00:00+00:00"} for h in hits("GZ", 2, "C")]
        return {"hits": found, "total": 2, "facets": {"archive": {"GZ": 2}}}

    f = fed(settings, {}, catalogue=catalogue)
    r = run(f.search(ME, [A, B], SearchQuery(q="x"), local=local_of("GD", 1)))
    by_node = {n.node_id: n for n in r.nodes}
    assert by_node["aaa"].status == "unreachable" and by_node["aaa"].source == "catalogue"
    assert by_node["aaa"].harvested_at == "2026-12-06T20:00:00+00:00"
    assert by_node["bbb"].status == "unreachable" and by_node["bbb"].source is None
    cat = [h for h in r.hits if h["source"] == "catalogue"]
    assert [h["archival_code"] for h in cat] == ["C-000", "C-001"]
    assert all(h["harvested_at"] and h["url"].startswith("/remote/aaa/") for h in cat)
    assert r.facets["archive"] == {"GZ": 2, "GD": 1}
    assert {u for u, _ in asked} == {A.url, B.url}


def test_merge_dedupes_a_record_seen_twice() -> None:
    q = SearchQuery(size=10)
    one = NodeAnswer("a", "A", "ok", 1, total=1, hits=hits("GZ", 1))
    two = NodeAnswer("b", "B", "ok", 1, total=1, hits=hits("GZ", 1))
    assert len(merge(q, [one, two]).hits) == 1


def test_highlights_of_a_peer_keep_only_strings(settings: Settings) -> None:
    async def odd(request: httpx.Request) -> httpx.Response:
        h = {**hits("GZ", 1)[0], "highlights": {"title": ["<mark>x</mark>", 3], "bad": "no"}, "secret": "s"}
        return httpx.Response(200, json={"hits": [h], "total": 1, "facets": {}})

    r = run(fed(settings, {"a.test": odd}).search(ME, [A], SearchQuery(), local=local_of("GD", 0)))
    assert r.hits[0]["highlights"] == {"title": ["<mark>x</mark>"]} and "secret" not in r.hits[0]


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("search.harvest") is None,
    reason="INTEGRATION: search/harvest.py (the harvested catalogue, other branch) not merged yet",
)
def test_the_real_catalogue_search_is_found() -> None:
    """INTEGRATION — runs once search/harvest.py lands: the fan-out finds its catalogue_search."""
    from search.federation import find_catalogue_search

    assert find_catalogue_search() is not None


def test_dispatch_is_set_once_every_request_is_on_its_way() -> None:
    async def go() -> None:
        d = Dispatch()
        d.one_more(2)  # a deep page: two windows
        first, second = d.tracer(), d.tracer()
        await first("connection.connect_tcp.started", {})
        await first("http11.receive_response_headers.started", {})  # the same request counts once
        assert not d.event.is_set()
        await second("http11.send_request_headers.started", {})  # not yet written
        assert not d.event.is_set()
        await second("http11.receive_response_headers.started", {})
        assert d.event.is_set()
        skipped = Dispatch()
        skipped.finish()  # a request that ended (or never started) leaves nothing to wait for
        assert skipped.event.is_set() and Dispatch(0).event.is_set()

    run(go())


def _search_body(archive: str, n: int) -> bytes:
    data = hits(archive, n)
    return json.dumps(
        {"q": "", "total": n, "total_exact": True, "page": 1, "size": 20, "hits": data, "facets": {}}
    ).encode()


def test_real_peers_over_loopback_answer_while_the_local_search_runs(settings: Settings) -> None:
    """Real sockets (the default transport): the local search starts once the peers' requests are written,
    not after their answers — each peer here answers only after the local search has started — and the
    merged answer is the one the same answers give through a MockTransport."""

    async def go() -> None:
        local_started = asyncio.Event()
        received: list[bytes] = []

        def peer(archive: str) -> Any:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                while True:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except asyncio.IncompleteReadError:
                        break
                    received.append(head)
                    await asyncio.wait_for(local_started.wait(), 5)
                    body = _search_body(archive, 3)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        + f"content-length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
                writer.close()

            return handle

        servers = [await asyncio.start_server(peer(a), "127.0.0.1", 0) for a in ("GZ", "GZ-TH")]
        ports = [srv.sockets[0].getsockname()[1] for srv in servers]
        peers = [
            PeerRef("aaa", "广州市档案馆", f"http://127.0.0.1:{ports[0]}"),
            PeerRef("bbb", "天河区档案馆", f"http://127.0.0.1:{ports[1]}"),
        ]
        base = local_of("GD", 3)

        async def local(query: SearchQuery, top: int) -> NodeAnswer:
            local_started.set()
            answer: NodeAnswer = await base(query, top)
            return answer

        f = Federation(settings, catalogue=None)
        try:
            r = await f.search(ME, peers, SearchQuery(q="x"), local=local)
        finally:
            await f.aclose()
            for srv in servers:
                srv.close()
        assert [n.status for n in r.nodes] == ["ok", "ok", "ok"]
        assert len(received) == 2 and all(b"signature-input" in h.lower() for h in received)

        async def replay(request: httpx.Request) -> httpx.Response:
            archive = "GZ" if request.url.port == ports[0] else "GZ-TH"
            return httpx.Response(200, content=_search_body(archive, 3))

        same = await Federation(settings, transport=httpx.MockTransport(replay), catalogue=None).search(
            ME, peers, SearchQuery(q="x"), local=base
        )
        assert r.hits == same.hits and r.facets == same.facets and r.total == same.total == 9

    run(go())
