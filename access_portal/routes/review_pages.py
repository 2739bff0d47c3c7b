"""The workspace's opening-review and record pages: ``/staff/reviews`` (the queue, filters, batch decisions)
and ``/staff/records/{archive}/{code}`` (the record, its edit form, history and access decisions).

The same rules as the review API (:mod:`access_portal.routes.reviews`), through the page dependencies of
:mod:`access_portal.staff`: any staff role sees, admins and the archive's archivists decide and edit (an
auditor: the 403 page), another archive's record is the 404 page, naming another archive in a filter is the
403 page. Every form carries the session's CSRF token (checked app-wide before the handler). A change
answers 303 back to the page (post/redirect/get); a refused one re-renders the page with its coded reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from access_portal.deps import BackendDep, SettingsDep, get_limits
from access_portal.i18n import resolve_lang, translator
from access_portal.routes.staff_pages import render_staff
from access_portal.staff import (
    ActorPageDep,
    StaffPageDep,
    check_read,
    readable_archives,
    require_archive,
    require_archive_read,
)
from archive import db, describe, review, services
from archive.accounts import Staff
from archive.config import Settings
from archive.errors import ArchiveError, InvalidMetadata, NotFound, UnknownArchive
from archive.events import ACCESS_DECISION
from archive.models import Event, Review, ReviewState
from search import SearchBackend, index_records

router = APIRouter(prefix="/staff", dependencies=[Depends(get_limits)], include_in_schema=False)

OptionalText = Annotated[str, Form(max_length=review.MAX_REASON)]


def _date(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidMetadata(variant="date", value=text) from None


def _message(request: Request, exc: ArchiveError) -> str:
    return f"{exc.code} " + (exc.zh if resolve_lang(request) == "zh" else exc.en)


def _queue_page(
    request: Request,
    staff: Staff,
    settings: Settings,
    *,
    archive: str | None,
    state: str,
    why: str | None,
    error: str | None = None,
    done: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    if archive:
        require_archive_read(staff, archive)
    wanted = [archive] if archive else readable_archives(staff)
    with db.read_session(settings) as s:
        rows = [
            {**review.review_summary(r), "may_act": staff.may_act_for(r.record.archive.code)}
            for r in review.list_reviews(s, wanted, state=state, why=why, limit=500)
        ]
        archives = [a["code"] for a in services.list_archives(s) if wanted is None or a["code"] in wanted]
    return render_staff(
        request,
        "staff/reviews.html",
        {
            "nav": "reviews",
            "rows": rows,
            "archives": archives,
            "archive": archive or "",
            "state": state,
            "why": why or "",
            "error": error,
            "done": done,
            "may_decide": any(r["may_act"] for r in rows),
        },
        status_code,
    )


@router.get("/reviews", response_class=HTMLResponse)
def reviews_page(
    request: Request,
    staff: StaffPageDep,
    settings: SettingsDep,
    archive: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str, Query(pattern="^(pending|scheduled|decided)$")] = "pending",
    why: Annotated[str | None, Query(pattern="^(age|manual|scheduled)?$")] = None,
    done: Annotated[int | None, Query(ge=0, le=review.MAX_BATCH)] = None,
) -> Response:
    return _queue_page(
        request, staff, settings, archive=archive or None, state=state, why=why or None, done=done
    )


@router.post("/reviews/decide", response_class=HTMLResponse)
def decide_page(
    request: Request,
    staff: ActorPageDep,
    settings: SettingsDep,
    backend: BackendDep,
    status: Annotated[str, Form(max_length=16)] = "",
    reason: OptionalText = "",
    review_on: Annotated[str, Form(max_length=16)] = "",
    office: Annotated[str, Form(max_length=review.MAX_OFFICE)] = "",
    office_opinion: OptionalText = "",
    office_opinion_on: Annotated[str, Form(max_length=16)] = "",
    review_id: Annotated[list[int] | None, Form()] = None,
) -> Response:
    ids = [i for i in review_id or [] if 0 < i < 2**31]

    def refused(error: str) -> HTMLResponse:
        return _queue_page(
            request, staff, settings, archive=None, state="pending", why=None, error=error, status_code=422
        )

    if not ids:
        return refused(translator(resolve_lang(request))("decision_none_selected"))
    try:
        items = [
            review.Decision(
                i,
                status,
                reason,
                _date(review_on),
                office or None,
                office_opinion or None,
                _date(office_opinion_on),
            )
            for i in ids
        ]
        with db.write_session(settings) as s:
            results = review.decide(
                s,
                items,
                actor=staff.login,
                may_act=staff.may_act_for,
                open_after_years=settings.open_after_years,
            )
    except ArchiveError as exc:
        return refused(_message(request, exc))
    index_records(settings, backend, [r["record_id"] for r in results])
    return RedirectResponse("/staff/reviews?" + urlencode({"done": len(results)}), status_code=303)


def _record_page(
    request: Request,
    staff: Staff,
    settings: Settings,
    archive: str,
    code: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    check_read(staff, archive)
    try:
        history = describe.metadata_history(settings, archive, code)
    except UnknownArchive:
        raise NotFound() from None
    with db.read_session(settings) as s:
        record = services.get_record(s, archive, code)
        detail = services.record_detail(record)
        open_review = s.execute(
            select(Review).where(Review.record_id == record.id, Review.state != ReviewState.decided)
        ).scalar_one_or_none()
        decisions = [
            {
                "when": e.occurred_at.isoformat(timespec="minutes"),
                "who": e.agent,
                "before": (e.outcome_detail or {}).get("before"),
                "status": (e.outcome_detail or {}).get("status"),
                "reason": (e.outcome_detail or {}).get("staff_reason")
                or (e.outcome_detail or {}).get(
                    "reason_zh" if resolve_lang(request) == "zh" else "reason_en"
                ),
            }
            for e in s.execute(
                select(Event)
                .where(Event.record_id == record.id, Event.event_type == ACCESS_DECISION)
                .order_by(Event.id.desc())
            ).scalars()
        ]
        in_review = {"id": open_review.id, "state": open_review.state} if open_review else None
    return render_staff(
        request,
        "staff/record.html",
        {
            "nav": "reviews",
            "r": detail,
            "history": history["versions"],
            "decisions": decisions,
            "in_review": in_review,
            "may_act": staff.may_act_for(archive),
            "notice": notice,
            "error": error,
        },
        status_code,
    )


@router.get("/records/{archive}/{code}", response_class=HTMLResponse)
def record_page(
    request: Request,
    archive: str,
    code: str,
    staff: StaffPageDep,
    settings: SettingsDep,
    saved: Annotated[str | None, Query(max_length=16)] = None,
    done: Annotated[str | None, Query(pattern="^(review|access)$")] = None,
) -> Response:
    t = translator(resolve_lang(request))
    notice = t("edit_saved", version=saved) if saved else None
    if done:
        notice = t("put_up_done") if done == "review" else t("access_changed")
    return _record_page(request, staff, settings, archive, code, notice=notice)


def _back(archive: str, code: str, **query: str) -> RedirectResponse:
    path = f"/staff/records/{quote(archive, safe='')}/{quote(code, safe='')}"
    return RedirectResponse(path + ("?" + urlencode(query) if query else ""), status_code=303)


#: What a record form's change answers: the query of the record page to go back to, and the id of the record
#: to re-index (None: nothing the index holds changed).
Changed = tuple[dict[str, str], int | None]


def _record_form(
    request: Request,
    staff: Staff,
    settings: Settings,
    backend: SearchBackend | None,
    archive: str,
    code: str,
    change: Callable[[], Changed],
) -> Response:
    """One record form's post: the archive checked, ``change`` made, the record re-indexed, then 303 back to
    the record's page. A refused change re-renders the page with its coded reason (422); an unknown archive
    or record is the 404 page."""
    require_archive(staff, archive)
    try:
        query, record_id = change()
    except UnknownArchive:
        raise NotFound() from None
    except NotFound:
        raise
    except ArchiveError as exc:
        return _record_page(
            request, staff, settings, archive, code, error=_message(request, exc), status_code=422
        )
    if record_id is not None and backend is not None:
        index_records(settings, backend, [record_id])
    return _back(archive, code, **query)


@router.post("/records/{archive}/{code}/metadata", response_class=HTMLResponse)
def edit_page(
    request: Request,
    archive: str,
    code: str,
    staff: ActorPageDep,
    settings: SettingsDep,
    backend: BackendDep,
    title: Annotated[str, Form(max_length=describe.LIMITS["title"] + 1)] = "",
    creator: Annotated[str, Form(max_length=describe.LIMITS["creator"] + 1)] = "",
    description: Annotated[str, Form(max_length=describe.LIMITS["description"] + 1)] = "",
    keywords: Annotated[str, Form(max_length=describe.MAX_KEYWORDS * (describe.MAX_KEYWORD + 1))] = "",
    date: Annotated[str, Form(max_length=describe.LIMITS["date"] + 1)] = "",
) -> Response:
    wanted: dict[str, Any] = {
        "title": title,
        "creator": creator,
        "description": description,
        "keywords": keywords,
        "date": date,
    }

    def edit() -> Changed:
        with db.read_session(settings) as s:
            current = describe.current_fields(services.get_record(s, archive, code))
        changes = {k: v for k, v in wanted.items() if describe.clean_changes({k: v})[k] != current[k]}
        result = describe.edit_metadata(settings, archive, code, changes, actor=staff.login)
        return {"saved": result["version"]}, result["record_id"]

    return _record_form(request, staff, settings, backend, archive, code, edit)


@router.post("/records/{archive}/{code}/review", response_class=HTMLResponse)
def put_up_page(
    request: Request,
    archive: str,
    code: str,
    staff: ActorPageDep,
    settings: SettingsDep,
    note: OptionalText = "",
) -> Response:
    def put_up() -> Changed:
        with db.write_session(settings) as s:
            review.put_up(s, archive, code, actor=staff.login, note=note or None)
        return {"done": "review"}, None

    return _record_form(request, staff, settings, None, archive, code, put_up)


@router.post("/records/{archive}/{code}/access", response_class=HTMLResponse)
def access_page(
    request: Request,
    archive: str,
    code: str,
    staff: ActorPageDep,
    settings: SettingsDep,
    backend: BackendDep,
    status: Annotated[str, Form(max_length=16)] = "",
    reason: OptionalText = "",
    review_on: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    def decide() -> Changed:
        with db.write_session(settings) as s:
            result = review.decide_record(
                s,
                archive,
                code,
                status,
                reason=reason,
                review_on=_date(review_on),
                actor=staff.login,
                open_after_years=settings.open_after_years,
            )
        return {"done": "access"}, result["record_id"]

    return _record_form(request, staff, settings, backend, archive, code, decide)
