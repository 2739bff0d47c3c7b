"""The public JSON API under ``/api/v1``: search, records, archives and their catalogues of open records.

Unlike the pages, the API is strict: a malformed parameter (``page=-1``, ``sort=foo``) is a 422 with the
reasons as JSON. The bounds are the pages' (:mod:`access_portal.limits`): ``size`` above the maximum is capped
rather than refused, and the answer says which size was used; too many filter values, a control character in
one, or a page past the last is a 422 with a code (``POR…``) and a message in Chinese and English.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from access_portal import regional, services
from access_portal.deps import (
    BackendDep,
    LimitsDep,
    SessionDep,
    SettingsDep,
    get_limits,
    run_search,
)
from access_portal.limits import MAX_YEAR, MIN_YEAR, search_query
from access_portal.schemas import (
    ArchiveOut,
    CatalogueEntry,
    CatalogueOut,
    ErrorOut,
    RecordOut,
    SearchOut,
)
from archive import db
from archive.config import Settings
from archive.federation.identity import has_identity
from search import SearchBackend, SearchQuery

router = APIRouter(
    prefix="/api/v1",
    tags=["public"],
    responses={404: {"model": ErrorOut}},
    dependencies=[Depends(get_limits)],
)

MultiQuery = Annotated[list[str] | None, Query()]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1")]


async def search_params(
    limits: LimitsDep,
    q: Annotated[
        str,
        Query(description="Plain text, never query syntax; cut at ARCHIVE_PORTAL_MAX_QUERY_CHARS (256)"),
    ] = "",
    archive: MultiQuery = None,
    level: MultiQuery = None,
    fonds: MultiQuery = None,
    retention: MultiQuery = None,
    format: MultiQuery = None,
    year_from: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)] = None,
    year_to: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)] = None,
    sort: Literal["relevance", "date_desc", "date_asc"] = "relevance",
    page: Page = 1,
    size: Annotated[int, Query(ge=1, description="Hits per page; capped at 100")] = 20,
) -> SearchQuery:
    """The search parameters of ``/api/v1/search`` (and of ``/federation/v1/search``) as a query. ``async``
    though it does no I/O: FastAPI runs a plain ``def`` dependency in a worker thread, a hop on every search
    (and on a regional one, a hop at the asking node and one more at each peer)."""
    return search_query(
        limits,
        q,
        archive=archive,
        level=level,
        fonds=fonds,
        retention=retention,
        format=format,
        year_from=year_from,
        year_to=year_to,
        sort=sort,
        page=page,
        size=size,
    )


SearchQueryDep = Annotated[SearchQuery, Depends(search_params)]


@router.get("/search", response_model=SearchOut, summary="Search the open records")
async def search(
    request: Request,
    settings: SettingsDep,
    backend: BackendDep,
    query: SearchQueryDep,
    scope: Annotated[
        Literal["local", "region"] | None,
        Query(description="local: this node; region: every peer too (the default on a node with peers)"),
    ] = None,
) -> Response:
    if scope != "local" and has_identity(settings):  # two stat() calls; a node without identity is local
        ctx = await regional.context_for_query(settings)
        if (scope or ctx.default_scope) == "region" and ctx.identity is not None:
            result = await regional.regional_search(
                request.app.state.federation, settings, backend, ctx, query
            )
            return Response(regional.regional_out(result).model_dump_json(), media_type="application/json")
    # Everything that blocks (the search backend, the catalogue re-check, the JSON) in one worker-thread
    # hop, the session opened and closed there too: a ``def`` route with a SessionDep costs a second hop.
    return Response(
        await run_search(settings, _search_json, settings, backend, query), media_type="application/json"
    )


def _search_json(settings: Settings, backend: SearchBackend, query: SearchQuery) -> str:
    with db.read_session(settings) as session:
        found = SearchOut.of(services.public_search(session, backend, query))
    # Already a validated SearchOut: serialise it once with pydantic's JSON encoder instead of letting
    # FastAPI dump, re-validate and re-encode it (a few ms for a page of hits with its facets).
    return found.model_dump_json()


@router.get("/records/{archive}/{code}", response_model=RecordOut, summary="One open record and its files")
def record(session: SessionDep, archive: str, code: str) -> RecordOut:
    found = services.public_record(session, archive, code)
    return RecordOut.of(found, services.public_files(found))


@router.get("/archives", response_model=list[ArchiveOut], summary="The archives on this node, as a tree")
def archives(session: SessionDep) -> list[ArchiveOut]:
    return [ArchiveOut.of(n) for n in services.archives_tree(session)]


@router.get(
    "/archives/{code}/catalogue",
    response_model=CatalogueOut,
    summary="An archive's catalogue of open records, newest first (Archives Law art. 28)",
)
def catalogue(
    session: SessionDep,
    code: str,
    page: Page = 1,
    size: Annotated[
        int, Query(ge=1, description="Entries per page; capped at 1000")
    ] = services.CATALOGUE_PAGE_SIZE,
) -> CatalogueOut:
    result = services.catalogue_page(session, code, page=page, size=size)
    a = result.archive
    return CatalogueOut(
        archive=a.code,
        name_zh=a.name_zh,
        name_en=a.name_en,
        total=result.total,
        page=result.page,
        size=result.size,
        pages=result.pages,
        records=[CatalogueEntry.of(a.code, r) for r in result.records],
    )
