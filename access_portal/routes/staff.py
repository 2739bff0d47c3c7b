"""The staff JSON API under ``/api/v1``: transfers and access decisions, behind bearer tokens with roles.

Who may call what is decided in :mod:`access_portal.staff`; the handlers call service functions of
:mod:`archive.services`. Every change is a PREMIS event whose agent is the person the token belongs to.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from access_portal.deps import SettingsDep
from access_portal.schemas import ErrorOut
from access_portal.staff import (
    ActorDep,
    ReaderDep,
    check_read,
    readable_archives,
    require_archive,
    require_archive_read,
)
from archive import db, services
from archive.errors import NotFound, UnknownArchive

router = APIRouter(
    prefix="/api/v1",
    tags=["staff"],
    responses={
        401: {"description": "No token, or an unknown, expired or revoked one (application/problem+json)"},
        403: {"description": "A role or an archive the token's person may not act for"},
        404: {"model": ErrorOut},
    },
)


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
)
def change_access(
    archive: str, code: str, body: AccessChangeIn, staff: ActorDep, settings: SettingsDep
) -> Any:
    require_archive(staff, archive)
    with db.write_session(settings) as s:
        try:
            return services.staff_set_access(
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
            raise NotFound("未找到", "Not Found") from None


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
            k: summary[k] for k in ("id", "status", "archive", "bag", "started_at", "finished_at", "problems")
        },
        "records": records,
    }
