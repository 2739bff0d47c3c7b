"""The figures of the staff dashboard, one row per archive: holdings, open share, transfers this month,
failed migrations, the last fixity audit and the opening reviews waiting for a decision."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.events import FIXITY_CHECK, MIGRATION
from archive.models import AccessStatus, Archive, Event, Record, Review, ReviewState, Transfer, utcnow


def month_start(now: dt.datetime) -> dt.datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def archive_figures(
    session: Session, archives: Sequence[str] | None, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """One dict per archive of ``archives`` (codes; None for every archive of the node), in code order."""
    now = now or utcnow()
    query = select(Archive).order_by(Archive.code)
    if archives is not None:
        query = query.where(Archive.code.in_(archives))
    rows = session.execute(query).scalars().all()
    ids = [a.id for a in rows]
    if not ids:
        return []
    holdings = dict(
        session.execute(
            select(Record.archive_id, func.count())
            .where(Record.archive_id.in_(ids))
            .group_by(Record.archive_id)
        ).all()
    )
    opened = dict(
        session.execute(
            select(Record.archive_id, func.count())
            .where(Record.archive_id.in_(ids), Record.access_status == AccessStatus.open)
            .group_by(Record.archive_id)
        ).all()
    )
    month = {
        a: (n, b or 0)
        for a, n, b in session.execute(
            select(Transfer.archive_id, func.count(), func.sum(Transfer.byte_count))
            .where(Transfer.archive_id.in_(ids), Transfer.started_at >= month_start(now))
            .group_by(Transfer.archive_id)
        ).all()
    }
    failed = dict(
        session.execute(
            select(Record.archive_id, func.count())
            .join(Event, Event.record_id == Record.id)
            .where(Record.archive_id.in_(ids), Event.event_type == MIGRATION, Event.outcome == "failure")
            .group_by(Record.archive_id)
        ).all()
    )
    audited = dict(
        session.execute(
            select(Record.archive_id, func.max(Event.occurred_at))
            .join(Event, Event.record_id == Record.id)
            .where(Record.archive_id.in_(ids), Event.event_type == FIXITY_CHECK)
            .group_by(Record.archive_id)
        ).all()
    )
    due = dict(
        session.execute(
            select(Review.archive_id, func.count())
            .where(Review.archive_id.in_(ids), Review.state == ReviewState.pending)
            .group_by(Review.archive_id)
        ).all()
    )
    out = []
    for a in rows:
        held = int(holdings.get(a.id, 0))
        open_n = int(opened.get(a.id, 0))
        n, size = month.get(a.id, (0, 0))
        last = audited.get(a.id)
        out.append(
            {
                "code": a.code,
                "name_zh": a.name_zh,
                "name_en": a.name_en,
                "holdings": held,
                "open": open_n,
                "open_share": (open_n / held) if held else 0.0,
                "transfers_month": int(n),
                "transfer_bytes_month": int(size),
                "failed_migrations": int(failed.get(a.id, 0)),
                "last_audit": last.isoformat(timespec="minutes") if last else None,
                "reviews_due": int(due.get(a.id, 0)),  # the pending opening reviews (archive.review)
            }
        )
    return out
