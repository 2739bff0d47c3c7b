"""Opening review (开放审核, Archives Law art. 27 and 30) and the daily re-decision of ``auto`` records.

A record enters the review queue (a :class:`~archive.models.Review` row, state ``pending``):

* **by age** — an ``auto`` record's 25 years arrive under an archive whose policy (``Archive.on_age``,
  ``archive archives policy CODE --on-age review``) says "review first" (:func:`redecide`);
* **by hand** — an archivist puts it up for review (:func:`put_up`);
* **by date** — an earlier decision kept it restricted with a date for the next review: that decision left
  a ``scheduled`` review, which :func:`redecide` makes ``pending`` on its due date.

A decision (:func:`decide`, one or a batch; :func:`decide_record` for ``archive access set`` and the staff
API's access route) goes through :func:`archive.services.set_access`: the record's status, a PREMIS
``policy assignment`` event whose agent is the person, and an index outbox row, in the caller's
transaction. The caller indexes the records right after the commit (the portal does, see
``access_portal/routes/reviews.py``). A mistaken opening is corrected by a new decision: reviews and events
are never changed or removed, only added.

:func:`redecide` is the daily schedule's job (and ``archive access redecide``): it walks the ``auto`` records
still restricted whose date has come, in batches by id (bounded memory, one transaction per batch), and
opens each by the same rule and event as at ingest — or queues it under "review first". It only ever opens or
queues: it never closes a record, and a record with an open review is left to that review. Running it twice
on the same day changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from archive import db
from archive.access import decide_access
from archive.config import Settings
from archive.errors import BadArgument, InvalidMetadata, ReviewNotPending, UnknownReview
from archive.events import REVIEW, NewEvent, append_events
from archive.models import Archive, Record, Review, ReviewState, ReviewWhy, utcnow
from archive.services import AGENT, STAFF_STATUSES, get_archive, get_record, set_access

POLICIES = ("open", "review")
MAX_BATCH = 500
MAX_REASON = 2000
MAX_OFFICE = 255


def has_control(text: str) -> bool:
    """Control characters other than tab and newlines (NUL cannot even be stored by PostgreSQL)."""
    return any((ord(c) < 32 and c not in "\t\r\n") or c == "\x7f" for c in text)


def _check_text(value: str | None, name: str, limit: int, *, required: bool = False) -> str | None:
    text = (value or "").strip()
    if has_control(text):
        raise InvalidMetadata(variant="control", field=name)
    if required and not text:
        raise InvalidMetadata(variant="empty", field=name)
    if len(text) > limit:
        raise InvalidMetadata(variant="too_long", field=name, limit=limit)
    return text or None


# -- policy -------------------------------------------------------------------------------------------------


def set_policy(session: Session, archive: str, on_age: str, *, actor: str) -> bool:
    """Set what happens when an ``auto`` record of ``archive`` reaches its 25 years; an event. Returns
    whether the policy changed."""
    if on_age not in POLICIES:
        raise InvalidMetadata(variant="policy", value=on_age)
    arch = get_archive(session, archive)
    before = arch.on_age
    arch.on_age = on_age
    append_events(
        session,
        [
            NewEvent(
                event_type=REVIEW,
                outcome="success",
                agent=actor,
                object_type="archive",
                object_id=arch.code,
                detail=f"on-age policy {before} -> {on_age}",
                outcome_detail={"before": before, "on_age": on_age, "agent_type": "person"},
            )
        ],
    )
    return before != on_age


# -- the queue ----------------------------------------------------------------------------------------------


def _ref(record: Record) -> str:
    return f"{record.archive.code}/{record.archival_code}"


def _open_review(session: Session, record_id: int) -> Review | None:
    return session.execute(
        select(Review).where(Review.record_id == record_id, Review.state != ReviewState.decided)
    ).scalar_one_or_none()


def _queue_event(review: Review, record: Record, actor: str, agent_type: str) -> NewEvent:
    return NewEvent(
        event_type=REVIEW,
        outcome="success",
        agent=actor,
        object_type="record",
        object_id=_ref(record),
        record_id=record.id,
        detail=f"opening review #{review.id} queued ({review.why}), due {review.due_on.isoformat()}"
        + (f": {review.note}" if review.note else ""),
        outcome_detail={
            "review": review.id,
            "why": review.why,
            "due_on": review.due_on.isoformat(),
            **({"agent_type": agent_type} if agent_type != "software" else {}),
        },
    )


def put_up(
    session: Session,
    archive: str,
    code: str,
    *,
    actor: str,
    note: str | None = None,
    due_on: dt.date | None = None,
    today: dt.date | None = None,
) -> tuple[Review, bool]:
    """Put a record up for review by hand. A record already in the queue keeps its review (returned with
    ``False``); a scheduled one comes forward into the queue now."""
    note = _check_text(note, "note", MAX_REASON)
    today = today or dt.date.today()
    record = get_record(session, archive, code)
    review = _open_review(session, record.id)
    if review is not None and review.state == ReviewState.pending:
        return review, False
    if review is None:
        review = Review(record_id=record.id, archive_id=record.archive_id, requested_by=actor)
        session.add(review)
    review.why, review.state, review.since = ReviewWhy.manual, ReviewState.pending, utcnow()
    review.due_on, review.note, review.requested_by = due_on or today, note, actor
    session.flush()
    append_events(session, [_queue_event(review, record, actor, "person")])
    return review, True


def list_reviews(
    session: Session,
    archives: Sequence[str] | None = None,
    *,
    state: str | None = ReviewState.pending,
    why: str | None = None,
    due_by: dt.date | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Review]:
    """Reviews of ``archives`` (codes; None for all), in the order they fall due."""
    query = (
        select(Review)
        .options(selectinload(Review.record).selectinload(Record.archive))
        .order_by(Review.due_on, Review.id)
    )
    if archives is not None:
        codes = [a for a in archives if "\x00" not in a]  # no code has one; PostgreSQL refuses NUL
        query = query.join(Archive, Review.archive_id == Archive.id).where(Archive.code.in_(codes))
    if state:
        query = query.where(Review.state == state)
    if why:
        query = query.where(Review.why == why)
    if due_by:
        query = query.where(Review.due_on <= due_by)
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


def get_review(session: Session, review_id: int, may_see: Callable[[str], bool] | None = None) -> Review:
    """The review ``review_id``; one of an archive ``may_see`` refuses is as missing (:class:`UnknownReview`)."""
    review = session.execute(
        select(Review)
        .options(selectinload(Review.record).selectinload(Record.archive))
        .where(Review.id == review_id)
    ).scalar_one_or_none()
    if review is None or (may_see is not None and not may_see(review.record.archive.code)):
        raise UnknownReview(review_id)
    return review


def review_summary(review: Review) -> dict[str, Any]:
    record = review.record
    return {
        "id": review.id,
        "record": _ref(record),
        "archive": record.archive.code,
        "archival_code": record.archival_code,
        "title": record.title,
        "date": record.date_text,
        "access_status": record.access_status,
        "why": review.why,
        "state": review.state,
        "since": review.since.isoformat(),
        "due_on": review.due_on.isoformat(),
        "requested_by": review.requested_by,
        "note": review.note,
        "office": review.office,
        "office_opinion": review.office_opinion,
        "office_opinion_on": review.office_opinion_on.isoformat() if review.office_opinion_on else None,
        "decided_at": review.decided_at.isoformat() if review.decided_at else None,
        "decided_by": review.decided_by,
        "decision": review.decision,
        "decision_reason": review.decision_reason,
        "next_review_on": review.next_review_on.isoformat() if review.next_review_on else None,
    }


def record_opinion(
    session: Session,
    review: Review,
    *,
    office: str,
    opinion: str,
    given_on: dt.date | None,
    actor: str,
    today: dt.date | None = None,
) -> None:
    """Record the transferring office's opinion on a pending review (joint review, 联合审核); an event."""
    if review.state != ReviewState.pending:
        raise ReviewNotPending(review.id, review.state)
    review.office = _check_text(office, "office", MAX_OFFICE, required=True)
    review.office_opinion = _check_text(opinion, "opinion", MAX_REASON, required=True)
    review.office_opinion_on = given_on or today or dt.date.today()
    record = review.record
    append_events(
        session,
        [
            NewEvent(
                event_type=REVIEW,
                outcome="success",
                agent=actor,
                object_type="record",
                object_id=_ref(record),
                record_id=record.id,
                detail=f"opening review #{review.id}: opinion of {review.office}: {review.office_opinion}",
                outcome_detail={
                    "review": review.id,
                    "office": review.office,
                    "opinion": review.office_opinion,
                    "given_on": review.office_opinion_on.isoformat(),
                    "agent_type": "person",
                },
            )
        ],
    )


