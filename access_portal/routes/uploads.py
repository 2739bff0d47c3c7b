"""Resumable transfer uploads: the tus 1.0.0 endpoint under ``/api/v1/uploads`` (protocol core in
:mod:`access_portal.tus`; extensions creation, creation-with-upload, termination, expiration).

Who may call it is decided by :mod:`access_portal.staff` as for ``POST /api/v1/transfers``: an archivist of the
archive named in ``Upload-Metadata`` (403 otherwise); an upload of an archive outside the caller's scope is
answered 404, as if missing; no or a bad token 401. When the last byte arrives the upload becomes a transfer
(:func:`access_portal.transfers.accept_bag`), and the answer names it: ``Archive-Transfer-Url`` (and
``Location``) give its status URL, ``Archive-Duplicate-Of`` the earlier transfer of the same bytes.
HEAD is answered by the GET route (the portal runs GET for HEAD without the body).
"""

from __future__ import annotations

import email.utils
import shutil
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from access_portal import tus
from access_portal.deps import SettingsDep
from access_portal.routes.staff import refused
from access_portal.schemas import ErrorOut
from access_portal.staff import TOKEN_RESPONSES, ArchivistDep, require_archive
from access_portal.transfers import Accepted, accept_bag, bag_name
from archive import db
from archive.accounts import Staff
from archive.config import Settings
from archive.errors import (
    ArchiveError,
    BadArgument,
    BeyondUploadLength,
    NotFound,
    OffsetMismatch,
    TusError,
    UnknownArchive,
    UploadBusy,
    UploadExpired,
    UploadTooLarge,
)
from archive.models import Transfer
from archive.uploads import Upload, aware, create_upload, get_upload, partial_path

router = APIRouter(
    prefix="/api/v1/uploads",
    tags=["uploads (tus)"],
    responses={
        **TOKEN_RESPONSES,
        403: {"description": "Not an archivist, or not of the archive the upload is for"},
        404: {"model": ErrorOut, "description": "No such upload (or one of another archive)"},
    },
)

TUS_HEADERS = {"Tus-Resumable": tus.VERSION}
STATUS = {
    OffsetMismatch: 409,
    UploadBusy: 423,
    UploadExpired: 410,
    UploadTooLarge: 413,
    BeyondUploadLength: 413,
}

TusResumable = Annotated[str | None, Header(alias="Tus-Resumable", description="Must be 1.0.0")]


def _tus_refused(exc: ArchiveError) -> HTTPException:
    status = STATUS.get(type(exc), 400)
    if isinstance(exc, TusError) and exc.variant == "version":
        status = 412
    elif isinstance(exc, TusError) and exc.variant == "content_type":
        status = 415
    refusal = refused(exc, status)
    refusal.headers = {**TUS_HEADERS, "Tus-Version": tus.VERSION} if status == 412 else dict(TUS_HEADERS)
    return refusal


@dataclass(frozen=True)
class _Seen:
    """An upload as a request sees it (read in one short transaction)."""

    id: str
    archive: str
    filename: str
    length: int
    offset: int
    expires: str
    accepted: Accepted | None


def _load(settings: Settings, staff: Staff, upload_id: str) -> _Seen:
    with db.read_session(settings) as s:
        upload = get_upload(s, upload_id)
        archive = upload.archive.code
        if not staff.may_act_for(archive):
            raise NotFound()
        path = partial_path(settings, upload.id)
        done = upload.completed_at is not None and upload.transfer_id is not None
        accepted = Accepted(upload.transfer_id, upload.duplicate_of) if done and upload.transfer_id else None
        return _Seen(
            id=upload.id,
            archive=archive,
            filename=upload.filename,
            length=upload.length,
            offset=upload.length if done else (path.stat().st_size if path.exists() else 0),
            expires=email.utils.format_datetime(aware(upload.expires_at), usegmt=True),
            accepted=accepted,
        )


