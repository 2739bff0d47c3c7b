"""The portal's service layer for federation: regional search and the records of other nodes.

Route handlers call these functions; openness stays where it is decided for the public portal: the local
part of a regional query is :func:`access_portal.services.public_search`, and every peer answers only
through its own ``services`` (``/federation/v1/...``). What comes back from a peer is re-shaped through
the same whitelisting schemas (:class:`~access_portal.schemas.HitOut`, :class:`~access_portal.schemas.RecordOut`)
and its highlights through :func:`~access_portal.services.safe_snippet`, so a peer cannot inject markup or
extra fields into our pages.

Remote records are fetched from the holder with a signed call each time they are shown (nothing is
cached), and their files are streamed through this node: the visitor never sees, nor is redirected to, the
holder's address, which may be a private network address.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from fastapi.concurrency import run_in_threadpool

from access_portal import services
from access_portal.limits import MAX_FACET_VALUES
from access_portal.schemas import FileOut, HitOut, NodeOut, RecordOut, SearchOut
from archive import db
from archive.config import Settings
from archive.federation.errors import HolderUnavailable, UnknownPeer
from archive.federation.identity import NodeIdentity, has_identity, load_identity
from archive.federation.peers import get_peer, list_peers, record_contact
from archive.federation.signing import SignatureAuth
from search import SearchBackend, SearchQuery, harvested_record
from search.federation import (
    RECORD_PATH,
    Federation,
    NodeAnswer,
    PeerRef,
    RegionalResult,
    remote_record_path,
    windows,
)

log = logging.getLogger(__name__)

#: A peer's last status is written to the catalogue at most this often per process (``archive peers list``).
CONTACT_EVERY = 30.0
FILE_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class NodeContext:
    identity: NodeIdentity | None
    peers: list[PeerRef]
    #: Names of the archives the peers host (from their descriptors), code → {name_zh, name_en, node}.
    peer_archives: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def default_scope(self) -> str:
        """``region`` on a node that has peers, else ``local``."""
        return "region" if self.identity is not None and self.peers else "local"


#: How long a process reuses the peer list it read for fan-out (``archive peers add/remove`` apply to
#: regional queries within this time, without a restart). Signature checks never use it: they read the
#: peer's key from the catalogue on every call, so a removed peer is refused at once.
CONTEXT_TTL = 1.0
_CONTEXTS: dict[str, tuple[float, NodeContext]] = {}


def cached_context(settings: Settings) -> NodeContext | None:
    """The node context if one was read less than :data:`CONTEXT_TTL` ago (no I/O), else None."""
    hit = _CONTEXTS.get(str(settings.home_dir))
    return hit[1] if hit and time.monotonic() - hit[0] < CONTEXT_TTL else None


def node_context(settings: Settings) -> NodeContext:
    """This node's identity and its peers (read from the catalogue at most every :data:`CONTEXT_TTL`)."""
    cached = cached_context(settings)
    if cached is not None:
        return cached
    read_at = time.monotonic()
    ctx = _read_context(settings)
    _CONTEXTS[str(settings.home_dir)] = (read_at, ctx)
    return ctx


_REFRESHING: dict[str, asyncio.Task[None]] = {}


async def context_for_query(settings: Settings) -> NodeContext:
    """:func:`node_context` for a request on the event loop. Once the context is past half its
    :data:`CONTEXT_TTL`, it is read again in the background while requests keep using it, so that under
    steady traffic no query waits for the catalogue (a worker-thread hop and a read). What a query uses is
    never older than :data:`CONTEXT_TTL`: past that it is read before the query, as before."""
    key = str(settings.home_dir)
    hit = _CONTEXTS.get(key)
    age = time.monotonic() - hit[0] if hit else None
    if hit is None or age is None or age >= CONTEXT_TTL:
        return await run_in_threadpool(node_context, settings)
    if age >= CONTEXT_TTL / 2:
        loop = asyncio.get_running_loop()
        running = _REFRESHING.get(key)
        if running is None or running.done() or running.get_loop() is not loop:
            _REFRESHING[key] = loop.create_task(_refresh(settings, key))
    return hit[1]


async def _refresh(settings: Settings, key: str) -> None:
    try:
        read_at = time.monotonic()  # the context is at least as new as the start of its read
        ctx = await run_in_threadpool(_read_context, settings)
        _CONTEXTS[key] = (read_at, ctx)
    except Exception as exc:  # the next query past the TTL reads it in line and meets the error itself
        log.warning("could not read the node context again: %s", exc)


def _read_context(settings: Settings) -> NodeContext:
    if not has_identity(settings):
        return NodeContext(None, [])
    identity = load_identity(settings)
    with db.read_session(settings) as s:
        rows = list_peers(s)
        peers = [PeerRef(p.node_id, p.name, p.url.rstrip("/")) for p in rows]
        names = {
            str(a["code"]): {"name_zh": a.get("name_zh"), "name_en": a.get("name_en"), "node": p.name}
            for p in rows
            for a in p.archives or []
            if isinstance(a, dict) and a.get("code")
        }
    return NodeContext(identity, peers, names)


def local_answer(
    settings: Settings, backend: SearchBackend, query: SearchQuery, top: int, identity: NodeIdentity
) -> NodeAnswer:
    """This node's top ``top`` open hits for ``query`` (through :func:`services.public_search`)."""
    start = time.perf_counter()
    hits: list[dict[str, Any]] = []
    total, exact, facets = 0, True, {}
    with db.read_session(settings) as session:
        for i, (page, size) in enumerate(windows(top)):
            found = services.public_search(
                session, backend, SearchQuery(**{**_fields(query), "page": page, "size": size})
            )
            if i == 0:
                total, exact = found.total, found.result.total_exact and not found.dropped
                facets = {k: dict(v) for k, v in found.result.facets.items()}
            hits += [HitOut.of(h).model_dump() for h in found.result.hits]
            if len(found.result.hits) < size:
                break
    return NodeAnswer(
        identity.node_id,
        identity.name,
        "ok",
        round((time.perf_counter() - start) * 1000, 1),
        total=total,
        total_exact=exact,
        hits=hits[:top],
        facets=facets,
        local=True,
    )


def _fields(query: SearchQuery) -> dict[str, Any]:
    return {k: getattr(query, k) for k in query.__dataclass_fields__}


class ContactLog:
    """Writes peers' last status to the catalogue, throttled, off the request's path."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._last: dict[str, tuple[str, float]] = {}

    def __call__(self, node_id: str, status: str, error: str | None) -> None:
        now = time.monotonic()
        last = self._last.get(node_id)
        if last and last[0] == status and now - last[1] < CONTACT_EVERY:
            return
        self._last[node_id] = (status, now)
        import threading

        def write() -> None:
            try:
                record_contact(self.settings, node_id, status, error)
            except Exception as exc:
                log.warning("could not note the contact with %s: %s", node_id, exc)

        threading.Thread(target=write, name="peer-contact", daemon=True).start()


async def regional_search(
    fed: Federation, settings: Settings, backend: SearchBackend, ctx: NodeContext, query: SearchQuery
) -> RegionalResult:
    assert ctx.identity is not None
    identity = ctx.identity

    async def local(q: SearchQuery, top: int) -> NodeAnswer:
        return await run_in_threadpool(local_answer, settings, backend, q, top, identity)

    return await fed.search(identity, ctx.peers, query, local=local)


def regional_out(result: RegionalResult) -> SearchOut:
    """The regional answer as ``/api/v1/search`` JSON (a superset of the local one)."""
    q = result.query
    hits = []
    for h in result.hits:
        fields = {k: v for k, v in h.items() if k in HitOut.model_fields}
        fields["highlights"] = {
            k: [services.safe_snippet(s) for s in v] for k, v in (h.get("highlights") or {}).items()
        }
        hits.append(HitOut.model_validate(fields))
    return SearchOut(
        q=q.q,
        total=result.total,
        total_exact=result.total_exact,
        page=q.page,
        size=q.size,
        pages=result.pages,
        sort=q.sort,
        hits=hits,
        # summed over the nodes, most frequent first, cut like a local answer (each peer sends its top
        # MAX_FACET_VALUES, so a value beyond a peer's top counts only where it was listed)
        facets={
            name: [{"value": v, "count": n} for v, n in itertools.islice(values.items(), MAX_FACET_VALUES)]
            for name, values in result.facets.items()
        },
        scope="region",
        nodes=[
            NodeOut(
                node_id=n.node_id,
                name=n.name,
                status=n.status,
                ms=n.ms,
                total=n.total,
                local=n.local,
                source=n.source,
                harvested_at=n.harvested_at,
            )
            for n in result.nodes
        ],
    )


# -- remote records -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    identity: NodeIdentity
    peer: PeerRef


def holder(settings: Settings, node_id: str) -> Holder:
    """The peer ``node_id`` as a holder of records; :func:`services.not_found` for an unknown one."""
    if not has_identity(settings):
        raise services.not_found()
    try:
        with db.read_session(settings) as s:
            p = get_peer(s, node_id)
            peer = PeerRef(p.node_id, p.name, p.url.rstrip("/"))
    except UnknownPeer:
        raise services.not_found() from None
    return Holder(load_identity(settings), peer)


def _record_path(archive: str, code: str) -> str:
    return f"{RECORD_PATH}/{quote(archive, safe='')}/{quote(code, safe='')}"


async def remote_record(
    fed: Federation, settings: Settings, node_id: str, archive: str, code: str
) -> RecordOut:
    """A peer's open record, fetched from it now, with every link pointing at this node."""
    h = await run_in_threadpool(holder, settings, node_id)
    if services._clean(archive, 64) is None or services._clean(code, services.MAX_CODE_CHARS) is None:
        raise services.not_found()
    try:
        r = await fed.client.get(
            h.peer.url + _record_path(archive, code),
            auth=SignatureAuth(h.identity, settings.federation_signature_ttl),
            timeout=settings.federation_timeout * 2,
        )
    except httpx.HTTPError as exc:
        raise HolderUnavailable(h.peer.name, type(exc).__name__) from None
    if r.status_code == 404:
        raise services.not_found()
    if r.status_code != 200:
        raise HolderUnavailable(h.peer.name, f"HTTP {r.status_code}")
    try:
        record = RecordOut.model_validate(r.json())
    except ValueError:
        raise HolderUnavailable(h.peer.name, "not a record") from None
    base = remote_record_path(node_id, record.archive, record.archival_code)
    files = [
        FileOut.model_validate(
            {
                **f.model_dump(),
                "download_url": f"{base}/files/{quote(f.path, safe='/')}" if f.download_url else None,
            }
        )
        for f in record.files
    ]
    return record.model_copy(update={"url": base, "files": files})


def catalogue_record(
    settings: Settings, node_id: str, archive: str, code: str
) -> tuple[RecordOut, str] | None:
    """The record as last harvested from its holder ``node_id`` (metadata only: files are never harvested),
    with the time of that harvest; ``None`` when this node never harvested it. What the record page shows
    while the holder cannot answer — the same open records the holder itself lists over OAI-PMH."""
    h = holder(settings, node_id)
    if services._clean(archive, 64) is None or services._clean(code, services.MAX_CODE_CHARS) is None:
        return None
    copy = harvested_record(settings, h.peer.url, archive, code)
    if copy is None:
        return None
    f = copy.fields
    names = node_context(settings).peer_archives.get(archive, {})
    record = RecordOut(
        archive=archive,
        archive_name_zh=names.get("name_zh") or archive,
        archive_name_en=names.get("name_en"),
        archival_code=code,
        title=f.get("title") or code,
        creator=f.get("creator"),
        date=f.get("date"),
        retention=f.get("retention"),
        fonds=f.get("fonds"),
        description=f.get("description"),
        keywords=list(f.get("keywords") or ()),
        language=f.get("language"),
        url=remote_record_path(node_id, archive, code),
        files=[],
    )
    return record, copy.harvested_at


#: Headers of a peer's file answer passed on to the visitor; nothing else (no Set-Cookie, no Location).
PASSED_HEADERS = ("content-type", "content-length", "content-disposition", "digest", "last-modified", "etag")


@dataclass
class RemoteFile:
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    response: httpx.Response

    async def aclose(self) -> None:
        await self.response.aclose()


async def remote_file(
    fed: Federation, settings: Settings, node_id: str, archive: str, code: str, path: str
) -> RemoteFile:
    """Stream a peer's downloadable file through this node (the peer decides what may be downloaded)."""
    h = await run_in_threadpool(holder, settings, node_id)
    if services._clean(path, services.MAX_PATH_CHARS) is None:
        raise services.not_found()
    url = h.peer.url + _record_path(archive, code) + "/files/" + quote(path, safe="/")
    request = fed.client.build_request(
        "GET",
        url,
        timeout=httpx.Timeout(FILE_READ_TIMEOUT, connect=settings.federation_timeout),
    )
    try:
        response = await fed.client.send(
            request, auth=SignatureAuth(h.identity, settings.federation_signature_ttl), stream=True
        )
    except httpx.HTTPError as exc:
        raise HolderUnavailable(h.peer.name, type(exc).__name__) from None
    if response.status_code != 200:
        await response.aclose()
        if response.status_code == 404:
            raise services.not_found()
        raise HolderUnavailable(h.peer.name, f"HTTP {response.status_code}")
    headers = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
    return RemoteFile(headers, response.aiter_raw(), response)