# -- decisions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """One decision of a batch: open, or keep restricted with a reason (and a date for the next review)."""

    review_id: int
    status: str
    reason: str
    review_on: dt.date | None = None
    office: str | None = None
    office_opinion: str | None = None
    office_opinion_on: dt.date | None = None


def _check_decision(status: str, reason: str, review_on: dt.date | None, today: dt.date) -> str:
    if status not in STAFF_STATUSES:
        raise BadArgument(variant="staff_status", status=status)
    if not reason.strip():
        raise BadArgument(variant="reason_required")
    text = _check_text(reason, "reason", MAX_REASON, required=True)
    if review_on is not None and review_on <= today:
        raise InvalidMetadata(variant="review_on", value=review_on.isoformat())
    assert text is not None
    return text


def _apply(
    session: Session,
    record: Record,
    review: Review | None,
    status: str,
    reason: str,
    review_on: dt.date | None,
    *,
    actor: str,
    today: dt.date,
    open_after_years: int,
) -> dict[str, Any]:
    """Decide ``record`` (closing ``review``, its open review, if any) and schedule the next review."""
    extra: dict[str, Any] = {}
    if review is not None:
        extra["review"] = review.id
        if review.office:
            extra["joint_review"] = {
                "office": review.office,
                "opinion": review.office_opinion,
                "given_on": review.office_opinion_on.isoformat() if review.office_opinion_on else None,
            }
    changed = set_access(
        session,
        record,
        status,
        today=today,
        open_after_years=open_after_years,
        agent=actor,
        agent_type="person",
        note=(f"opening review #{review.id}: " if review else "") + reason,
        reason=reason,
        review_on=review_on,
        extra=extra,
    )
    if review is not None:
        review.state, review.decided_at, review.decided_by = ReviewState.decided, utcnow(), actor
        review.decision, review.decision_reason = record.access_status, reason
        review.next_review_on = review_on if record.access_status == "restricted" else None
        session.flush()  # the record's open review is closed before the next one is scheduled
    if review_on is not None and record.access_status == "restricted":
        session.add(
            Review(
                record_id=record.id,
                archive_id=record.archive_id,
                why=ReviewWhy.scheduled,
                state=ReviewState.scheduled,
                due_on=review_on,
                requested_by=actor,
                note=reason,
            )
        )
        session.flush()
    return {
        "review": review.id if review else None,
        "record": _ref(record),
        "record_id": record.id,
        "access_status": record.access_status,
        "changed": changed,
        "reason": record.access_reason,
        "review_on": record.access_review_on.isoformat() if record.access_review_on else None,
    }