def _headers(seen: _Seen, offset: int | None = None) -> dict[str, str]:
    headers = {
        **TUS_HEADERS,
        "Upload-Offset": str(seen.offset if offset is None else offset),
        "Upload-Length": str(seen.length),
        "Upload-Expires": seen.expires,
        "Cache-Control": "no-store",
    }
    return headers


def _transfer_headers(headers: dict[str, str], accepted: Accepted | None) -> dict[str, str]:
    if accepted is not None:
        headers["Archive-Transfer-Url"] = accepted.status_url
        headers["Location"] = accepted.status_url
        if accepted.duplicate_of:
            headers["Archive-Duplicate-Of"] = accepted.duplicate_of
    return headers


def _complete(settings: Settings, seen: _Seen, writer: tus.Writer, actor: str) -> Accepted:
    """The last byte is in: move the bag to its transfer's folder (one rename) and register or recognise it."""
    from ingest.pipeline import new_transfer_id

    transfer_id = new_transfer_id()
    folder = settings.home_dir / "uploads" / transfer_id
    folder.mkdir(parents=True, exist_ok=False)
    target = folder / seen.filename
    sha256 = writer.sha256()
    writer.path.rename(target)
    try:
        return accept_bag(
            settings, seen.archive, target, sha256, transfer_id=transfer_id, actor=actor, upload=seen.id
        )
    except BaseException:
        if target.exists() and not _registered(settings, transfer_id):
            target.rename(writer.path)  # not registered: put the bytes back, so the client may finish again
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _registered(settings: Settings, transfer_id: str) -> bool:
    with db.read_session(settings) as s:
        return s.get(Transfer, transfer_id) is not None


async def _write(
    request: Request, settings: Settings, staff: Staff, seen: _Seen, offset: int
) -> tuple[int, Accepted | None]:
    """Stream the body into the upload from ``offset`` under its lock; complete it when it is full."""
    path = partial_path(settings, seen.id)
    if not path.exists():
        raise UploadExpired(upload=seen.id)
    writer = await run_in_threadpool(tus.open_writer, path, seen.id, seen.length)
    accepted: Accepted | None = None
    try:
        if writer.offset != offset:
            raise OffsetMismatch(expected=writer.offset, given=offset)
        await tus.receive(request, writer)
        if writer.complete:
            accepted = await run_in_threadpool(_complete, settings, seen, writer, staff.login)
    finally:
        await run_in_threadpool(writer.close)
    return writer.offset, accepted


@router.options(
    "",
    status_code=204,
    summary="tus discovery: version, extensions and the largest upload",
    response_class=Response,
)
def discover(settings: SettingsDep) -> Response:
    return Response(
        status_code=204,
        headers={
            **TUS_HEADERS,
            "Tus-Version": tus.VERSION,
            "Tus-Extension": tus.EXTENSIONS,
            "Tus-Max-Size": str(settings.transfer_byte_limit()),
        },
    )


