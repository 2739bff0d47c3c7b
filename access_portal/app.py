"""The FastAPI application of the public portal: :func:`create_app` wires settings, the search backend, the
routes, static files and the error pages.

Errors a visitor can cause are answered, never raised: an unknown or non-open record is a 404 (identical
whichever it is), a malformed API parameter a 422 with JSON reasons, an unavailable search backend (or any
:class:`archive.errors.Unavailable`: the database down, the disk full) a 503, another usage error a 400. A
500 means a bug: it is logged with its traceback and answered with a friendly page that shows nothing of it.

The JSON answers of ``/api/`` carry the project's codes and messages from the catalogue
(``archive/codes/``): ``{"code", "message_zh", "message_en"}``, with ``detail``/``detail_zh`` repeating the
messages for clients written before the codes. What a visitor sees is the public face of the failure (404
ARC004, 503 SRC005 or ARC019, 500 ARC000); the full coded error, with URLs and causes, goes to the log only.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access_portal.i18n import resolve_lang, translator
from access_portal.limits import Limits, OutOfBounds
from access_portal.regional import ContactLog
from access_portal.routes import (
    api,
    audit_pages,
    federation,
    oai,
    public,
    review_pages,
    reviews,
    staff,
    staff_pages,
    uploads,
)
from access_portal.staff import csrf_guard, is_page, on_forbidden, on_not_authenticated
from archive.codes import render
from archive.config import Settings, get_settings
from archive.errors import ArchiveError, Forbidden, NotAuthenticated, NotFound, Unavailable, UsageError
from archive.federation.errors import HolderUnavailable, NodeNotInitialised, SignatureRejected
from search import SearchBackend, SearchError, get_backend
from search.federation import Federation

log = logging.getLogger("access_portal")

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/federation/"))


def _error_page(request: Request, status: int, title_key: str, body_key: str) -> Response:
    t = translator(resolve_lang(request))
    return public.render(
        request, "error.html", {"title": t(title_key), "message": t(body_key)}, status_code=status
    )


def coded(code: str, variant: str | None = None, **params: object) -> dict[str, str]:
    """The JSON body of a coded answer, its texts from the catalogue."""
    zh, en = render(code, params, variant)
    return {"code": code, "message_zh": zh, "message_en": en, "detail": en, "detail_zh": zh}


def _not_found(request: Request) -> Response:
    """The same answer for a record that is restricted, missing, or a path that does not exist."""
    if _is_api(request):
        return JSONResponse(coded(NotFound.code), status_code=404)
    if is_page(request):
        return staff_pages.error_page(request, 404, NotFound())
    return _error_page(request, 404, "not_found_title", "not_found_body")


async def _on_not_found(request: Request, exc: Exception) -> Response:
    return _not_found(request)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _not_found(request)
    if _is_api(request) or exc.status_code < 400:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    response = _error_page(request, exc.status_code, "bad_request_title", "bad_request_body")
    for k, v in (exc.headers or {}).items():
        response.headers[k] = v
    return response


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if _is_api(request):
        return await request_validation_exception_handler(request, exc)
    if is_page(request):
        return staff_pages.error_page(request, 422)
    return _error_page(request, 422, "bad_request_title", "bad_request_body")


async def _on_out_of_bounds(request: Request, exc: Exception) -> Response:
    """A request beyond the portal's bounds (:mod:`access_portal.limits`): 422 with its code and message."""
    assert isinstance(exc, OutOfBounds)
    if _is_api(request):
        return JSONResponse(
            {**exc.as_dict(), "detail": exc.en, "detail_zh": exc.zh}, status_code=exc.status_code
        )
    t = translator(resolve_lang(request))
    lang = resolve_lang(request)
    message = f"{exc.zh if lang == 'zh' else exc.en} ({exc.code})"
    return public.render(
        request,
        "error.html",
        {"title": t("bad_request_title"), "message": message},
        status_code=exc.status_code,
    )


async def _on_search_error(request: Request, exc: Exception) -> Response:
    log.error("search backend unavailable: %s", exc)
    if _is_api(request):
        return JSONResponse(coded("SRC005"), status_code=503)
    return _error_page(request, 503, "unavailable_title", "unavailable_body")


async def _on_archive_error(request: Request, exc: Exception) -> Response:
    """A coded error a route let through: unavailable → 503, a usage error → 400, anything else is a bug."""
    assert isinstance(exc, ArchiveError)
    if isinstance(exc, Unavailable):
        log.error("unavailable on %s %s: %s", request.method, request.url.path, exc)
        if _is_api(request):
            return JSONResponse(coded(Unavailable.code, "public"), status_code=503)
        return _error_page(request, 503, "unavailable_title", "unavailable_body")
    if isinstance(exc, UsageError):
        if _is_api(request):
            return JSONResponse(
                {
                    "code": exc.code,
                    "message_zh": exc.zh,
                    "message_en": exc.en,
                    "detail": exc.en,
                    "detail_zh": exc.zh,
                },
                status_code=400,
            )
        return _error_page(request, 400, "bad_request_title", "bad_request_body")
    return await _on_bug(request, exc)


async def _on_signature_rejected(request: Request, exc: Exception) -> Response:
    """401 with an RFC 9457 problem document naming the reason (missing, malformed, unknown-key, expired,
    replayed, bad-signature)."""
    assert isinstance(exc, SignatureRejected)
    return JSONResponse(
        {
            "type": f"urn:pearl-archive:federation:signature:{exc.reason}",
            "title": "Signature rejected",
            "status": 401,
            "reason": exc.reason,
            "code": exc.code,
            "detail": exc.en,
            "detail_zh": exc.zh,
        },
        status_code=401,
        media_type="application/problem+json",
        headers={"WWW-Authenticate": 'Signature realm="federation"'},
    )


