"""The staff JSON API of opening review (开放审核) and description, under ``/api/v1``.

Who may call what is decided in :mod:`access_portal.staff`, by its rules: any staff role reads, admins and
the archive's archivists decide and edit (an auditor: 403); an archive named in the request (``?archive=``,
the path of a decision or an edit) outside the person's scope is a 403 whether or not anything exists there;
a review found by its id, or a record's history, of another archive is a 404, the same as a missing one. The handlers call
:mod:`archive.review` and :mod:`archive.describe`; each decision or edit is indexed right after its commit
(:func:`search.index_records`), so the public search follows within the request.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from access_portal.deps import BackendDep, SettingsDep
from access_portal.routes.staff import refused
from access_portal.staff import (
    TOKEN_RESPONSES,
    ActorDep,
    ReaderDep,
    check_read,
    readable_archives,
    require_archive,
    require_archive_read,
)
from archive import db, describe, review
from archive.errors import BadArgument, Conflict, InvalidMetadata, NotFound, UnknownArchive
from search import index_records

router = APIRouter(
    prefix="/api/v1",
    tags=["opening review"],
    responses={
        **TOKEN_RESPONSES,
        404: {"description": "No such review or record, or one of an archive outside your scope"},
    },
)


class ReviewOut(BaseModel):
    id: int
    record: str
    archive: str
    archival_code: str
    title: str
    date: str | None
    access_status: str
    why: Literal["age", "manual", "scheduled"]
    state: Literal["scheduled", "pending", "decided"]
    since: str
    due_on: str
    requested_by: str
    note: str | None
    office: str | None
    office_opinion: str | None
    office_opinion_on: str | None
    decided_at: str | None
    decided_by: str | None
    decision: str | None
    decision_reason: str | None
    next_review_on: str | None


class ReviewListOut(BaseModel):
    reviews: list[ReviewOut]


#: review ids are database integers: anything larger cannot exist (and must not reach the driver)
MAX_ID = 2**31 - 1
ReviewId = Annotated[int, Path(ge=1, le=MAX_ID)]


class DecisionIn(BaseModel):
    review_id: int = Field(ge=1, le=MAX_ID)
    status: Literal["open", "restricted"]
    reason: str = Field(min_length=1, max_length=review.MAX_REASON)
    review_on: dt.date | None = Field(default=None, description="Restricted: the next review's date")
    office: str | None = Field(default=None, max_length=review.MAX_OFFICE, description="Joint review: office")
    office_opinion: str | None = Field(default=None, max_length=review.MAX_REASON)
    office_opinion_on: dt.date | None = None


class DecisionsIn(BaseModel):
    decisions: list[DecisionIn] = Field(min_length=1, max_length=review.MAX_BATCH)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "decisions": [
                        {"review_id": 1, "status": "open", "reason": "无密级、无限制，满25年开放"},
                        {
                            "review_id": 2,
                            "status": "restricted",
                            "reason": "涉及个人隐私",
                            "review_on": "2031-12-01",
                            "office": "广州市规划局",
                            "office_opinion": "建议暂缓开放",
                            "office_opinion_on": "2026-11-20",
                        },
                    ]
                }
            ]
        }
    }


class DecisionOut(BaseModel):
    review: int | None
    record: str
    access_status: str
    changed: bool
    reason: str | None
    review_on: str | None


class DecisionsOut(BaseModel):
    decisions: list[DecisionOut]


class OpinionIn(BaseModel):
    office: str = Field(min_length=1, max_length=review.MAX_OFFICE)
    opinion: str = Field(min_length=1, max_length=review.MAX_REASON)
    given_on: dt.date | None = None


class PutUpIn(BaseModel):
    note: str | None = Field(default=None, max_length=review.MAX_REASON)
    due_on: dt.date | None = None


class PutUpOut(ReviewOut):
    created: bool


class MetadataIn(BaseModel):
    title: str | None = Field(default=None, max_length=describe.LIMITS["title"])
    creator: str | None = Field(default=None, max_length=describe.LIMITS["creator"])
    description: str | None = Field(default=None, max_length=describe.LIMITS["description"])
    keywords: list[str] | None = Field(default=None, max_length=describe.MAX_KEYWORDS)
    date: str | None = Field(default=None, max_length=describe.LIMITS["date"])

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [{"title": "关于珠江堤防加固的报告", "keywords": ["堤防", "水利"]}]
        },
    }


class MetadataOut(BaseModel):
    record: str
    version: str
    changes: dict[str, Any]


class VersionOut(BaseModel):
    version: str
    created: str | None
    who: str | None
    message: str | None
    changes: dict[str, Any] | None
    event: str | None


class HistoryOut(BaseModel):
    record: str
    object_id: str
    head: str
    versions: list[VersionOut]


@router.get("/reviews", response_model=ReviewListOut, summary="The opening-review queue you may see")
def list_reviews(
    staff: ReaderDep,
    settings: SettingsDep,
    archive: Annotated[
        list[str] | None, Query(description="Only these archives' reviews", max_length=20)
    ] = None,
    state: Annotated[Literal["pending", "scheduled", "decided"], Query()] = "pending",
    why: Annotated[Literal["age", "manual", "scheduled"] | None, Query()] = None,
    due_by: Annotated[dt.date | None, Query(description="Due on or before this day")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    for code in archive or []:
        require_archive_read(staff, code)
    wanted = archive if archive else readable_archives(staff)
    with db.read_session(settings) as s:
        rows = review.list_reviews(s, wanted, state=state, why=why, due_by=due_by, limit=limit, offset=offset)
        return {"reviews": [review.review_summary(r) for r in rows]}


@router.get("/reviews/{review_id}", response_model=ReviewOut, summary="One opening review")
def get_review(review_id: ReviewId, staff: ReaderDep, settings: SettingsDep) -> Any:
    with db.read_session(settings) as s:
        return review.review_summary(review.get_review(s, review_id, staff.may_read))


@router.post(
    "/reviews/decisions",
    response_model=DecisionsOut,
    summary="Decide pending reviews, one or a batch, all or none (archivist of their archives, or admin)",
)
def decide(body: DecisionsIn, staff: ActorDep, settings: SettingsDep, backend: BackendDep) -> Any:
    items = [review.Decision(**d.model_dump()) for d in body.decisions]
    try:
        with db.write_session(settings) as s:
            results = review.decide(
                s,
                items,
                actor=staff.login,
                may_act=staff.may_act_for,
                open_after_years=settings.open_after_years,
            )
    except (BadArgument, InvalidMetadata) as exc:
        raise refused(exc) from None
    except Conflict as exc:
        raise refused(exc, 409) from None
    index_records(settings, backend, [r["record_id"] for r in results])
    return {"decisions": results}


@router.post(
    "/reviews/{review_id}/opinion",
    response_model=ReviewOut,
    summary="Record the transferring office's opinion on a pending review (joint review)",
)
def opinion(review_id: ReviewId, body: OpinionIn, staff: ActorDep, settings: SettingsDep) -> Any:
    try:
        with db.write_session(settings) as s:
            row = review.get_review(s, review_id, staff.may_act_for)
            review.record_opinion(
                s, row, office=body.office, opinion=body.opinion, given_on=body.given_on, actor=staff.login
            )
            return review.review_summary(row)
    except InvalidMetadata as exc:
        raise refused(exc) from None
    except Conflict as exc:
        raise refused(exc, 409) from None


@router.post(
    "/records/{archive}/{code}/review",
    response_model=PutUpOut,
    summary="Put a record up for opening review (201; 200 if it is already in the queue)",
)
def put_up(
    archive: str, code: str, body: PutUpIn, staff: ActorDep, settings: SettingsDep, response: Response
) -> Any:
    require_archive(staff, archive)
    try:
        with db.write_session(settings) as s:
            row, created = review.put_up(
                s, archive, code, actor=staff.login, note=body.note, due_on=body.due_on
            )
            result = {**review.review_summary(row), "created": created}
    except UnknownArchive:
        raise NotFound() from None
    except InvalidMetadata as exc:
        raise refused(exc) from None
    response.status_code = 201 if created else 200
    return result


@router.put(
    "/records/{archive}/{code}/metadata",
    response_model=MetadataOut,
    summary="Edit a record's descriptive metadata: a new OCFL version and an event",
)
def edit_metadata(
    archive: str,
    code: str,
    body: MetadataIn,
    staff: ActorDep,
    settings: SettingsDep,
    backend: BackendDep,
) -> Any:
    require_archive(staff, archive)
    try:
        result = describe.edit_metadata(
            settings, archive, code, body.model_dump(exclude_unset=True), actor=staff.login
        )
    except UnknownArchive:
        raise NotFound() from None
    except InvalidMetadata as exc:
        raise refused(exc) from None
    except Conflict as exc:
        raise refused(exc, 409) from None
    index_records(settings, backend, [result["record_id"]])
    return result


@router.get(
    "/records/{archive}/{code}/history",
    response_model=HistoryOut,
    summary="The versions of a record's object: who, when, what each metadata edit changed",
)
def history(archive: str, code: str, staff: ReaderDep, settings: SettingsDep) -> Any:
    check_read(staff, archive)
    try:
        return describe.metadata_history(settings, archive, code)
    except UnknownArchive:
        raise NotFound() from None
