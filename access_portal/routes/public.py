"""The public pages: server-rendered (Jinja2), zh-CN first with an English switch, usable without JavaScript.

Handlers only parse the request, call :mod:`access_portal.services` and render; access rules live there.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import text

from access_portal import regional, services
from access_portal.deps import (
    BackendDep,
    LimitsDep,
    SessionDep,
    SettingsDep,
    get_limits,
    run_search,
)
from access_portal.i18n import COOKIE, HTML_LANG, LANGS, format_label, label, resolve_lang, translator
from access_portal.limits import query_params, search_query
from access_portal.schemas import ArchiveOut, HitOut, RecordOut, catalogue_url, record_url
from access_portal.search_page import SCOPES, SearchLinks, active_filters, facet_links, page_hits
from archive import db
from archive.config import Settings
from archive.home import is_initialised
from archive.models import Archive
from search import Hit, SearchBackend, SearchQuery
from search.federation import RegionalResult

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
#: Pages are self-contained: styles from /static, no scripts.
CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

#: Downloads and catalogue exports may be cached, briefly: a record closed later must not linger in caches.
CACHE_EXPORTS = "public, max-age=600"

router = APIRouter(dependencies=[Depends(get_limits)])

MultiQuery = Annotated[list[str] | None, Query()]


def filesize(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


TEMPLATES.env.filters["filesize"] = filesize


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    switch_params: Sequence[tuple[str, str]] = (),
) -> HTMLResponse:
    """Render a page in the request's language; ``?lang=`` is remembered in a cookie. The language switch
    links to the same path with ``switch_params`` (what the page keeps of its query), never the raw query
    string, so no page echoes what a request piled into it."""
    lang = resolve_lang(request)
    other = "en" if lang == "zh" else "zh"
    switch_url = _path(request) + "?" + urlencode([*switch_params, ("lang", other)])
    response = TEMPLATES.TemplateResponse(
        request,
        name,
        {
            **context,
            "lang": lang,
            "html_lang": HTML_LANG[lang],
            "t": translator(lang),
            "label": partial(label, lang),
            "format_label": partial(format_label, lang),
            "switch_url": switch_url,
        },
        status_code=status_code,
    )
    chosen = request.query_params.get("lang")
    if chosen in LANGS:
        response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
    response.headers["Content-Security-Policy"] = CSP
    return response


def _path(request: Request) -> str:
    return quote(request.url.path, safe="/")


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the real name in RFC 5987 form (RFC 6266)."""
    stem, dot, ext = filename.rpartition(".")
    if not dot:
        stem, ext = filename, ""
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    ascii_stem = re.sub(r"[^A-Za-z0-9._()-]+", "_", ascii_stem).strip("._ ")
    ascii_ext = re.sub(r"[^A-Za-z0-9]+", "", ext)
    fallback = (ascii_stem or "download") + (f".{ascii_ext}" if ascii_ext else "")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# -- health -----------------------------------------------------------------------------------------------


