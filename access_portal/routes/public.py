"""The public pages: server-rendered (Jinja2), zh-CN first with an English switch, usable without JavaScript.

Handlers only parse the request, call :mod:`access_portal.services` and render; access rules live there.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from anyio import from_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import text

from access_portal import regional, services
from access_portal.deps import BackendDep, SessionDep, SettingsDep
from access_portal.i18n import COOKIE, HTML_LANG, LANGS, label, resolve_lang, translator
from access_portal.schemas import ArchiveOut, HitOut, RecordOut, catalogue_url, record_url
from archive import db
from archive.home import is_initialised
from archive.models import Archive

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
#: Pages are self-contained: styles from /static, no scripts.
CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

router = APIRouter()

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


def render(request: Request, name: str, context: Mapping[str, Any], status_code: int = 200) -> HTMLResponse:
    """Render a page in the request's language; ``?lang=`` is remembered in a cookie."""
    lang = resolve_lang(request)
    other = "en" if lang == "zh" else "zh"
    response = TEMPLATES.TemplateResponse(
        request,
        name,
        {
            **context,
            "lang": lang,
            "html_lang": HTML_LANG[lang],
            "t": translator(lang),
            "label": partial(label, lang),
            "switch_url": _with_params(request, lang=other),
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


def _with_params(request: Request, **changes: str | None) -> str:
    """The current URL with some query parameters replaced (None removes them)."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    items += [(k, v) for k, v in changes.items() if v is not None]
    return _path(request) + ("?" + urlencode(items) if items else "")


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


FACET_PARAMS = {
    "archive": "archive",
    "level": "level",
    "fonds": "fonds",
    "retention": "retention",
    "format": "format",
}


def _facet_links(
    request: Request, facets: Mapping[str, Mapping[str, int]]
) -> dict[str, list[dict[str, Any]]]:
    """For each facet value: its count, whether it is selected, and the plain link that toggles it."""
    out: dict[str, list[dict[str, Any]]] = {}
    params = request.query_params
    for facet, values in facets.items():
        links = []
        for value, count in values.items():
            if facet == "year":
                try:
                    decade = int(value)
                except ValueError:
                    continue
                selected = params.get("year_from") == str(decade) and params.get("year_to") == str(decade + 9)
                url = (
                    _with_params(request, year_from=None, year_to=None, page=None)
                    if selected
                    else _with_params(request, year_from=str(decade), year_to=str(decade + 9), page=None)
                )
            else:
                name = FACET_PARAMS.get(facet)
                if name is None:
                    continue
                current = params.getlist(name)
                selected = value in current
                kept = [v for v in current if v != value] if selected else [*current, value]
                items = [(k, v) for k, v in params.multi_items() if k not in (name, "page")]
                items += [(name, v) for v in kept]
                url = _path(request) + ("?" + urlencode(items) if items else "")
            links.append({"value": value, "count": count, "selected": selected, "url": url})
        out[facet] = links
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    backend: BackendDep,
    q: str = "",
    scope: str | None = None,
    archive: MultiQuery = None,
    level: MultiQuery = None,
    fonds: MultiQuery = None,
    retention: MultiQuery = None,
    format: MultiQuery = None,
    year_from: str | None = None,
    year_to: str | None = None,
    sort: str = "relevance",
    page: str = "1",
    size: str = "20",
) -> HTMLResponse:
    # Pages are forgiving: a malformed number is ignored rather than refused (the API answers 422).
    query = services.build_query(
        q,
        archives=archive,
        levels=level,
        fonds=fonds,
        retentions=retention,
        formats=format,
        year_from=_int(year_from),
        year_to=_int(year_to),
        sort=sort,
        page=_int(page) or 1,
        size=_int(size) or 20,
    )
    archives: dict[str, Any] = {n.code: n for n in services.archives_tree(session)}
    ctx = regional.node_context(settings)
    chosen = scope if scope in ("local", "region") else ctx.default_scope
    nodes: list[Any] = []
    if chosen == "region" and ctx.identity is not None:
        result = from_thread.run(
            regional.regional_search, request.app.state.federation, settings, backend, ctx, query
        )
        out = regional.regional_out(result)
        hits, facets, nodes = out.hits, result.facets, out.nodes
        total, total_exact, pages = out.total, out.total_exact, out.pages
        archives = {**ctx.peer_archives, **archives}
    else:
        chosen = "local"
        found = services.public_search(session, backend, query)
        hits = [HitOut.of(h) for h in found.result.hits]
        facets = found.result.facets
        total, total_exact, pages = found.total, found.result.total_exact, found.pages
    filters = _active_filters(request, query)
    return render(
        request,
        "search.html",
        {
            "query": query,
            "total": total,
            "total_exact": total_exact,
            "pages": pages,
            "hits": hits,
            "facets": _facet_links(request, facets),
            "archives": archives,
            "filters": filters,
            "scope": chosen,
            "has_peers": bool(ctx.peers),
            "scope_urls": {
                "local": _with_params(request, scope="local", page=None),
                "region": _with_params(request, scope="region", page=None),
            },
            "nodes": nodes,
            "missing": [n for n in nodes if n.status != "ok"],
            "hidden": [
                (k, v)
                for k, v in request.query_params.multi_items()
                if k not in ("q", "page", "sort", "lang")
            ],
            "prev_url": _with_params(request, page=str(query.page - 1)) if query.page > 1 else None,
            "next_url": _with_params(request, page=str(query.page + 1)) if query.page < pages else None,
            "clear_url": "/search?" + urlencode({"q": query.q, **({"scope": scope} if scope else {})})
            if filters
            else None,
        },
    )


def _active_filters(request: Request, query: Any) -> list[dict[str, str]]:
    """Chips for the filters in force, each with the link that removes it."""
    chips: list[dict[str, str]] = []
    params = request.query_params
    for name in FACET_PARAMS.values():
        for value in params.getlist(name):
            items = [
                (k, v) for k, v in params.multi_items() if not (k == name and v == value) and k != "page"
            ]
            chips.append(
                {
                    "facet": name,
                    "value": value,
                    "url": _path(request) + ("?" + urlencode(items) if items else ""),
                }
            )
    if query.year_from is not None or query.year_to is not None:
        chips.append(
            {
                "facet": "year",
                "value": f"{query.year_from or ''}–{query.year_to or ''}",
                "url": _with_params(request, year_from=None, year_to=None, page=None),
            }
        )
    return chips


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
            "Cache-Control": "public, max-age=3600",
            "Digest": f"sha-256={found.sha256}",
        },
    )


@router.get("/archives/{code}/catalogue", response_class=HTMLResponse, include_in_schema=False)
def catalogue(request: Request, session: SessionDep, code: str, page: str = "1") -> HTMLResponse:
    result = services.catalogue_page(session, code, page=_int(page) or 1)
    a = result.archive
    return render(
        request,
        "catalogue.html",
        {
            "archive": a,
            "result": result,
            "records": [(r, record_url(a.code, r.archival_code)) for r in result.records],
            "prev_url": _with_params(request, page=str(result.page - 1)) if result.page > 1 else None,
            "next_url": _with_params(request, page=str(result.page + 1))
            if result.page < result.pages
            else None,
            "csv_url": catalogue_url(a.code) + ".csv",
            "json_url": "/api/v1" + catalogue_url(a.code),
        },
    )


CSV_HEADER = ("档号", "题名", "责任者", "日期", "保管期限", "全宗号", "链接")


@router.get("/archives/{code}/catalogue.csv", include_in_schema=False)
def catalogue_csv(
    request: Request, settings: SettingsDep, session: SessionDep, code: str
) -> StreamingResponse:
    """The whole catalogue of open records as CSV, UTF-8 with a BOM so that Excel reads the Chinese."""
    archive = services.get_public_archive(session, code)
    archive_id, archive_code = archive.id, archive.code
    base = str(request.base_url).rstrip("/")

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
                        r.retention or "",
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
        headers={"Content-Disposition": content_disposition(f"{archive_code}-开放档案目录.csv")},
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