async def _on_no_identity(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NodeNotInitialised)
    log.warning("federation call on a node without identity: %s", request.url.path)
    if request.url.path.startswith("/federation/"):
        return JSONResponse(
            {
                "type": "urn:pearl-archive:federation:no-identity",
                "title": "This node takes no part in federation",
                "status": 503,
                "code": exc.code,
                "detail": exc.en,
                "detail_zh": exc.zh,
            },
            status_code=503,
            media_type="application/problem+json",
        )
    return _not_found(request)


async def _on_holder_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HolderUnavailable)
    log.warning("remote record unavailable: %s (%s)", exc.en, exc.details.get("reason"))
    if _is_api(request):
        return JSONResponse({"detail": exc.en, "detail_zh": exc.zh, "code": exc.code}, status_code=502)
    t = translator(resolve_lang(request))
    return public.render(
        request,
        "error.html",
        {
            "title": t("holder_unavailable_title"),
            "message": exc.zh if resolve_lang(request) == "zh" else exc.en,
        },
        status_code=502,
    )


async def _on_bug(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if _is_api(request):
        return JSONResponse(coded(ArchiveError.code, "internal"), status_code=500)
    return _error_page(request, 500, "error_title", "error_body")


class SecurityHeaders:
    """Adds the security headers to every answer that does not set them itself. A plain ASGI middleware:
    Starlette's ``BaseHTTPMiddleware`` would run each request through an extra task and stream."""

    HEADERS = (
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """HEAD on every GET route (RFC 9110 §9.3.2): the GET is run and its status and headers are sent without
    the body. FastAPI's routes answer GET only, and uptime monitors and link checkers ask with HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)


#: New container objects the cyclic collector lets accumulate before a young collection (Python's default
#: is 700), set while the portal serves.
GC_YOUNG_THRESHOLD = 10_000

#: Where the packaged Swagger UI's files are served.
DOCS_ASSETS = "/docs-assets"


def _mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle-v2`` package's own copy, served by the portal, so
    the page works where no CDN can be reached (an intranet, a mainland network)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def create_app(settings: Settings | None = None, backend: SearchBackend | None = None) -> FastAPI:
    """The portal for the node ``settings`` describes (default: the environment's).

    ``backend`` defaults to :func:`search.get_backend`: the embedded index, or Elasticsearch when
    ``ARCHIVE_ELASTICSEARCH_URL`` is set. It is made ready at start-up; if it cannot be, the portal still
    starts and ``/healthz`` answers 503 until it can.
    """
    settings = settings or get_settings()
    backend = backend or get_backend(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            backend.ensure_ready()
        except Exception as exc:
            log.error("search backend not ready at start-up: %s", exc)
        # What start-up made (modules, routes, the SQLAlchemy and pydantic machinery: several hundred
        # thousand objects) lives as long as the process: keep it out of the cyclic collector's full
        # passes, which otherwise stall the request that triggers one for ~150 ms.
        gc.collect()
        gc.freeze()
        # A search page holds ~1,000 new container objects at its peak (hits, facet links, the template's
        # frames), all freed by reference counting when it is sent: at the default threshold of 700 every
        # page triggered a young collection, one in ten an older one, and every request in flight waited
        # for them. Above the peak, the collector runs only when objects really accumulate.
        threshold = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *threshold[1:])
        try:
            yield
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
            await app.state.federation.aclose()

    app = FastAPI(
        title="广东档案公共查询 / Guangdong Archives Public Access",
        description="Open records of the archives on this node (Archives Law of the PRC, arts. 27–28). "
        "Only records open to the public are ever returned.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served below from the packaged Swagger UI, not from a CDN
        redoc_url=None,
        # every non-safe request that a staff session cookie authenticates must carry its CSRF token
        dependencies=[Depends(csrf_guard)],
    )
    app.state.settings = settings
    app.state.backend = backend
    app.state.federation = Federation(settings)
    app.state.federation.on_outcome = ContactLog(settings)
    app.state.limits = Limits.of(settings)
    app.add_exception_handler(NotFound, _on_not_found)
    app.add_exception_handler(OutOfBounds, _on_out_of_bounds)
    app.add_exception_handler(NotAuthenticated, on_not_authenticated)
    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(SearchError, _on_search_error)
    app.add_exception_handler(ArchiveError, _on_archive_error)

    app.add_exception_handler(SignatureRejected, _on_signature_rejected)
    app.add_exception_handler(NodeNotInitialised, _on_no_identity)
    app.add_exception_handler(HolderUnavailable, _on_holder_unavailable)
    app.add_exception_handler(Exception, _on_bug)

    app.add_middleware(SecurityHeaders)
    app.add_middleware(federation.FederationLog)
    app.add_middleware(HeadAsGet)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _mount_docs(app)
    app.include_router(public.router)
    app.include_router(api.router)
    # right after the public search API: a request is matched against the routes in this order, and each
    # regional query makes a /federation/v1/search call at every peer (its paths are distinct from all
    # the routers below, so the order decides nothing else)
    app.include_router(federation.router)
    app.include_router(staff.router)
    app.include_router(reviews.router)
    app.include_router(staff_pages.router)
    app.include_router(review_pages.router)
    app.include_router(uploads.router)
    app.include_router(audit_pages.router)
    app.include_router(oai.router)
    return app