@router.get("/healthz", include_in_schema=False)
def healthz(settings: SettingsDep, backend: BackendDep) -> JSONResponse:
    """200 once the catalogue answers and the search backend is ready; 503 otherwise."""
    database = search = False
    try:
        if is_initialised(settings):
            with db.read_session(settings) as session:
                session.execute(text("SELECT 1"))
            database = True
    except Exception:
        database = False
    try:
        backend.count()
        search = True
    except Exception:
        search = False
    ok = database and search
    body = {
        "status": "ok" if ok else "unavailable",
        "database": database,
        "search": search,
        "backend": backend.name,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


# -- pages ------------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, session: SessionDep) -> HTMLResponse:
    archives = [ArchiveOut.of(n) for n in services.archives_tree(session)]
    total = sum(a.open_records for a in archives)
    return render(request, "home.html", {"archives": archives, "total": total})


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
async def search_page(
    request: Request, settings: SettingsDep, backend: BackendDep, limits: LimitsDep
) -> HTMLResponse:
    """``q``, the filters (``archive``, ``level``, ``fonds``, ``retention``, ``format``, repeatable),
    ``year_from``, ``year_to``, ``sort``, ``page``, ``size`` and ``scope``, read as text: a repeated single
    parameter counts by its last value, as a declared ``str`` parameter would. They are read here rather
    than declared: there is nothing for FastAPI to validate, and its per-parameter machinery costs more
    than the rest of the route's own work outside the thread."""
    params = request.query_params
    # Pages are forgiving: a malformed number is ignored rather than refused (the API answers 422); the
    # bounds are the API's (access_portal.limits).
    query = search_query(
        limits,
        params.get("q", ""),
        archive=params.getlist("archive"),
        level=params.getlist("level"),
        fonds=params.getlist("fonds"),
        retention=params.getlist("retention"),
        format=params.getlist("format"),
        year_from=_int(params.get("year_from")),
        year_to=_int(params.get("year_to")),
        sort=params.get("sort", "relevance"),
        page=_int(params.get("page")) or 1,
        size=_int(params.get("size")) or 20,
    )
    scope = params.get("scope")
    ctx = await regional.context_for_query(settings)
    regional_result = None
    if (scope if scope in SCOPES else ctx.default_scope) == "region" and ctx.identity is not None:
        # every peer too (access_portal.regional), awaited here: no search thread waits on the network
        regional_result = await regional.regional_search(
            request.app.state.federation, settings, backend, ctx, query
        )
    return await run_search(
        settings, _search_page, request, settings, backend, query, scope, ctx, regional_result
    )


def _search_page(
    request: Request,
    settings: Settings,
    backend: SearchBackend,
    query: SearchQuery,
    scope: str | None,
    ctx: regional.NodeContext,
    result: RegionalResult | None,
) -> HTMLResponse:
    """The search (unless ``result`` is the regional one), the catalogue re-check and the rendering: the
    blocking part of the page, in one go."""
    with db.read_session(settings) as session:
        archives = services.archive_names(session)
        found = None if result is not None else services.public_search(session, backend, query)
    # Labels are worked out here, not by template macros (~100 of them a page cost more than the rest).
    lang = resolve_lang(request)
    names = {a.code: a.name_en if lang == "en" and a.name_en else a.name_zh for a in archives.values()}
    nodes: list[Any] = []
    hits: Sequence[Hit | HitOut]
    if found is None:
        assert result is not None
        chosen = "region"
        out = regional.regional_out(result)
        hits, facets, nodes = out.hits, result.facets, out.nodes
        total, total_exact, pages = out.total, out.total_exact, out.pages
        for code, a in ctx.peer_archives.items():
            names.setdefault(
                code, (a.get("name_en") if lang == "en" and a.get("name_en") else a.get("name_zh")) or code
            )
    else:
        chosen = "local"
        hits = found.result.hits
        facets = found.result.facets
        total, total_exact, pages = found.total, found.result.total_exact, found.pages

    def shown(facet: str, value: str) -> str:
        return names.get(value, value) if facet == "archive" else label(lang, facet, value)

    t = translator(lang)
    keep = scope if scope in SCOPES else None
    links = SearchLinks(query, keep)
    filters = active_filters(links, shown)
    kept = query_params(replace(query, page=1))
    return render(
        request,
        "search.html",
        {
            "query": query,
            "total": total,
            "total_exact": total_exact,
            "pages": pages,
            "hits": page_hits(hits, names, lambda field: t("field_" + field)),
            "facets": facet_links(links, facets, shown),
            "filters": filters,
            "hidden": [(k, v) for k, v in kept if k not in ("q", "sort")]
            + ([("scope", keep)] if keep else []),
            "prev_url": links.url(page=query.page - 1) if query.page > 1 else None,
            "next_url": links.url(page=query.page + 1) if query.page < pages else None,
            "clear_url": _with_scope("/search?" + urlencode({"q": query.q}), keep) if filters else None,
            "scope": chosen,
            "has_peers": bool(ctx.peers),
            "scope_urls": {sc: "/search?" + urlencode([*kept, ("scope", sc)]) for sc in SCOPES},
            "nodes": nodes,
            "missing": [n for n in nodes if n.status != "ok"],
        },
        switch_params=query_params(query) + ([("scope", keep)] if keep else []),
    )


def _with_scope(url: str, scope: str | None) -> str:
    """A search link that keeps an explicit ``scope`` (本馆 / 全省) the visitor chose."""
    if scope not in SCOPES:
        return url
    return url + ("&" if "?" in url else "?") + f"scope={scope}"


@router.get("/records/{archive}/{code}", response_class=HTMLResponse, include_in_schema=False)
def record_page(request: Request, session: SessionDep, archive: str, code: str) -> HTMLResponse:
    record = services.public_record(session, archive, code)
    out = RecordOut.of(record, services.public_files(record))
    return render(request, "record.html", {"record": out, "catalogue_url": catalogue_url(out.archive)})


@router.get("/records/{archive}/{code}/files/{path:path}", include_in_schema=False)
def download(settings: SettingsDep, session: SessionDep, archive: str, code: str, path: str) -> FileResponse:
    """Stream the access copy (or the original where there is none) of an open record."""
    found = services.public_download(settings, session, archive, code, path)
    return FileResponse(
        found.path,
        media_type=found.media_type,
        headers={
            "Content-Disposition": content_disposition(found.filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": CACHE_EXPORTS,
            "Digest": f"sha-256={found.sha256}",
        },
    )


@router.get("/archives/{code}/catalogue", response_class=HTMLResponse, include_in_schema=False)
def catalogue(request: Request, session: SessionDep, code: str, page: str = "1") -> HTMLResponse:
    result = services.catalogue_page(session, code, page=_int(page) or 1)
    a = result.archive
    here = catalogue_url(a.code)
    return render(
        request,
        "catalogue.html",
        {
            "archive": a,
            "result": result,
            "records": [(r, record_url(a.code, r.archival_code)) for r in result.records],
            "prev_url": f"{here}?page={result.page - 1}" if result.page > 1 else None,
            "next_url": f"{here}?page={result.page + 1}" if result.page < result.pages else None,
            "csv_url": here + ".csv",
            "json_url": "/api/v1" + here,
        },
        switch_params=[("page", str(result.page))] if result.page > 1 else (),
    )


CSV_HEADER = ("档号", "题名", "责任者", "日期", "保管期限", "全宗号", "链接")


@router.get("/archives/{code}/catalogue.csv", include_in_schema=False)
def catalogue_csv(
    request: Request, settings: SettingsDep, session: SessionDep, code: str
) -> StreamingResponse:
    """The whole catalogue of open records as CSV, UTF-8 with a BOM so that Excel reads the Chinese.
    Retention periods read as on the pages (永久, 30年); links are absolute, on ``ARCHIVE_PUBLIC_URL`` —
    never on the request's ``Host``, which anyone can set."""
    archive = services.get_public_archive(session, code)
    archive_id, archive_code = archive.id, archive.code
    base = settings.public_url

    def rows() -> Iterator[bytes]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        yield "\ufeff".encode() + buf.getvalue().encode()
        with db.read_session(settings) as s:
            arch = s.get(Archive, archive_id)
            if arch is None:
                return
            batch: list[Sequence[str]] = []
            for r in services.iter_catalogue(s, arch):
                fonds = r.fonds.code if r.fonds else ""
                batch.append(
                    (
                        r.archival_code,
                        r.title,
                        r.creator or "",
                        r.date_text or "",
                        label("zh", "retention", r.retention) if r.retention else "",
                        fonds,
                        base + record_url(archive_code, r.archival_code),
                    )
                )
                if len(batch) >= 200:
                    yield _csv_chunk(batch)
                    batch = []
            if batch:
                yield _csv_chunk(batch)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": content_disposition(f"{archive_code}-开放档案目录.csv"),
            "Cache-Control": CACHE_EXPORTS,
        },
    )


def _csv_chunk(rows: Sequence[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([[_csv_safe(c) for c in row] for row in rows])
    return buf.getvalue().encode()


def _csv_safe(cell: str) -> str:
    """Keep spreadsheet formulas out of an exported cell (CSV injection): prefix =, +, -, @ with '."""
    return (
        "'" + cell
        if cell[:1] in ("=", "+", "@", "\t", "\r") or (cell[:1] == "-" and not cell[1:2].isalnum())
        else cell
    )
