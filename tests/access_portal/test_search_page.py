"""What the search page builds before rendering (access_portal/search_page.py) gives what the plain
construction gives: each link is ``urlencode(query_params(...))`` of the changed query, each hit of this
node's index reads as its :class:`HitOut` would; and the page reads its parameters as declared ``str``
parameters would."""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import replace
from html import unescape
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from access_portal.app import GC_YOUNG_THRESHOLD, create_app
from access_portal.deps import run_search
from access_portal.limits import (
    FILTERS,
    LINK_FIELDS,
    Limits,
    NoSuchPage,
    field_params,
    query_params,
    search_query,
)
from access_portal.schemas import HitOut
from access_portal.search_page import SCOPES, SearchLinks, page_hits
from archive import db
from archive.config import Settings
from search import Hit, SearchQuery
from tests.access_portal import PortalHome, TestClient
from tests.access_portal import client as client  # the fixtures, re-exported for pytest
from tests.access_portal import portal_home as portal_home


def reference_url(query: SearchQuery, scope: str | None, **changes: Any) -> str:
    """The link as it was built before :class:`SearchLinks`: the whole query encoded for each link."""
    params = query_params(replace(query, **{"page": 1, **changes}))
    url = "/search" + ("?" + urlencode(params) if params else "")
    if scope not in SCOPES:
        return url
    return url + ("&" if "?" in url else "?") + f"scope={scope}"


text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
values = st.lists(text.filter(lambda v: v.strip() != ""), max_size=3)
years = st.none() | st.integers(1, 9999)


@st.composite
def queries(draw: st.DrawFn) -> SearchQuery:
    return search_query(
        Limits(),
        draw(text),
        archive=draw(values),
        level=draw(values),
        fonds=draw(values),
        retention=draw(values),
        format=draw(values),
        year_from=draw(years),
        year_to=draw(years),
        sort=draw(st.sampled_from(["relevance", "date_desc", "date_asc"])),
        page=draw(st.integers(1, 50)),
        size=draw(st.sampled_from([1, 20, 50, 100])),
    )