@router.post(
    "",
    status_code=201,
    response_class=Response,
    summary="Create a resumable upload of a bag (tus creation; archivist of the archive)",
    description="tus 1.0.0 creation. Headers: `Tus-Resumable: 1.0.0`, `Upload-Length` (bytes; at most "
    "ARCHIVE_MAX_TRANSFER_BYTES, else 413) and `Upload-Metadata` with `archive` (the archive's code) and "
    "`filename` (.zip, .tar or .tar.gz), each base64-encoded. Answers 201 with `Location` (the upload's URL) "
    "and `Upload-Expires`. A body sent with `Content-Type: application/offset+octet-stream` is the first "
    "chunk (creation-with-upload). Then PATCH the rest; HEAD tells the offset to resume from.\n\n"
    "    curl -i -X POST -H 'Authorization: Bearer TOKEN' -H 'Tus-Resumable: 1.0.0' \\\n"
    '         -H "Upload-Length: $(stat -c %s bag.zip)" \\\n'
    '         -H "Upload-Metadata: archive $(printf GZ | base64),filename $(printf bag.zip | base64)" \\\n'
    "         https://node/api/v1/uploads",
    responses={
        201: {"description": "Created; `Location` is the upload's URL"},
        400: {"model": ErrorOut, "description": "A missing or malformed tus header or metadata"},
        412: {"model": ErrorOut, "description": "Not Tus-Resumable: 1.0.0"},
        413: {"model": ErrorOut, "description": "Upload-Length beyond ARCHIVE_MAX_TRANSFER_BYTES"},
    },
)
async def create(
    request: Request,
    staff: ArchivistDep,
    settings: SettingsDep,
    tus_resumable: TusResumable = None,
    upload_length: Annotated[str | None, Header(alias="Upload-Length")] = None,
    upload_metadata: Annotated[
        str | None, Header(alias="Upload-Metadata", description="archive and filename, base64")
    ] = None,
) -> Response:
    try:
        tus.check_version(request)
        if request.headers.get("upload-defer-length") is not None:
            raise TusError(variant="length")
        length = tus.whole_number(upload_length, "length")
        meta = tus.parse_metadata(upload_metadata)
        archive = meta.get("archive", "")
        if not archive:
            raise TusError(variant="metadata")
        try:
            filename = bag_name(meta.get("filename"))
        except BadArgument:
            raise TusError(variant="metadata") from None
    except TusError as exc:
        raise _tus_refused(exc) from None
    require_archive(staff, archive)
    limit = settings.transfer_byte_limit()
    if length > limit:
        raise _tus_refused(UploadTooLarge(limit=limit))

    def make() -> str:
        with db.write_session(settings) as s:
            return create_upload(s, settings, archive, login=staff.login, filename=filename, length=length).id

    try:
        upload_id = await run_in_threadpool(make)
    except UnknownArchive:
        raise NotFound() from None
    headers = {**TUS_HEADERS, "Location": f"/api/v1/uploads/{upload_id}"}
    seen = await run_in_threadpool(_load, settings, staff, upload_id)
    headers["Upload-Expires"] = seen.expires
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == tus.CHUNK_TYPE:
        try:
            offset, accepted = await _write(request, settings, staff, seen, 0)
        except (BeyondUploadLength, UploadBusy) as exc:
            raise _tus_refused(exc) from None
        headers["Upload-Offset"] = str(offset)
        _transfer_headers(headers, accepted)
        headers["Location"] = f"/api/v1/uploads/{upload_id}"  # the upload's URL, as tus requires
    return Response(status_code=201, headers=headers)


class UploadOut(BaseModel):
    id: str
    archive: str
    filename: str
    length: int
    offset: int
    expires: str
    transfer_id: str | None
    status_url: str | None
    duplicate_of: str | None


@router.get(
    "/{upload_id}",
    response_model=UploadOut,
    summary="An upload's offset (tus HEAD) and, once complete, its transfer",
    description="HEAD (tus) or GET: `Upload-Offset` says how many bytes the node holds, so the client "
    "resumes from there; `Upload-Length`, `Upload-Expires`. Once the upload is complete, "
    "`Archive-Transfer-Url` is the transfer's status URL. 410 once expired.",
    responses={410: {"model": ErrorOut, "description": "The partial upload expired and was removed"}},
)
async def status(upload_id: str, response: Response, staff: ArchivistDep, settings: SettingsDep) -> Any:
    try:
        seen = await run_in_threadpool(_load, settings, staff, upload_id)
    except UploadExpired as exc:
        raise _tus_refused(exc) from None
    headers = _transfer_headers(_headers(seen), seen.accepted)
    headers["Upload-Metadata"] = tus.encode_metadata({"archive": seen.archive, "filename": seen.filename})
    headers.pop("Location", None)
    response.headers.update(headers)
    accepted = seen.accepted
    return {
        "id": seen.id,
        "archive": seen.archive,
        "filename": seen.filename,
        "length": seen.length,
        "offset": seen.offset,
        "expires": seen.expires,
        "transfer_id": accepted.transfer_id if accepted else None,
        "status_url": accepted.status_url if accepted else None,
        "duplicate_of": accepted.duplicate_of if accepted else None,
    }


@router.patch(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    summary="Append a chunk to an upload (tus PATCH)",
    description="Headers `Tus-Resumable: 1.0.0`, `Upload-Offset` (where the chunk starts: the offset HEAD "
    "reported, else 409) and `Content-Type: application/offset+octet-stream` (else 415); the body is the "
    "chunk, streamed to disk. Answers 204 with the new `Upload-Offset`; the one that completes the upload "
    "also carries `Archive-Transfer-Url` and `Location` (the transfer's status URL). 423 while another "
    "request writes to the same upload. A cut connection keeps what arrived.\n\n"
    "    curl -X PATCH -H 'Authorization: Bearer TOKEN' -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \\\n"
    "         -H 'Content-Type: application/offset+octet-stream' --data-binary @bag.zip \\\n"
    "         https://node/api/v1/uploads/ID",
    responses={
        204: {"description": "Stored; `Upload-Offset` is the new offset"},
        409: {"model": ErrorOut, "description": "Upload-Offset is not where the upload stands"},
        410: {"model": ErrorOut, "description": "Expired"},
        412: {"model": ErrorOut, "description": "Not Tus-Resumable: 1.0.0"},
        413: {"model": ErrorOut, "description": "Beyond Upload-Length"},
        415: {"model": ErrorOut, "description": "Not application/offset+octet-stream"},
        423: {"model": ErrorOut, "description": "Another request is writing to this upload"},
    },
)
async def append(
    upload_id: str,
    request: Request,
    staff: ArchivistDep,
    settings: SettingsDep,
    tus_resumable: TusResumable = None,
    upload_offset: Annotated[str | None, Header(alias="Upload-Offset")] = None,
) -> Response:
    try:
        tus.check_version(request)
        offset = tus.whole_number(upload_offset, "offset")
        seen = await run_in_threadpool(_load, settings, staff, upload_id)
        tus.check_chunk_type(request)
        if seen.accepted is not None:
            raise OffsetMismatch(expected=seen.length, given=offset)
        new_offset, accepted = await _write(request, settings, staff, seen, offset)
    except (TusError, OffsetMismatch, UploadBusy, UploadExpired, BeyondUploadLength) as exc:
        raise _tus_refused(exc) from None
    headers = _transfer_headers({**TUS_HEADERS, "Upload-Offset": str(new_offset)}, accepted)
    if accepted is None:
        headers["Upload-Expires"] = seen.expires
    return Response(status_code=204, headers=headers)


@router.delete(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    summary="Abandon an upload (tus termination): its bytes are removed",
    responses={423: {"model": ErrorOut, "description": "A request is writing to it"}},
)
async def terminate(
    upload_id: str,
    request: Request,
    staff: ArchivistDep,
    settings: SettingsDep,
    tus_resumable: TusResumable = None,
) -> Response:
    try:
        tus.check_version(request)
        seen = await run_in_threadpool(_load, settings, staff, upload_id)
    except (TusError, UploadExpired) as exc:
        raise _tus_refused(exc) from None

    def remove() -> None:
        path = partial_path(settings, seen.id)
        writer = tus.open_writer(path, seen.id, seen.length) if path.exists() else None
        try:
            with db.write_session(settings) as s:
                row = s.get(Upload, seen.id)
                if row is not None:
                    s.delete(row)
            path.unlink(missing_ok=True)
        finally:
            if writer is not None:
                writer.close()
            tus.forget(seen.id)
            path.with_suffix(".lock").unlink(missing_ok=True)

    try:
        await run_in_threadpool(remove)
    except UploadBusy as exc:
        raise _tus_refused(exc) from None
    return Response(status_code=204, headers=TUS_HEADERS)
