"""Catalogue operations used by the CLI and the portal: holding archives, records, transfers."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from archive.access import decide_access, is_public
from archive.codes import more_problems
from archive.errors import BadArgument, Conflict, NotFound, UnknownArchive
from archive.events import ACCESS_DECISION, NewEvent, append_events
from archive.models import Archive, File, Level, Outbox, Record, Transfer, utcnow

ARCHIVE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,63}$")
AGENT = "pearl-archive"


def add_archive(
    session: Session, code: str, *, name_zh: str, name_en: str | None, level: str, parent: str | None
) -> Archive:
    code = code.strip().upper()
    if not ARCHIVE_CODE.match(code):
        raise BadArgument(variant="archive_code", archive=code)
    if level not in {lv.value for lv in Level}:
        raise BadArgument(variant="level", level=level)
    parent_row = get_archive(session, parent) if parent else None
    archive = Archive(
        code=code,
        name_zh=name_zh,
        name_en=name_en,
        level=level,
        parent_id=parent_row.id if parent_row else None,
    )
    session.add(archive)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(variant="archive_code", archive=code) from exc
    append_events(
        session,
        [
            NewEvent(
                event_type="creation",
                outcome="success",
                agent=AGENT,
                object_type="archive",
                object_id=code,
                detail=f"registered holding archive {name_zh}",
                outcome_detail={"level": level, "parent": parent},
            )
        ],
    )
    return archive


def get_archive(session: Session, code: str) -> Archive:
    if "\x00" in code:  # no archive has one, and PostgreSQL refuses NUL in a query parameter
        raise UnknownArchive(code.replace("\x00", ""))
    archive = session.execute(
        select(Archive).where(Archive.code == code.strip().upper())
    ).scalar_one_or_none()
    if archive is None:
        raise UnknownArchive(code)
    return archive


def list_archives(session: Session) -> list[dict[str, Any]]:
    """Archives in tree order (province → city → county) with their record counts."""
    counts = dict(session.execute(select(Record.archive_id, func.count()).group_by(Record.archive_id)).all())
    archives = session.execute(select(Archive).order_by(Archive.code)).scalars().all()
    by_parent: dict[int | None, list[Archive]] = {}
    for a in archives:
        by_parent.setdefault(a.parent_id, []).append(a)
    out: list[dict[str, Any]] = []

    def walk(parent: int | None, depth: int) -> None:
        for a in by_parent.get(parent, []):
            out.append(
                {
                    "code": a.code,
                    "name_zh": a.name_zh,
                    "name_en": a.name_en,
                    "level": a.level,
                    "parent": a.parent.code if a.parent else None,
                    "depth": depth,
                    "records": counts.get(a.id, 0),
                }
            )
            walk(a.id, depth + 1)

    walk(None, 0)
    return out


def list_records(session: Session, archive: str | None = None, limit: int | None = None) -> Sequence[Record]:
    query = (
        select(Record).options(selectinload(Record.archive)).order_by(Record.archive_id, Record.archival_code)
    )
    if archive:
        query = query.where(Record.archive_id == get_archive(session, archive).id)
    if limit:
        query = query.limit(limit)
    return session.execute(query).scalars().all()


def split_record_ref(ref: str) -> tuple[str, str]:
    archive, sep, code = ref.partition("/")
    if not sep or not archive or not code:
        raise BadArgument(variant="record_ref", ref=ref)
    return archive, code


def get_record(session: Session, archive: str, code: str) -> Record:
    arch = get_archive(session, archive)
    if "\x00" in code:  # as above: no record has one
        raise NotFound(variant="record", archive=arch.code, archival_code=code.replace("\x00", ""))
    record = session.execute(
        select(Record)
        .options(selectinload(Record.files))
        .where(Record.archive_id == arch.id, Record.archival_code == code)
    ).scalar_one_or_none()
    if record is None:
        raise NotFound(variant="record", archive=arch.code, archival_code=code)
    return record


def record_summary(record: Record) -> dict[str, Any]:
    return {
        "archive": record.archive.code,
        "archival_code": record.archival_code,
        "title": record.title,
        "creator": record.creator,
        "date": record.date_text,
        "retention": record.retention,
        "security_class": record.security_class,
        "access_status": record.access_status,
        "files": record.file_count,
        "bytes": record.byte_count,
        "transfer": record.transfer_id,
    }


def record_detail(record: Record) -> dict[str, Any]:
    return {
        **record_summary(record),
        "fonds": record.fonds.code if record.fonds else None,
        "description": record.description,
        "keywords": record.keywords,
        "language": record.language,
        "access_requested": record.access_requested,
        "access_reason": record.access_reason,
        "access_review_on": record.access_review_on.isoformat() if record.access_review_on else None,
        "ocfl_object_id": record.ocfl_object_id,
        "ocfl_head": record.ocfl_head,
        "file_list": [file_detail(f) for f in record.files],
    }


def file_detail(f: File) -> dict[str, Any]:
    return {
        "path": f.logical_path,
        "bag_path": f.bag_path,
        "size": f.size,
        "sha256": f.sha256,
        "sha512": f.sha512,
        "digests": f.digests,
        "puid": f.puid,
        "mime": f.mime,
        "format": f.format_name,
        "format_version": f.format_version,
        "role": f.role,
        "properties": f.properties,
        "version": f.ocfl_version,
    }


def list_transfers(
    session: Session, limit: int = 100, archives: Sequence[str] | None = None
) -> Sequence[Transfer]:
    """The newest transfers, of ``archives`` only when given (codes; unknown codes match nothing)."""
    query = select(Transfer).options(selectinload(Transfer.archive)).order_by(Transfer.started_at.desc())
    if archives is not None:
        query = query.join(Archive, Transfer.archive_id == Archive.id).where(Archive.code.in_(archives))
    return session.execute(query.limit(limit)).scalars().all()


def get_transfer(session: Session, transfer_id: str) -> Transfer:
    transfer = session.execute(
        select(Transfer).options(selectinload(Transfer.archive)).where(Transfer.id == transfer_id)
    ).scalar_one_or_none()
    if transfer is None:
        raise NotFound(variant="transfer", transfer_id=transfer_id)
    return transfer


def transfer_record_refs(session: Session, transfer_id: str) -> list[str]:
    """``ARCHIVE/CODE`` of the records a transfer stored."""
    rows = session.execute(
        select(Archive.code, Record.archival_code)
        .join(Archive, Record.archive_id == Archive.id)
        .where(Record.transfer_id == transfer_id)
        .order_by(Record.archival_code)
    ).all()
    return [f"{a}/{c}" for a, c in rows]


def transfer_summary(t: Transfer) -> dict[str, Any]:
    """A transfer as listed: its problems bounded as stored (the first of each code), with the count of
    every code, how many more there are, and the file that holds them all."""
    shown = Counter(p["code"] for p in [*t.problems, *t.warnings])
    counts = t.problem_counts or dict(shown)
    return {
        "id": t.id,
        "archive": t.archive.code if t.archive else None,
        "bag": t.bag_name,
        "source": t.source,
        "status": t.status,
        "records": t.record_count,
        "files": t.file_count,
        "bytes": t.byte_count,
        "started_at": t.started_at.isoformat() if t.started_at else None,
        "finished_at": t.finished_at.isoformat() if t.finished_at else None,
        "problems": t.problems,
        "warnings": t.warnings,
        "problem_counts": counts,
        "more_problems": more_problems(counts, shown, t.problem_file),
        "problem_file": t.problem_file,
        "timings": t.timings,
    }


# -- access changes ---------------------------------------------------------------------------------------


def note_public_change(record: Record, was_public: bool, now: dt.datetime | None = None) -> None:
    """Record that the public view of ``record`` changed, if it did: it was public before or is now.

    The one writer of :attr:`Record.public_changed_at`, called by every path that sets a record's access
    status (ingest's decision, :func:`set_access`) or edits an open record's public metadata. OAI-PMH uses
    the value as the record's datestamp, and a record that has one but is not open is a deleted record
    there, so a record that was never public never shows, not even as deleted.
    """
    if was_public or is_public(record.access_status):
        record.public_changed_at = now or utcnow()


def set_access(
    session: Session,
    record: Record,
    requested: str,
    *,
    today: dt.date,
    open_after_years: int = 25,
    agent: str = AGENT,
    agent_type: str = "software",
    note: str | None = None,
    reason: str | None = None,
    review_on: dt.date | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Set the archivist's access request on ``record`` (open / restricted / auto), decide its status by
    :func:`archive.access.decide_access`, and — in the caller's transaction — log the decision as a PREMIS
    event, queue the record for (re)indexing or removal from the public index, and note the public change.
    Closing a record again or withdrawing it is ``restricted``. A staff decision passes the person as
    ``agent`` (``agent_type="person"``) and its own ``reason`` and ``review_on`` (the next review), which the
    record and the event keep instead of the rule's; ``extra`` goes into the event's outcome detail (an
    opening review's id and the transferring office's opinion). Returns whether the status changed."""
    decision = decide_access(
        requested=requested,
        security_class=record.security_class,
        date_end=record.date_end,
        today=today,
        open_after_years=open_after_years,
    )
    before = record.access_status
    record.access_requested = requested
    record.access_status = decision.status
    record.access_reason = reason or f"{decision.reason_zh} / {decision.reason_en}"
    record.access_review_on = review_on or decision.review_on
    changed = before != decision.status
    now = utcnow()
    if changed:
        note_public_change(record, is_public(before), now)
    code = record.archive.code
    session.add(
        Outbox(
            topic="index",
            key=f"index:{record.id}:{uuid.uuid4().hex}",
            record_id=record.id,
            payload={"reason": "access change", "doc_id": f"{code}/{record.archival_code}"},
        )
    )
    append_events(
        session,
        [
            NewEvent(
                event_type=ACCESS_DECISION,
                outcome="success",
                agent=agent,
                object_type="record",
                object_id=f"{code}/{record.archival_code}",
                record_id=record.id,
                detail=f"access {before} -> {decision.status} (requested {requested})"
                + (f": {note}" if note else ""),
                outcome_detail={
                    "before": before,
                    **decision.as_dict(),
                    "requested": requested,
                    **({"agent_type": agent_type} if agent_type != "software" else {}),
                    **({"staff_reason": reason} if reason else {}),
                    **({"review_on": review_on.isoformat()} if review_on else {}),
                    **(extra or {}),
                },
            )
        ],
    )
    return changed


STAFF_STATUSES = ("open", "restricted")


def register_upload(
    session: Session, transfer_id: str, archive: str, *, source: str, bag_name: str, actor: str
) -> Transfer:
    """Register a transfer uploaded through the staff API (status ``received``) before its ingest is queued,
    so its status URL answers at once; the person is the agent of its ``transfer`` event."""
    arch = get_archive(session, archive)
    transfer = Transfer(
        id=transfer_id, archive_id=arch.id, source=source, bag_name=bag_name, status="received"
    )
    session.add(transfer)
    session.flush()
    append_events(
        session,
        [
            NewEvent(
                event_type="transfer",
                outcome="success",
                agent=actor,
                object_type="transfer",
                object_id=transfer_id,
                transfer_id=transfer_id,
                detail=f"bag {bag_name} uploaded for {arch.code} by {actor}; ingest queued",
                outcome_detail={"agent_type": "person"},
            )
        ],
    )
    return transfer
