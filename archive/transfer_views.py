"""The staff workspace's view of transfers: a filtered list with its totals, and who handed each one in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from archive.models import Archive, Event, Transfer

#: The event a transfer's upload or ingest starts with; its agent is who handed the bag in.
UPLOAD_EVENT = "transfer"


@dataclass(frozen=True)
class TransferFilter:
    archives: Sequence[str] | None = None  # codes; None: every archive
    status: str | None = None
    since: dt.date | None = None  # started on or after
    until: dt.date | None = None  # started on or before


def _conditions(f: TransferFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.archives is not None:
        out.append(Transfer.archive_id.in_(select(Archive.id).where(Archive.code.in_(f.archives))))
    if f.status:
        out.append(Transfer.status == f.status)
    if f.since:
        out.append(Transfer.started_at >= dt.datetime.combine(f.since, dt.time(), dt.UTC))
    if f.until:
        out.append(
            Transfer.started_at < dt.datetime.combine(f.until + dt.timedelta(days=1), dt.time(), dt.UTC)
        )
    return out


def find_transfers(session: Session, f: TransferFilter, limit: int = 200) -> list[Transfer]:
    """The newest transfers matching ``f``."""
    query = select(Transfer).options(selectinload(Transfer.archive)).where(*_conditions(f))
    return list(session.execute(query.order_by(Transfer.started_at.desc()).limit(limit)).scalars())


def transfer_totals(session: Session, f: TransferFilter) -> dict[str, int]:
    """How many transfers match ``f``, with their records, files and bytes."""
    query = (
        select(
            func.count(),
            func.coalesce(func.sum(Transfer.record_count), 0),
            func.coalesce(func.sum(Transfer.file_count), 0),
            func.coalesce(func.sum(Transfer.byte_count), 0),
        )
        .select_from(Transfer)
        .where(*_conditions(f))
    )
    n, records, files, size = session.execute(query).one()
    return {"transfers": int(n), "records": int(records), "files": int(files), "bytes": int(size)}


def uploaders(session: Session, transfer_ids: Sequence[str]) -> dict[str, str]:
    """Transfer id → the agent of its first ``transfer`` event (a person for uploads)."""
    if not transfer_ids:
        return {}
    rows = session.execute(
        select(Event.transfer_id, Event.agent)
        .where(Event.transfer_id.in_(transfer_ids), Event.event_type == UPLOAD_EVENT)
        .order_by(Event.id)
    ).all()
    out: dict[str, str] = {}
    for transfer_id, agent in rows:
        if transfer_id is not None:
            out.setdefault(transfer_id, agent)
    return out


def transfer_events(session: Session, transfer_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """Who did what to a transfer, oldest first: its events (upload, validation, ingestion…) with agents."""
    rows = session.execute(
        select(Event).where(Event.transfer_id == transfer_id).order_by(Event.id).limit(limit)
    ).scalars()
    return [
        {
            "type": e.event_type,
            "at": e.occurred_at.isoformat(timespec="seconds"),
            "agent": e.agent,
            "person": (e.outcome_detail or {}).get("agent_type") == "person",
            "outcome": e.outcome,
            "object": e.object_id,
            "detail": e.detail or "",
        }
        for e in rows
    ]
