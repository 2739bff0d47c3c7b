"""Federation routes.

What a node answers its peers (``/federation/v1``; every call but the descriptor must carry a valid RFC 9421
signature of a peer this node has added — see :mod:`archive.federation.signing` — or gets a 401
``application/problem+json`` naming the reason):

- ``GET /federation/v1/node`` — the public descriptor (node id, name, URL, public key, fingerprint,
  archives); unsigned, so ``archive peers add`` can fetch it;
- ``GET /federation/v1/search`` — the parameters and JSON of ``/api/v1/search``, always this node only
  (a peer's query never fans out again, so there are no loops);
- ``GET /federation/v1/records/{archive}/{code}`` and ``…/files/{path}`` — an open record and the files
  the public may download, exactly as the public portal decides (:mod:`access_portal.services`); a
  restricted or unknown record is the portal's 404;
- ``POST /federation/v1/announce`` — a peer announcing its new key (signed with the old one).

What the public sees of other nodes: ``/remote/{node_id}/records/{archive}/{code}`` (the page, and
``/api/v1/remote/…`` its JSON) and ``…/files/{path}`` (streamed through this node).

Each accepted federation call is logged (peer, path, status, ms) by :class:`FederationLog`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access_portal import regional, services
from access_portal.deps import BackendDep, SessionDep, SettingsDep, get_limits
from access_portal.routes.api import SearchQueryDep, _search_json
from access_portal.routes.public import content_disposition, render
from access_portal.schemas import ArchiveOut, RecordOut
from archive import db
from archive.config import Settings
from archive.federation.errors import HolderUnavailable
from archive.federation.identity import load_identity
from archive.federation.peers import accept_announcement, peer_key, remember_nonce
from archive.federation.signing import verify_request

log = logging.getLogger("access_portal.federation")

router = APIRouter(tags=["federation"], dependencies=[Depends(get_limits)])

PROBLEM = "application/problem+json"


def _verify(
    settings: Settings, method: str, url_path: str, headers: list[tuple[str, str]], body: bytes
) -> str:
    identity = load_identity(settings)
    verified = verify_request(
        method,
        identity.url + url_path,
        headers,
        body,
        public_key=lambda key_id: peer_key(settings, key_id),
        remember_nonce=lambda k, n, e: remember_nonce(settings, k, n, e),
    )
    return verified.key_id


@dataclass
class SignedCall:
    """What a signed call's verification needs, read from the request on the event loop (no I/O). Each
    handler calls :meth:`verify` first thing **in the worker thread that does its work**, so a signed call
    costs one thread hop, not two (a hop is cheap on an idle machine and several ms on a busy one).
    :class:`FederationLog` reports any federation answer without a verified peer as an error."""

    request: Request
    settings: Settings
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def verify(self) -> str:
        """The node id of the peer that signed the call, or :class:`SignatureRejected` (a 401)."""
        peer = _verify(self.settings, self.method, self.path, self.headers, self.body)
        self.request.state.peer = peer
        return peer


async def signed_call(request: Request, settings: SettingsDep) -> SignedCall:
    body = await request.body()
    raw = request.scope.get("raw_path") or request.url.path.encode()
    qs = request.scope.get("query_string") or b""
    path = raw.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
    return SignedCall(request, settings, request.method, path, headers, body)


Signed = Annotated[SignedCall, Depends(signed_call)]


class FederationLog:
    """Logs every accepted ``/federation/v1`` call with the peer, path, status and time (ms)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        if not log.handlers and not logging.getLogger().handlers:
            # `archive serve` (uvicorn) configures only its own loggers: give the call log a place to go
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/federation/"):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            peer = (scope.get("state") or {}).get("peer")
            ms = (time.perf_counter() - start) * 1000
            if peer:
                log.info(
                    "federation call peer=%s path=%s status=%d ms=%.1f", peer, scope["path"], status[0], ms
                )
            elif status[0] == 401:
                log.warning("federation call refused path=%s status=401 ms=%.1f", scope["path"], ms)


# -- what a node answers its peers ------------------------------------------------------------------------


def _descriptor(settings: Settings) -> dict[str, object]:
    with db.read_session(settings) as s:
        archives = [
            ArchiveOut.of(n).model_dump(exclude={"catalogue_url", "depth"}) for n in services.archives_tree(s)
        ]
    return load_identity(settings).descriptor(archives)


NODE_PATH = "/federation/v1/node"


@router.get(NODE_PATH, summary="This node's public descriptor (unsigned)")
async def node(settings: SettingsDep) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(_descriptor, settings))


@router.get("/federation/v1/search", summary="Search this node's open records (signed peers only)")
async def federation_search(
    call: Signed, settings: SettingsDep, backend: BackendDep, query: SearchQueryDep
) -> Response:
    def work() -> str:
        call.verify()
        return _search_json(settings, backend, query)

    return Response(await run_in_threadpool(work), media_type="application/json")


@router.get(
    "/federation/v1/records/{archive}/{code}",
    response_model=RecordOut,
    summary="One open record (signed peers only)",
)
def federation_record(call: Signed, session: SessionDep, archive: str, code: str) -> RecordOut:
    call.verify()
    found = services.public_record(session, archive, code)
    return RecordOut.of(found, services.public_files(found))


@router.get("/federation/v1/records/{archive}/{code}/files/{path:path}", summary="A downloadable file")
def federation_file(
    call: Signed, settings: SettingsDep, session: SessionDep, archive: str, code: str, path: str
) -> FileResponse:
    call.verify()
    found = services.public_download(settings, session, archive, code, path)
    return FileResponse(
        found.path,
        media_type=found.media_type,
        headers={
            "Content-Disposition": content_disposition(found.filename),
            "Digest": f"sha-256={found.sha256}",
        },
    )


@router.post("/federation/v1/announce", summary="A peer announces its new key (signed with the old one)")
async def announce(call: Signed, settings: SettingsDep) -> JSONResponse:
    try:
        data = json.loads(call.body)
    except ValueError:
        data = None

    def work() -> dict[str, object]:
        return accept_announcement(settings, call.verify(), data)

    summary = await run_in_threadpool(work)
    return JSONResponse({"ok": True, "fingerprint": summary["fingerprint"]})


# -- what the public sees of other nodes -------------------------------------------------------------------


@router.get(
    "/remote/{node_id}/records/{archive}/{code}", response_class=HTMLResponse, include_in_schema=False
)
async def remote_record_page(
    request: Request, settings: SettingsDep, node_id: str, archive: str, code: str
) -> HTMLResponse:
    """A peer's record as its holder answers now; while the holder cannot answer, the copy this node last
    harvested from it (metadata only, dated), and the error page only when there is no copy either."""
    fed = request.app.state.federation
    harvested_at = None
    try:
        record = await regional.remote_record(fed, settings, node_id, archive, code)
    except HolderUnavailable:
        copy = await run_in_threadpool(regional.catalogue_record, settings, node_id, archive, code)
        if copy is None:
            raise
        record, harvested_at = copy
    holder = await run_in_threadpool(regional.holder, settings, node_id)
    return render(
        request,
        "record.html",
        {"record": record, "catalogue_url": None, "holder": holder.peer, "harvested_at": harvested_at},
    )


@router.get(
    "/api/v1/remote/{node_id}/records/{archive}/{code}",
    response_model=RecordOut,
    summary="An open record held by a peer node, fetched from it now",
    tags=["public"],
)
async def remote_record_json(
    request: Request, settings: SettingsDep, node_id: str, archive: str, code: str
) -> RecordOut:
    return await regional.remote_record(request.app.state.federation, settings, node_id, archive, code)


@router.get("/remote/{node_id}/records/{archive}/{code}/files/{path:path}", include_in_schema=False)
async def remote_file(
    request: Request, settings: SettingsDep, node_id: str, archive: str, code: str, path: str
) -> StreamingResponse:
    found = await regional.remote_file(request.app.state.federation, settings, node_id, archive, code, path)
    headers = dict(found.headers)
    headers["X-Content-Type-Options"] = "nosniff"
    return StreamingResponse(
        found.body,
        headers=headers,
        background=BackgroundTask(found.aclose),
    )