@st.composite
def changes(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in draw(st.lists(st.sampled_from(LINK_FIELDS[1:]), max_size=3, unique=True)):
        if field in ("year_from", "year_to"):
            out[field] = draw(years)
        elif field == "page":
            out[field] = draw(st.integers(1, 50))
        elif field == "size":
            out[field] = draw(st.sampled_from([1, 20, 100]))
        elif field == "sort":
            out[field] = draw(st.sampled_from(["relevance", "date_desc"]))
        else:
            out[field] = tuple(draw(values))
    return out


@settings(max_examples=300, deadline=None)
@given(queries(), changes(), st.sampled_from([None, "local", "region", "other"]))
def test_each_link_is_the_changed_query_encoded(
    query: SearchQuery, change: dict[str, Any], scope: str
) -> None:
    links = SearchLinks(query, scope)
    assert links.url(**change) == reference_url(query, scope, **change)
    assert links.url() == reference_url(query, scope)


def test_parameter_names_need_no_quoting() -> None:
    # SearchLinks writes the names as they are
    names = {name for field in LINK_FIELDS for name, _ in field_params(field, _sample(field))}
    assert names == {"q", *FILTERS, "year_from", "year_to", "sort", "size", "page"}
    assert all(quote_plus(n) == n for n in names)


def _sample(field: str) -> object:
    return {"q": "x", "year_from": 1, "year_to": 1, "sort": "date_asc", "size": 3, "page": 2}.get(
        field, ("v",)
    )


def test_field_params_refuses_an_unknown_field() -> None:
    with pytest.raises(ValueError, match="not a link field"):
        field_params("highlight", True)


def _hit(**highlights: list[str]) -> Hit:
    return Hit(
        id="GZ/GZ-1 甲",
        archive="GZ",
        archival_code="GZ-1 甲",
        title="会议<纪要>",
        creator="市政府",
        date="1990",
        score=1.0,
        highlights=highlights,
    )


@pytest.mark.parametrize(
    "highlights",
    [
        {},
        {
            "title": ["<mark>会议</mark>&lt;纪要&gt;"],
            "description": ["a", "b", "c"],
            "text": ["x<mark>y</mark>"],
        },
        # markup the backend should never send: escaped whole, as HitOut does
        {"title": ["<b>会议</b>"], "creator": ["<script>alert(1)</script><mark>市</mark>"]},
        {"title": [], "keywords": ["<mark>档案</mark>"]},
    ],
)
def test_a_hit_of_the_index_reads_as_its_hitout(highlights: dict[str, list[str]]) -> None:
    hit = _hit(**highlights)
    names = {"GZ": "广州市档案馆"}

    def label(field: str) -> str:
        return f"[{field}]"

    (direct,) = page_hits([hit], names, label)
    (through_out,) = page_hits([HitOut.of(hit)], names, label)
    assert direct == through_out
    assert direct.url == f"/records/GZ/{quote('GZ-1 甲')}"
    assert "<script>" not in "".join(s for _, s in direct.snippets) + direct.title
    assert [label for label, _ in direct.snippets] == [f"[{f}]" for f in highlights if f != "title"]


def test_the_search_page_reads_its_parameters_as_declared_str_parameters(client: TestClient) -> None:
    # a repeated single parameter counts by its last value; filters repeat; junk numbers are ignored
    r = client.get("/search?q=nothing&q=档案&year_from=abc&page=x&size=&level=city&level=county&scope=local")
    assert r.status_code == 200
    html = unescape(r.text)
    assert 'name="q" value="档案"' in html
    assert 'name="level" value="city"' in html and 'name="level" value="county"' in html
    assert 'name="scope" value="local"' in html
    # every link is built from the kept query, the language switch too: the same page as the plain request
    assert client.get("/search?q=档案&level=city&level=county&scope=local").text == r.text


def test_one_session_factory_per_engine(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path)
    first = db.sessionmaker_for(settings)
    assert db.sessionmaker_for(settings) is first
    assert first.kw["bind"] is db.get_engine(settings)
    db.dispose_engines()
    again = db.sessionmaker_for(settings)
    assert again is not first and again.kw["bind"] is db.get_engine(settings)
    db.dispose_engines()


def test_searches_run_at_most_the_configured_threads_at_once(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path, portal_search_threads=2)
    running, most, started = 0, 0, []
    lock = threading.Lock()
    # The first two meet before going on, so two do run at once whatever the scheduling (left alone, each
    # could end its sleep before the next one started); with one thread only, the meeting times out.
    first_two = threading.Barrier(2, timeout=30)

    def work(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            started.append(i)
        if i < 2:
            first_two.wait()
        time.sleep(0.01)  # a blocking call that releases the interpreter lock, as SQLite does
        with lock:
            running -= 1
        return i * i

    async def main() -> list[int]:
        results: list[int] = [0] * 12
        async with anyio.create_task_group() as tg:
            for i in range(12):

                async def one(i: int = i) -> None:
                    results[i] = await run_search(settings, work, i)

                tg.start_soon(one)
                await anyio.sleep(0)  # queue them in this order
        return results

    assert anyio.run(main) == [i * i for i in range(12)]
    assert most == 2
    assert sorted(started) == list(range(12))


def test_an_error_in_a_search_thread_surfaces_as_itself(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path, portal_search_threads=1)

    def refuse() -> None:
        raise NoSuchPage(page=9, last_page=1)

    async def main() -> None:
        with pytest.raises(NoSuchPage) as caught:
            await run_search(settings, refuse)
        assert caught.value.code == "POR004"
        assert await run_search(settings, lambda: "next") == "next"  # the thread was given back

    anyio.run(main)


def test_the_thread_bound_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("ARCHIVE_PORTAL_SEARCH_THREADS", "3")
    assert Settings(home=tmp_path).portal_search_threads == 3
    monkeypatch.setenv("ARCHIVE_PORTAL_SEARCH_THREADS", "0")
    with pytest.raises(ValidationError):
        Settings(home=tmp_path)


def test_the_portal_lets_more_young_objects_accumulate_while_it_serves(portal_home: PortalHome) -> None:
    before = gc.get_threshold()
    with TestClient(create_app(portal_home.settings)) as c:
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert c.get("/search?q=档案").status_code == 200
    assert gc.get_threshold() == before


async def _get(app: Any, path: str, query: str) -> int:
    """One request straight through the ASGI app (no client whose own objects would mix in)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


@pytest.mark.parametrize("path", ["/search", "/api/v1/search"])
def test_a_search_leaves_no_cyclic_garbage(portal_home: PortalHome, path: str) -> None:
    # what the raised threshold relies on: a search's objects are all freed by reference counting
    app = create_app(portal_home.settings)
    query = "q=%E5%BC%80%E6%94%BE&level=city&year_from=1990&lang=en"

    async def requests(n: int) -> None:
        for _ in range(n):
            assert await _get(app, path, query) == 200

    async def main() -> list[str]:
        # one event loop, so the same worker threads (and their index connections) serve every request
        await requests(3)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            await requests(5)
            gc.collect()
            return [type(o).__qualname__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    assert anyio.run(main) == []
