"""Indexing from the outbox: ingest and access changes write ``Outbox(topic="index")`` rows in their own
transaction; :func:`drain` turns them into index updates.

For each row the record is read **as it is now**: an open record is (re)built and indexed, any other record is
deleted from the index, so replaying a row, or rows arriving out of order, always converges on the current
state. A row is never lost:

- it is *claimed* (``claimed_by``/``claimed_at``) before work starts; a claim older than ``stale_after`` (the
  worker died) is taken over by the next drain;
- it is marked ``done_at`` only after the backend has accepted the change;
- a failure (backend down, unreadable file) increments ``attempts``, stores ``last_error`` and sets
  ``available_at`` with exponential backoff (30 s doubling, at most an hour); the row stays pending and the
  next drain after that time retries it. An Elasticsearch outage therefore delays indexing and never fails
  an ingest.

After indexing, the statuses of the indexed records are read once more and any record closed meanwhile is
deleted again, so a concurrent access change cannot leave a closed record in the index.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from archive import db
from archive.access import is_public
from archive.config import Settings
from archive.home import store_for
from archive.models import File, Outbox, Record, utcnow
from search.backend import RecordDoc, SearchBackend
from search.documents import NotPublic, build_document, doc_id

log = logging.getLogger(__name__)

TOPIC = "index"
STALE_AFTER = dt.timedelta(minutes=10)
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=1)
MAX_ERROR_CHARS = 2_000


@dataclass
class DrainCounts:
    indexed: int = 0
    deleted: int = 0
    failed: int = 0
    rows: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"indexed": self.indexed, "deleted": self.deleted, "failed": self.failed, "rows": self.rows}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def backoff(attempts: int) -> dt.timedelta:
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def enqueue(session: Session, record: Record, reason: str) -> Outbox:
    """Ask for ``record`` to be re-indexed (or removed) — call it in the transaction that changes the record,
    e.g. an access status change. Each call adds a row (the key is unique)."""
    row = Outbox(
        topic=TOPIC,
        key=f"index:{record.id}:{uuid.uuid4().hex}",
        record_id=record.id,
        payload={"reason": reason, "doc_id": doc_id(record.archive.code, record.archival_code)},
    )
    session.add(row)
    return row


def pending(settings: Settings) -> int:
    """Index rows not yet done (including those waiting for a retry)."""
    with db.read_session(settings) as s:
        return int(
            s.execute(
                select(func.count())
                .select_from(Outbox)
                .where(Outbox.topic == TOPIC, Outbox.done_at.is_(None))
            ).scalar_one()
        )


@dataclass
class _Claimed:
    id: int
    record_id: int | None
    payload: dict[str, Any]
    attempts: int


def _claim(
    settings: Settings,
    worker: str,
    now: dt.datetime,
    limit: int,
    stale_after: dt.timedelta,
    record_ids: Sequence[int] | None = None,
) -> list[_Claimed]:
    with db.write_session(settings) as s:
        rows = (
            s.execute(
                select(Outbox)
                .where(
                    Outbox.topic == TOPIC,
                    Outbox.done_at.is_(None),
                    Outbox.available_at <= now,
                    or_(Outbox.claimed_at.is_(None), Outbox.claimed_at < now - stale_after),
                    *([Outbox.record_id.in_(record_ids)] if record_ids is not None else []),
                )
                .order_by(Outbox.available_at, Outbox.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        for row in rows:
            row.claimed_by, row.claimed_at = worker, now
        return [_Claimed(r.id, r.record_id, dict(r.payload or {}), r.attempts) for r in rows]


def _content_paths(settings: Settings, record: Record) -> dict[tuple[str, str], Path]:
    store = store_for(settings)
    return {(c.version, c.logical_path): c.path for c in store.content_files(record.ocfl_object_id)}


def _plan(
    settings: Settings, claimed: Sequence[_Claimed]
) -> tuple[dict[int, RecordDoc], dict[int, str], dict[int, str]]:
    """Per outbox row: the document to index, or the id to delete, or the error that stopped it."""
    to_index: dict[int, RecordDoc] = {}
    to_delete: dict[int, str] = {}
    errors: dict[int, str] = {}
    record_ids = {c.record_id for c in claimed if c.record_id is not None}
    with db.read_session(settings) as s:
        records = {
            r.id: r
            for r in s.execute(
                select(Record)
                .where(Record.id.in_(record_ids))
                .options(selectinload(Record.archive), selectinload(Record.fonds), selectinload(Record.files))
            ).scalars()
        }
        built: dict[int, RecordDoc | str | Exception] = {}
        for c in claimed:
            record = records.get(c.record_id) if c.record_id is not None else None
            if record is None:
                gone = c.payload.get("doc_id")
                if gone:
                    to_delete[c.id] = str(gone)
                else:
                    to_delete[c.id] = ""  # nothing to do: a record that never was indexed
                continue
            if record.id not in built:
                built[record.id] = _build(settings, record)
            result = built[record.id]
            if isinstance(result, RecordDoc):
                to_index[c.id] = result
            elif isinstance(result, Exception):
                errors[c.id] = f"{type(result).__name__}: {result}"
            else:
                to_delete[c.id] = result
    return to_index, to_delete, errors


def _build(settings: Settings, record: Record) -> RecordDoc | str | Exception:
    if not is_public(record.access_status):
        return doc_id(record.archive.code, record.archival_code)
    try:
        paths = _content_paths(settings, record) if record.files else {}

        def content_path(f: File) -> Path | None:
            return paths.get((f.ocfl_version, f.logical_path))

        return build_document(record, record.files, content_path, timeout=settings.tool_timeout)
    except NotPublic:
        return doc_id(record.archive.code, record.archival_code)
    except Exception as exc:  # an unreadable object must not stop the other rows
        return exc


def _finish(
    settings: Settings,
    worker: str,
    now: dt.datetime,
    done: Sequence[int],
    failed: dict[int, str],
    attempts: dict[int, int],
) -> None:
    with db.write_session(settings) as s:
        if done:
            s.execute(
                update(Outbox)
                .where(Outbox.id.in_(done), Outbox.claimed_by == worker)
                .values(done_at=utcnow(), last_error=None)
            )
        for row_id, error in failed.items():
            n = attempts[row_id] + 1
            s.execute(
                update(Outbox)
                .where(Outbox.id == row_id, Outbox.claimed_by == worker)
                .values(
                    attempts=n,
                    last_error=error[:MAX_ERROR_CHARS],
                    available_at=now + backoff(n),
                    claimed_by=None,
                    claimed_at=None,
                )
            )


def _apply(
    backend: SearchBackend, to_index: dict[int, RecordDoc], to_delete: dict[int, str]
) -> dict[int, str]:
    """Send the batch; on failure retry row by row so one bad document does not hold back the others."""
    try:
        ids = {v for v in to_delete.values() if v}
        if ids:
            backend.delete(ids)
        if to_index:
            backend.index(list({d.id: d for d in to_index.values()}.values()))
        return {}
    except Exception:
        pass
    errors: dict[int, str] = {}
    for row_id, gone in to_delete.items():
        try:
            if gone:
                backend.delete([gone])
        except Exception as exc:
            errors[row_id] = f"{type(exc).__name__}: {exc}"
    for row_id, doc in to_index.items():
        try:
            backend.index([doc])
        except Exception as exc:
            errors[row_id] = f"{type(exc).__name__}: {exc}"
    return errors


def _recheck(settings: Settings, backend: SearchBackend, record_ids: dict[str, int]) -> None:
    """Delete again any just-indexed record that is no longer open (closed while we were indexing)."""
    if not record_ids:
        return
    with db.read_session(settings) as s:
        status = dict(
            s.execute(
                select(Record.id, Record.access_status).where(Record.id.in_(set(record_ids.values())))
            ).all()
        )
    closed = [d for d, rid in record_ids.items() if not is_public(status.get(rid, "deleted"))]
    if closed:
        backend.delete(closed)


def drain(
    settings: Settings,
    backend: SearchBackend,
    *,
    batch_size: int = 100,
    worker: str | None = None,
    stale_after: dt.timedelta = STALE_AFTER,
    now: dt.datetime | None = None,
    max_rows: int | None = None,
    record_ids: Sequence[int] | None = None,
) -> DrainCounts:
    """Process every index row that is due (``available_at <= now``, default the time of the call); returns
    what was done. ``record_ids`` limits it to those records' rows: a staff decision indexes its records
    right after its commit this way, without waiting for (or doing) anyone else's work.

    Rows that fail are rescheduled, so this always terminates; run it again (the worker does, periodically)
    to pick them up once their backoff has passed.
    """
    worker = worker or worker_name()
    now = now or utcnow()  # one clock per drain: a row that fails now is not retried by this same call
    counts = DrainCounts()
    while max_rows is None or counts.rows < max_rows:
        limit = batch_size if max_rows is None else min(batch_size, max_rows - counts.rows)
        claimed = _claim(settings, worker, now, limit, stale_after, record_ids)
        if not claimed:
            break
        counts.rows += len(claimed)
        to_index, to_delete, errors = _plan(settings, claimed)
        errors.update(_apply(backend, to_index, to_delete))
        by_row = {c.id: c.record_id or 0 for c in claimed}
        _recheck(
            settings, backend, {d.id: by_row[i] for i, d in to_index.items() if i not in errors and by_row[i]}
        )
        done = [c.id for c in claimed if c.id not in errors]
        _finish(settings, worker, now, done, errors, {c.id: c.attempts for c in claimed})
        counts.indexed += len({d.id for i, d in to_index.items() if i not in errors})
        counts.deleted += len({v for i, v in to_delete.items() if v and i not in errors})
        counts.failed += len(errors)
        counts.errors += list(errors.values())[:10]
    return counts


def index_records(settings: Settings, backend: SearchBackend, record_ids: Sequence[int]) -> DrainCounts:
    """Index (or remove from the public index) the records a just-committed change touched — a staff
    decision or a metadata edit — now, rather than at the next drain. A failure leaves their outbox rows
    pending for the next drain (the change itself stands) and is logged, not raised."""
    if not record_ids:
        return DrainCounts()
    try:
        backend.ensure_ready()
        return drain(settings, backend, record_ids=list(record_ids))
    except Exception as exc:  # the outbox keeps the work
        log.warning(
            "indexing records %s right after their change failed; left to the next drain: %s",
            list(record_ids)[:10],
            exc,
        )
        return DrainCounts(failed=len(record_ids), errors=[str(exc)])
