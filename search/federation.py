"""Regional search: fan a query out to every peer and the local index, concurrently, and merge the answers.

    fed = Federation(settings)                                   # one per process (connection pool, breaker)
    result = await fed.search(identity, peers, query, local=local_answer)

What a regional query does, and the choices made where the issue is silent:

- **Deadline.** Every node — the local index included — gets ``ARCHIVE_FEDERATION_TIMEOUT`` seconds (default
  2) from the start of the query; whoever has not answered by then is reported as ``timeout`` and the
  answer is built without it. The answer therefore always comes within the deadline plus the merge.
- **Statuses.** ``ok``; ``timeout`` (no answer in time: a hung or overloaded node); ``unreachable``
  (connection refused, DNS, reset); ``refused`` (the peer answered 401/403: it does not trust this node, or
  our signature was refused); ``error`` (any other answer that is not a valid search result);
  ``skipped`` (the circuit breaker is open for that node).
- **Circuit breaker.** After ``ARCHIVE_FEDERATION_BREAKER_FAILURES`` (3) consecutive failures a peer is
  skipped for ``ARCHIVE_FEDERATION_COOLDOWN`` (30 s); then one query tries it again (half-open): success
  closes the breaker, failure opens it for another cool-down. State is per process.
- **Paging.** To serve page *p* of size *s*, each node is asked for its top *p × s* hits (in pages of at
  most 100, the API's page size limit), the lists are merged and the slice ``[(p−1)s, ps)`` is returned;
  the same query therefore gives disjoint consecutive pages. The regional window is
  :data:`REGION_WINDOW` hits deep; a page beyond it is empty.
- **Order of work.** The peers' requests are signed and written to their connections first; the local
  search starts once every peer's request is on its way (or waits to connect, or has ended), and at the
  latest after :data:`DISPATCH_WAIT` (a transport that reports nothing). A local search already running in
  a worker thread would hold the GIL the event loop needs to sign and write them, and each hand-over can
  cost up to ``sys.getswitchinterval()`` (5 ms).
- **Merge.** Relevance: reciprocal rank fusion, ``Σ 1 / (k + rank)`` with k = 60 (scores of different
  engines are not comparable; ranks are), ties broken by node id, archive code, archival code — so the
  order is stable from one call to the next. Date sorts: by the record's date, same tie-break, undated
  last. A record (archive, 档号) seen twice is kept once (the first in merged order).
- **Facets** are summed value by value; ``total`` is the sum of the nodes' totals and exact only if every
  node's is.
- **The harvested catalogue.** When a peer cannot answer (timeout, unreachable, skipped, error) and the
  node has harvested that peer (``search.harvest.catalogue_search``, when that module exists), the peer's
  hits come from the harvested copy, marked ``source: "catalogue"`` with their ``harvested_at``.

Openness is not decided here: the local answer comes from the portal's service layer and each peer answers
only its own open records through the same layer (``/federation/v1/search``).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx

from archive.config import Settings
from archive.federation.identity import NodeIdentity
from archive.federation.signing import SignatureAuth
from search.backend import MAX_PAGE_SIZE, SearchQuery

log = logging.getLogger(__name__)

RRF_K = 60
#: Deepest hit reachable by paging a regional query (page × size).
REGION_WINDOW = 1000
SEARCH_PATH = "/federation/v1/search"
RECORD_PATH = "/federation/v1/records"

Status = Literal["ok", "timeout", "error", "unreachable", "refused", "skipped"]
#: The longest the local search waits for the peers' requests to be on their way (see "Order of work").
DISPATCH_WAIT = 0.05
#: httpcore trace events after which a request's CPU work on the event loop is done for now: the request
#: was written and its answer is awaited, or a new connection is being opened.
_DISPATCHED_EVENTS = ("receive_response_headers.started", "connect_tcp.started")
FALLBACK_STATUSES = ("timeout", "unreachable", "skipped", "error")


@dataclass(frozen=True)
class PeerRef:
    node_id: str
    name: str
    url: str


@dataclass
class NodeAnswer:
    """One node's part of a regional answer."""

    node_id: str
    name: str
    status: Status
    ms: float
    total: int = 0
    total_exact: bool = True
    hits: list[dict[str, Any]] = field(default_factory=list)
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    local: bool = False
    #: "live" when the node answered, "catalogue" when its hits come from the harvested copy.
    source: Literal["live", "catalogue"] | None = "live"
    harvested_at: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RegionalResult:
    query: SearchQuery
    total: int
    total_exact: bool
    hits: list[dict[str, Any]]
    facets: dict[str, dict[str, int]]
    nodes: list[NodeAnswer]

    @property
    def pages(self) -> int:
        return max(1, min(-(-self.total // self.query.size), REGION_WINDOW // self.query.size))


class CatalogueSearch(Protocol):
    """``search.harvest.catalogue_search`` (the harvested regional catalogue), built on another branch."""

    def __call__(self, settings: Settings, origin_url: str, params: SearchQuery) -> Any: ...


def find_catalogue_search() -> CatalogueSearch | None:
    """The harvested catalogue's search function when ``search/harvest.py`` provides it, else None."""
    if importlib.util.find_spec("search.harvest") is None:
        return None
    module = importlib.import_module("search.harvest")
    fn = getattr(module, "catalogue_search", None)
    return fn if callable(fn) else None


class Breaker:
    """Consecutive-failure circuit breaker per node id (state per process)."""

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures, self.cooldown, self.clock = failures, cooldown, clock
        self._count: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def allow(self, node_id: str) -> bool:
        until = self._open_until.get(node_id)
        if until is None:
            return True
        if self.clock() >= until:
            # half-open: let this one call through; a failure re-opens at once
            self._open_until.pop(node_id, None)
            self._count[node_id] = self.failures - 1
            return True
        return False

    def success(self, node_id: str) -> None:
        self._count.pop(node_id, None)
        self._open_until.pop(node_id, None)

    def failure(self, node_id: str) -> None:
        n = self._count.get(node_id, 0) + 1
        self._count[node_id] = n
        if n >= self.failures:
            self._open_until[node_id] = self.clock() + self.cooldown

    def is_open(self, node_id: str) -> bool:
        until = self._open_until.get(node_id)
        return until is not None and self.clock() < until


# -- asking one peer --------------------------------------------------------------------------------------


Params = list[tuple[str, str | int | float | bool | None]]


def query_params(query: SearchQuery, page: int, size: int) -> Params:
    """``query`` as the query string of ``/api/v1/search`` (and ``/federation/v1/search``)."""
    params: Params = [("q", query.q)]
    for name, values in (
        ("archive", query.archives),
        ("level", query.levels),
        ("fonds", query.fonds),
        ("retention", query.retentions),
        ("format", query.formats),
    ):
        params += [(name, v) for v in values]
    if query.year_from is not None:
        params.append(("year_from", str(query.year_from)))
    if query.year_to is not None:
        params.append(("year_to", str(query.year_to)))
    params += [("sort", query.sort), ("page", str(page)), ("size", str(size))]
    return params


def windows(top: int) -> list[tuple[int, int]]:
    """(page, size) requests that together fetch the top ``top`` hits, at most 100 a request."""
    if top <= MAX_PAGE_SIZE:
        return [(1, max(top, 1))]
    return [(p, MAX_PAGE_SIZE) for p in range(1, math.ceil(top / MAX_PAGE_SIZE) + 1)]


def facet_map(raw: Any) -> dict[str, dict[str, int]]:
    """Facets as ``{facet: {value: count}}`` from the API's ``{facet: [{value, count}]}`` (or already so)."""
    out: dict[str, dict[str, int]] = {}
    if not isinstance(raw, Mapping):
        return out
    for name, values in raw.items():
        counts: dict[str, int] = {}
        if isinstance(values, Mapping):
            items = list(values.items())
        elif isinstance(values, list):
            items = [(v.get("value"), v.get("count")) for v in values if isinstance(v, Mapping)]
        else:
            continue
        for value, count in items:
            if isinstance(value, str) and isinstance(count, int) and not isinstance(count, bool):
                counts[value] = counts.get(value, 0) + count
        out[str(name)] = counts
    return out


_HIT_STR = ("archive", "archival_code", "title")
_HIT_OPT = ("creator", "date", "level", "fonds", "retention")


def clean_hit(raw: Any) -> dict[str, Any] | None:
    """A peer's hit reduced to the fields of ``/api/v1/search`` hits, or None if it is not one. Peers are
    trusted to decide openness for their records, not to send well-formed data."""
    if not isinstance(raw, Mapping) or not all(isinstance(raw.get(k), str) and raw[k] for k in _HIT_STR):
        return None
    hit: dict[str, Any] = {k: raw[k] for k in _HIT_STR}
    for k in _HIT_OPT:
        v = raw.get(k)
        hit[k] = v if isinstance(v, str) else None
    formats = raw.get("formats")
    hit["formats"] = [f for f in formats if isinstance(f, str)] if isinstance(formats, list) else []
    highlights = raw.get("highlights")
    hit["highlights"] = (
        {str(k): [s for s in v if isinstance(s, str)] for k, v in highlights.items() if isinstance(v, list)}
        if isinstance(highlights, Mapping)
        else {}
    )
    return hit


class Dispatch:
    """Set once each of ``n`` requests has been written to its connection (or waits for its connection to
    open, or has ended); see "Order of work" in the module docstring."""

    def __init__(self, n: int = 1) -> None:
        self.left = n
        self.event = asyncio.Event()
        if n <= 0:
            self.event.set()

    def one_more(self, n: int) -> None:
        """``n`` requests instead of one (a deep page asked in several windows)."""
        self.left += n - 1
        if self.left <= 0:
            self.event.set()

    def done(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.event.set()

    def tracer(self) -> Callable[[str, Any], Awaitable[None]]:
        """An httpcore ``trace`` extension that calls :meth:`done` once, when the request is on its way."""
        fired = False

        async def trace(event: str, info: Any) -> None:
            nonlocal fired
            if not fired and event.endswith(_DISPATCHED_EVENTS):
                fired = True
                self.done()

        return trace

    def finish(self) -> None:
        """Every request ended (answered, failed or skipped): nothing is left to wait for."""
        self.left = 0
        self.event.set()


def remote_record_path(node_id: str, archive: str, code: str) -> str:
    """Where THIS node shows a peer's record: fetched from the holder by a signed call."""
    return f"/remote/{quote(node_id, safe='')}/records/{quote(archive, safe='')}/{quote(code, safe='')}"


class Federation:
    """The fan-out client of one portal process: an httpx connection pool to the peers and the breaker."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        catalogue: CatalogueSearch | Literal["auto"] | None = "auto",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.timeout = settings.federation_timeout
        self.breaker = Breaker(settings.federation_breaker_failures, settings.federation_cooldown, clock)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._catalogue = find_catalogue_search() if catalogue == "auto" else catalogue
        self.on_outcome: Callable[[str, str, str | None], None] | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The connection pool, made in (and bound to) the running event loop; a new loop (a test client
        without a lifespan) gets a new pool."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._loop = loop
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.timeout, connect=self.timeout),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                follow_redirects=False,
                headers={"Accept": "application/json"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _ask(
        self, identity: NodeIdentity, peer: PeerRef, query: SearchQuery, top: int, dispatch: Dispatch
    ) -> NodeAnswer:
        auth = SignatureAuth(identity, self.settings.federation_signature_ttl)
        start = time.perf_counter()
        wanted = windows(top)
        dispatch.one_more(len(wanted))

        async def one(page: int, size: int) -> httpx.Response:
            return await self.client.get(
                peer.url + SEARCH_PATH,
                params=query_params(query, page, size),
                auth=auth,
                extensions={"trace": dispatch.tracer()},
            )

        def answer(status: Status, error: str | None = None, **kw: Any) -> NodeAnswer:
            return NodeAnswer(
                peer.node_id,
                peer.name,
                status,
                round((time.perf_counter() - start) * 1000, 1),
                error=error,
                source="live" if status == "ok" else None,
                **kw,
            )

        try:
            responses = await asyncio.gather(*(one(p, s) for p, s in wanted))
        except httpx.TimeoutException:
            return answer("timeout", "timed out")
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            return answer("unreachable", type(exc).__name__)
        except httpx.HTTPError as exc:
            return answer("error", type(exc).__name__)
        hits: list[dict[str, Any]] = []
        total, exact, facets = 0, True, {}
        for i, r in enumerate(responses):
            if r.status_code in (401, 403):
                return answer("refused", f"HTTP {r.status_code}")
            if r.status_code != 200:
                return answer("error", f"HTTP {r.status_code}")
            try:
                data = _loads(r.content)
                page_hits = data["hits"]
                if i == 0:
                    total = int(data["total"])
                    exact = bool(data.get("total_exact", True))
                    facets = facet_map(data.get("facets"))
            except (ValueError, KeyError, TypeError):
                return answer("error", "not a search result")
            if not isinstance(page_hits, list):
                return answer("error", "not a search result")
            hits += [h for h in map(clean_hit, page_hits) if h is not None]
        return answer("ok", total=total, total_exact=exact, hits=hits[:top], facets=facets)

    async def ask_peer(
        self,
        identity: NodeIdentity,
        peer: PeerRef,
        query: SearchQuery,
        top: int,
        dispatch: Dispatch | None = None,
    ) -> NodeAnswer:
        """One peer's top ``top`` hits within the deadline, never raising; ``dispatch`` is set once the
        request is on its way (and at the latest when this returns)."""
        dispatch = dispatch or Dispatch()
        try:
            return await self._ask_peer(identity, peer, query, top, dispatch)
        finally:
            dispatch.finish()

    async def _ask_peer(
        self, identity: NodeIdentity, peer: PeerRef, query: SearchQuery, top: int, dispatch: Dispatch
    ) -> NodeAnswer:
        if not self.breaker.allow(peer.node_id):
            return NodeAnswer(peer.node_id, peer.name, "skipped", 0.0, source=None, error="circuit open")
        start = time.perf_counter()
        try:
            ans = await asyncio.wait_for(self._ask(identity, peer, query, top, dispatch), self.timeout)
        except TimeoutError:
            ans = NodeAnswer(
                peer.node_id,
                peer.name,
                "timeout",
                round((time.perf_counter() - start) * 1000, 1),
                source=None,
                error="deadline",
            )
        except Exception as exc:  # a bug in parsing must not cost the whole answer
            log.exception("asking peer %s failed", peer.node_id)
            ans = NodeAnswer(peer.node_id, peer.name, "error", 0.0, source=None, error=type(exc).__name__)
        if ans.status == "ok":
            self.breaker.success(peer.node_id)
        else:
            self.breaker.failure(peer.node_id)
        if self.on_outcome is not None:
            self.on_outcome(peer.node_id, ans.status, ans.error)
        return ans

    async def from_catalogue(
        self, peer: PeerRef, query: SearchQuery, top: int, ans: NodeAnswer
    ) -> NodeAnswer:
        """Fill a failed peer's answer from the harvested catalogue, if the node has one for it."""
        if self._catalogue is None or ans.status not in FALLBACK_STATUSES:
            return ans
        params = replace(query, page=1, size=min(max(top, 1), MAX_PAGE_SIZE))
        try:
            found = await asyncio.to_thread(self._catalogue, self.settings, peer.url, params)
        except Exception:
            log.exception("the harvested catalogue could not answer for %s", peer.node_id)
            return ans
        if found is None:
            return ans
        hits_raw = _field(found, "hits") or []
        hits = []
        harvested = None
        for raw in hits_raw:
            hit = clean_hit(raw)
            if hit is None:
                continue
            at = raw.get("harvested_at") if isinstance(raw, Mapping) else None
            hit["harvested_at"] = str(at) if at else None
            harvested = max(filter(None, [harvested, hit["harvested_at"]]), default=None)
            hits.append(hit)
        ans.hits = hits[:top]
        ans.total = int(_field(found, "total") or len(hits))
        ans.facets = facet_map(_field(found, "facets"))
        ans.source = "catalogue"
        ans.harvested_at = harvested or _str(_field(found, "harvested_at"))
        return ans

    async def search(
        self,
        identity: NodeIdentity,
        peers: Sequence[PeerRef],
        query: SearchQuery,
        *,
        local: Callable[[SearchQuery, int], Awaitable[NodeAnswer]],
    ) -> RegionalResult:
        """The regional answer for ``query``: the local node (``local``) and every peer, merged."""
        top = query.page * query.size
        if top > REGION_WINDOW:
            return RegionalResult(query, 0, True, [], {}, [])
        start = time.perf_counter()
        dispatches = [Dispatch() for _ in peers]

        async def local_after_peers() -> NodeAnswer:
            waiting = [asyncio.ensure_future(d.event.wait()) for d in dispatches if not d.event.is_set()]
            if waiting:
                _, late = await asyncio.wait(waiting, timeout=DISPATCH_WAIT)
                for w in late:
                    w.cancel()
            return await local(query, top)

        async def local_part() -> NodeAnswer:
            try:
                return await asyncio.wait_for(local_after_peers(), self.timeout)
            except TimeoutError:
                return NodeAnswer(
                    identity.node_id,
                    identity.name,
                    "timeout",
                    round((time.perf_counter() - start) * 1000, 1),
                    local=True,
                    source=None,
                )

        async def peer_part(peer: PeerRef, dispatch: Dispatch) -> NodeAnswer:
            ans = await self.ask_peer(identity, peer, query, top, dispatch)
            return await self.from_catalogue(peer, query, top, ans)

        answers = await asyncio.gather(
            local_part(), *(peer_part(p, d) for p, d in zip(peers, dispatches, strict=True))
        )
        return merge(query, list(answers))


try:  # the "fast" extra: a peer's page of hits with its facets parses several times quicker
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - the plain install
    import json

    _loads = json.loads


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _str(v: Any) -> str | None:
    return str(v) if v else None


# -- merging ----------------------------------------------------------------------------------------------


def merge(query: SearchQuery, answers: list[NodeAnswer]) -> RegionalResult:
    """Merge the nodes' top lists into page ``query.page`` (see the module docstring for the rules)."""
    ranked: list[tuple[float, str, str, str, dict[str, Any], NodeAnswer]] = []
    for ans in answers:
        if ans.source is None:
            continue
        for rank, hit in enumerate(ans.hits, start=1):
            ranked.append((1.0 / (RRF_K + rank), ans.node_id, hit["archive"], hit["archival_code"], hit, ans))
    ranked.sort(key=lambda r: (r[1], r[2], r[3]))  # the tie-break, then a stable sort on the main key
    if query.sort == "relevance":
        ranked.sort(key=lambda r: -r[0])
    else:
        dated = [r for r in ranked if r[4].get("date")]
        undated = [r for r in ranked if not r[4].get("date")]
        # stable, also with reverse=True: equal dates keep the tie-break order
        dated.sort(key=lambda r: str(r[4]["date"]), reverse=query.sort == "date_desc")
        ranked = dated + undated
    seen: set[tuple[str, str]] = set()
    merged: list[tuple[float, str, str, str, dict[str, Any], NodeAnswer]] = []
    for r in ranked:
        key = (r[2], r[3])
        if key in seen:
            continue
        seen.add(key)
        merged.append(r)
    facets: dict[str, dict[str, int]] = {}
    for ans in answers:
        if ans.source is None:
            continue
        for name, values in ans.facets.items():
            acc = facets.setdefault(name, {})
            for value, count in values.items():
                acc[value] = acc.get(value, 0) + count
    facets = {
        name: dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))) for name, values in facets.items()
    }
    counted = [a for a in answers if a.source is not None]
    total = sum(a.total for a in counted)
    exact = all(a.total_exact for a in counted) and all(a.status == "ok" for a in answers)
    page = [_placed(r[4], r[5]) for r in merged[query.offset : query.offset + query.size]]
    nodes = sorted(answers, key=lambda a: (not a.local, a.name, a.node_id))
    return RegionalResult(query, total, exact, page, facets, nodes)


def _placed(hit: dict[str, Any], ans: NodeAnswer) -> dict[str, Any]:
    """A hit of the merged page with where it comes from and, for a peer's, where THIS node shows it
    (made for the page's hits only, not for every node's whole top list)."""
    out = dict(hit)
    out["node"] = ans.node_id
    out["node_name"] = ans.name
    out["source"] = ans.source
    out.setdefault("harvested_at", None)
    if not ans.local:
        out["url"] = remote_record_path(ans.node_id, hit["archive"], hit["archival_code"])
        out["api_url"] = "/api/v1" + out["url"]
    return out
