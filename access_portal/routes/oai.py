"""``/oai``: the node's OAI-PMH 2.0 repository (GET and POST), and the native format's schema.

The protocol lives in :mod:`access_portal.oai`; this module only reads the arguments and answers its XML.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from access_portal import oai
from archive import db
from archive.config import Settings

router = APIRouter(tags=["OAI-PMH"])

MEDIA_TYPE = "text/xml; charset=utf-8"
#: Largest POST body read; OAI-PMH arguments are short (a resumption token is well under 1 KiB).
MAX_BODY = 64 * 1024


def _answer(settings: Settings, pairs: list[tuple[str, str]], base_url: str) -> str:
    with db.read_session(settings) as session:
        return oai.respond(settings, session, pairs, base_url)


def _base_url(request: Request) -> str:
    """This endpoint's absolute address (baseURL, record identifiers, schema links), on
    ``ARCHIVE_PUBLIC_URL``: never on the request's ``Host`` header, which anyone can set."""
    settings: Settings = request.app.state.settings
    return settings.public_url + "/oai"


@router.get("/oai", summary="OAI-PMH 2.0 (oai_dc, pearl_archive)", response_class=Response)
async def oai_get(request: Request) -> Response:
    pairs = list(request.query_params.multi_items())
    xml = await run_in_threadpool(_answer, request.app.state.settings, pairs, _base_url(request))
    return Response(xml, media_type=MEDIA_TYPE)


@router.post("/oai", summary="OAI-PMH 2.0, arguments as a form body", response_class=Response)
async def oai_post(request: Request) -> Response:
    body = await request.body()
    pairs: list[tuple[str, str]]
    if len(body) > MAX_BODY:
        pairs = [("verb", "-"), ("bad", "request body too large")]  # answered as badVerb/badArgument
    else:
        pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        pairs += list(request.query_params.multi_items())
    xml = await run_in_threadpool(_answer, request.app.state.settings, pairs, _base_url(request))
    return Response(xml, media_type=MEDIA_TYPE)


@router.get("/oai/pearl_archive.xsd", summary="Schema of the native metadata format", response_class=Response)
async def native_schema() -> Response:
    return FileResponse(oai.NATIVE_SCHEMA_PATH, media_type="application/xml")
