"""The staff JSON API under ``/api/v1``: transfers and access decisions, behind bearer tokens with roles.

Who may call what is decided in :mod:`access_portal.staff`; the handlers call service functions of
:mod:`archive.services`. Every change is a PREMIS event whose agent is the person the token belongs to.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from access_portal.deps import BackendDep, SettingsDep
from access_portal.schemas import ErrorOut
from access_portal.staff import (
    TOKEN_RESPONSES,
    ActorDep,
    ArchivistDep,
    ReaderDep,
    check_read,
    readable_archives,
    require_archive,
    require_archive_read,
)
from access_portal.transfers import receive_bag
from archive import db, review, services
from archive.errors import (
    ArchiveError,
    BadArgument,
    InvalidMetadata,
    NotFound,
    UnknownArchive,
    UploadTooLarge,
)
from search import index_records

router = APIRouter(
    prefix="/api/v1",
    tags=["staff"],
    responses={**TOKEN_RESPONSES, 404: {"model": ErrorOut}},
)


def refused(exc: ArchiveError, status: int = 422) -> HTTPException:
    """A request the service refused (a coded error) as an HTTP answer with its code and both messages."""
    return HTTPException(status, detail={**exc.as_dict(), "detail": exc.en, "detail_zh": exc.zh})


class AccessChangeIn(BaseModel):
    status: Literal["open", "restricted"]
    reason: str = Field(min_length=1, max_length=2000, description="Why; kept on the record and its event")
    review_on: dt.date | None = Field(default=None, description="The next review's date")

    model_config = {
        "json_schema_extra": {
            "examples": [{"status": "open", "reason": "开放审核：无密级、无限制", "review_on": None}]
        }
    }


class AccessChangeOut(BaseModel):
    record: str
    access_status: str
    changed: bool
    reason: str | None
    review_on: str | None


class TransferOut(BaseModel):
    id: str
    status: str
    archive: str | None
    bag: str
    started_at: str | None
    finished_at: str | None
    problems: list[Any]
    #: the problem lists are bounded (the first of each code): every code's count, how many more, and
    #: the file on the node that holds them all
    problem_counts: dict[str, int]
    more_problems: list[Any]
    problem_file: str | None
    records: list[str]


class TransferListItem(BaseModel):
    id: str
    status: str
    archive: str | None
    bag: str
    records: int
    files: int
    bytes: int
    problems: int
    started_at: str | None
    finished_at: str | None


class TransferListOut(BaseModel):
    transfers: list[TransferListItem]


@router.post(
    "/records/{archive}/{code}/access",
    response_model=AccessChangeOut,
    summary="Open or restrict a record (archivist of its archive, or admin)",
    description="Decides the record's pending opening review too, if it has one; a restricted record's "
    "`review_on` brings it back into the review queue on that day. The public index follows at once.",
)
def change_access(
    archive: str,
    code: str,
    body: AccessChangeIn,
    staff: ActorDep,
    settings: SettingsDep,
    backend: BackendDep,
) -> Any:
    require_archive(staff, archive)
    try:
        with db.write_session(settings) as s:
            result = review.decide_record(
                s,
                archive,
                code,
                body.status,
                reason=body.reason,
                review_on=body.review_on,
                actor=staff.login,
                open_after_years=settings.open_after_years,
            )
    except UnknownArchive:
        raise NotFound() from None
    except (BadArgument, InvalidMetadata) as exc:
        raise refused(exc) from None
    index_records(settings, backend, [result["record_id"]])  # the public index follows at once
    return result


@router.get("/transfers", response_model=TransferListOut, summary="Transfers of the archives you may see")
def list_transfers(
    staff: ReaderDep,
    settings: SettingsDep,
    archive: Annotated[list[str] | None, Query(description="Only these archives' transfers")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    for code in archive or []:
        require_archive_read(staff, code)
    scope = readable_archives(staff)
    wanted = archive if archive else scope
    with db.read_session(settings) as s:
        rows = [services.transfer_summary(t) for t in services.list_transfers(s, limit, wanted)]
    return {
        "transfers": [
            {
                **{k: r[k] for k in TransferListItem.model_fields if k != "problems"},
                "problems": len(r["problems"]),
            }
            for r in rows
        ]
    }


@router.get(
    "/transfers/{transfer_id}", response_model=TransferOut, summary="A transfer's status and problems"
)
def get_transfer(transfer_id: str, staff: ReaderDep, settings: SettingsDep) -> Any:
    with db.read_session(settings) as s:
        transfer = services.get_transfer(s, transfer_id)
        check_read(staff, transfer.archive.code if transfer.archive else None)
        summary = services.transfer_summary(transfer)
        records = services.transfer_record_refs(s, transfer_id)
    return {
        **{
            k: summary[k]
            for k in (
                "id",
                "status",
                "archive",
                "bag",
                "started_at",
                "finished_at",
                "problems",
                "problem_counts",
                "more_problems",
                "problem_file",
            )
        },
        "records": records,
    }


class TransferQueued(BaseModel):
    transfer_id: str
    status_url: str
    duplicate_of: str | None = Field(
        default=None, description="Set when the same bag was uploaded before: the first transfer's id"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "transfer_id": "T20261206-223000-1a2b3c4d",
                    "status_url": "/api/v1/transfers/T20261206-223000-1a2b3c4d",
                    "duplicate_of": None,
                }
            ]
        }
    }


@router.post(
    "/transfers",
    status_code=202,
    response_model=TransferQueued,
    summary="Submit a bag (archivist of the archive); the ingest runs on a worker",
    description="Multipart form: `archive` (code) and `file` (the bag as .zip, .tar or .tar.gz). Answers 202 "
    "at once with the transfer's status URL; a worker ingests it (status received → validating → storing → "
    "stored | rejected, with every problem). The same bytes sent again to the same archive are recognised "
    "(SHA-256) and answered 200 with the first transfer (`duplicate_of`) instead of a second ingest, unless "
    "that one was rejected or interrupted. The resumable twin is the tus endpoint `/api/v1/uploads`.\n\n"
    "    curl -H 'Authorization: Bearer TOKEN' -F archive=GZ -F file=@bag.zip https://node/api/v1/transfers",
    responses={
        200: {
            "model": TransferQueued,
            "description": "The same bag was uploaded before: the first transfer, not ingested again",
            "content": {
                "application/json": {
                    "example": {
                        "transfer_id": "T20261206-223000-1a2b3c4d",
                        "status_url": "/api/v1/transfers/T20261206-223000-1a2b3c4d",
                        "duplicate_of": "T20261206-223000-1a2b3c4d",
                    }
                }
            },
        },
        413: {"model": ErrorOut, "description": "Larger than ARCHIVE_MAX_TRANSFER_BYTES; nothing kept"},
        422: {"model": ErrorOut, "description": "Not a .zip, .tar or .tar.gz name"},
    },
)
async def submit_transfer(
    request: Request,
    staff: ArchivistDep,
    settings: SettingsDep,
    archive: Annotated[str, Form(description="The archive's code, e.g. GZ")],
    file: Annotated[UploadFile, File(description="The bag: .zip, .tar or .tar.gz")],
) -> Any:
    require_archive(staff, archive)
    try:
        accepted = await run_in_threadpool(
            receive_bag, settings, archive, file.file, file.filename, actor=staff.login
        )
    except BadArgument as exc:
        raise refused(exc) from None
    except UploadTooLarge as exc:
        raise refused(exc, 413) from None
    if accepted.duplicate_of:
        return JSONResponse(accepted.as_dict(), status_code=200)
    return accepted.as_dict()