def decide(
    session: Session,
    decisions: Sequence[Decision],
    *,
    actor: str,
    may_act: Callable[[str], bool] | None = None,
    open_after_years: int = 25,
    today: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Decide pending reviews, all or none (one transaction, the caller's): each an access decision
    (an event whose agent is ``actor``). A review of an archive ``may_act`` refuses is as missing."""
    if len(decisions) > MAX_BATCH:
        raise InvalidMetadata(variant="batch", limit=MAX_BATCH)
    today = today or dt.date.today()
    results = []
    for item in decisions:
        reason = _check_decision(item.status, item.reason, item.review_on, today)
        review = get_review(session, item.review_id, may_act)
        if review.state != ReviewState.pending:
            raise ReviewNotPending(review.id, review.state)
        if item.office or item.office_opinion:
            record_opinion(
                session,
                review,
                office=item.office or "",
                opinion=item.office_opinion or "",
                given_on=item.office_opinion_on,
                actor=actor,
                today=today,
            )
        results.append(
            _apply(
                session,
                review.record,
                review,
                item.status,
                reason,
                item.review_on,
                actor=actor,
                today=today,
                open_after_years=open_after_years,
            )
        )
    return results


def decide_record(
    session: Session,
    archive: str,
    code: str,
    status: str,
    *,
    reason: str,
    review_on: dt.date | None,
    actor: str,
    open_after_years: int = 25,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """A staff decision on one record (``archive access set``, the staff API's access route): decides the
    record's open review too, if it has one, and schedules the next review when ``review_on`` is given."""
    today = today or dt.date.today()
    reason = _check_decision(status, reason, review_on, today)
    record = get_record(session, archive, code)
    review = _open_review(session, record.id)
    if review is not None and review.state == ReviewState.scheduled:
        review.state, review.decided_at, review.decided_by = ReviewState.decided, utcnow(), actor
        review.decision_reason = "superseded by a new decision"
        session.flush()
        review = None
    return _apply(
        session,
        record,
        review,
        status,
        reason,
        review_on,
        actor=actor,
        today=today,
        open_after_years=open_after_years,
    )


# -- the daily re-decision ----------------------------------------------------------------------------------


@dataclass
class RedecideCounts:
    today: dt.date
    checked: int = 0
    opened: int = 0
    queued: int = 0
    scheduled_due: int = 0
    record_ids: list[int] = field(default_factory=list)  # whose public view may have changed

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "checked": self.checked,
            "opened": self.opened,
            "queued": self.queued,
            "scheduled_due": self.scheduled_due,
        }


def _redecide_batch(
    session: Session, records: Sequence[Record], today: dt.date, years: int, counts: RedecideCounts
) -> None:
    open_ids = set(
        session.execute(
            select(Review.record_id).where(
                Review.record_id.in_([r.id for r in records]), Review.state != ReviewState.decided
            )
        ).scalars()
    )
    for record in records:
        counts.checked += 1
        if record.id in open_ids:
            continue  # the review decides it
        decision = decide_access(
            requested="auto",
            security_class=record.security_class,
            date_end=record.date_end,
            today=today,
            open_after_years=years,
        )
        if decision.status != "open":
            continue
        if record.archive.on_age == "review":
            review = Review(
                record_id=record.id,
                archive_id=record.archive_id,
                why=ReviewWhy.age,
                state=ReviewState.pending,
                due_on=decision.review_on or today,
                requested_by=AGENT,
            )
            session.add(review)
            session.flush()
            append_events(session, [_queue_event(review, record, AGENT, "software")])
            counts.queued += 1
        else:
            set_access(session, record, "auto", today=today, open_after_years=years)
            counts.opened += 1
            counts.record_ids.append(record.id)


def redecide(settings: Settings, today: dt.date | None = None, *, batch: int = 500) -> RedecideCounts:
    """Re-decide the ``auto`` records still restricted whose 25 years have come, and bring scheduled reviews
    that fell due into the queue. Idempotent; opens or queues, never closes."""
    today = today or dt.date.today()
    years = settings.open_after_years
    counts = RedecideCounts(today)
    after = 0
    while True:
        with db.write_session(settings) as s:
            records = list(
                s.execute(
                    select(Record)
                    .options(selectinload(Record.archive))
                    .where(
                        Record.id > after,
                        Record.access_requested == "auto",
                        Record.access_status == "restricted",
                        Record.access_review_on.is_not(None),
                        Record.access_review_on <= today,
                    )
                    .order_by(Record.id)
                    .limit(batch)
                ).scalars()
            )
            if not records:
                break
            after = records[-1].id
            _redecide_batch(s, records, today, years, counts)
    after = 0
    while True:
        with db.write_session(settings) as s:
            due = list(
                s.execute(
                    select(Review)
                    .options(selectinload(Review.record).selectinload(Record.archive))
                    .where(
                        Review.id > after,
                        Review.state == ReviewState.scheduled,
                        Review.due_on <= today,
                    )
                    .order_by(Review.id)
                    .limit(batch)
                ).scalars()
            )
            if not due:
                break
            after = due[-1].id
            for review in due:
                review.state, review.since = ReviewState.pending, utcnow()
                append_events(s, [_queue_event(review, review.record, AGENT, "software")])
                counts.scheduled_due += 1
    return counts
