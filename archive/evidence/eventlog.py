"""The event log as auditors read it: filtered by record, type, agent and time, newest first, in pages.

    page = find_events(session, EventFilter(record=record_id, event_type="migration"), archive_ids=None)

``archive_ids`` limits the log to the events about records of those archives (an archivist's scope); None
means the whole log (admin, auditor).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.events import timestamp
from archive.models import Archive, Event, Record

PAGE = 100


@dataclass
class EventFilter:
    record_id: int | None = None
    event_type: str | None = None
    agent: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None  # the page after the one that ended at this event


def find_events(
    session: Session, wanted: EventFilter, *, archive_ids: list[int] | None = None, limit: int = PAGE
) -> list[Event]:
    q = select(Event)
    if wanted.record_id is not None:
        q = q.where(Event.record_id == wanted.record_id)
    if wanted.event_type:
        q = q.where(Event.event_type == wanted.event_type)
    if wanted.agent:
        q = q.where(Event.agent == wanted.agent)
    if wanted.since is not None:
        q = q.where(Event.occurred_at >= wanted.since)
    if wanted.until is not None:
        q = q.where(Event.occurred_at < wanted.until)
    if wanted.before_id is not None:
        q = q.where(Event.id < wanted.before_id)
    if archive_ids is not None:
        q = q.join(Record, Record.id == Event.record_id).where(Record.archive_id.in_(archive_ids))
    return list(session.execute(q.order_by(Event.id.desc()).limit(limit)).scalars())


def archive_ids(session: Session, codes: list[str]) -> list[int]:
    return list(session.execute(select(Archive.id).where(Archive.code.in_(codes))).scalars())


def event_types(session: Session) -> list[str]:
    return sorted(session.execute(select(Event.event_type).distinct()).scalars())


def event_row(ev: Event) -> dict[str, Any]:
    return {
        "id": ev.id,
        "identifier": ev.identifier,
        "event_type": ev.event_type,
        "occurred_at": timestamp(ev.occurred_at),
        "outcome": ev.outcome,
        "detail": ev.detail,
        "outcome_detail": ev.outcome_detail or {},
        "agent": ev.agent,
        "object_type": ev.object_type,
        "object_id": ev.object_id,
        "transfer_id": ev.transfer_id,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }
