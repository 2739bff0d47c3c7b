"""The catalogue side of an ingest: one transaction writing a stored transfer's rows, or a refusal's.

A stored transfer writes its fonds (created on first use, with warning ING008), the bag's fingerprint, a
Record per record, a File per file, outbox rows (one ``index`` per record, one ``migrate`` per file), the
PREMIS events and the final state of its Transfer row. Rows go in as Core multi-row INSERTs, a few thousand
at a time: a transfer may hold tens of thousands of records and a record tens of thousands of files.

The Transfer row keeps a bounded account of the problems (:func:`ingest.problems.summarise`); every problem
is in the transfer's problem file (:func:`ingest.problems.write_problem_file`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from archive.access import AccessDecision, is_public
from archive.events import NewEvent, append_many
from archive.models import BagFingerprint, File, Fonds, Outbox, Record, Transfer, TransferStatus, utcnow
from ingest.bag import FileFixity
from ingest.identify import Identification
from ingest.metadata import RecordSpec
from ingest.problems import Problem

_RECORDS = cast("Table", Record.__table__)
_FILES = cast("Table", File.__table__)
_OUTBOX = cast("Table", Outbox.__table__)
#: Rows per multi-row INSERT.
BATCH = 2000

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class StoredRecord:
    """One record of the transfer as stored: its metadata, OCFL object and access decision."""

    spec: RecordSpec
    object_id: str
    logical: dict[str, str]  # bag path -> logical path in the object
    decision: AccessDecision


@dataclass
class StoredTransfer:
    """Everything the catalogue keeps of a stored transfer."""

    transfer_id: str
    archive_id: int
    fingerprint: str
    records: list[StoredRecord]
    files: Mapping[str, FileFixity]  # bag path -> digests and size
    identified: Mapping[str, Identification]  # bag path -> formats
    events: list[NewEvent]  # the records' events (record_id is filled in here)
    file_count: int
    byte_count: int


def ensure_fonds(
    s: Session, archive_id: int, codes: Sequence[str | None]
) -> tuple[dict[str, int], list[Problem]]:
    """Fonds id per code, creating the fonds not yet registered (each with warning ING008)."""
    ids: dict[str, int] = {}
    created: list[Problem] = []
    for code in dict.fromkeys(c for c in codes if c):
        fonds = s.execute(
            select(Fonds).where(Fonds.archive_id == archive_id, Fonds.code == code)
        ).scalar_one_or_none()
        if fonds is None:
            fonds = Fonds(archive_id=archive_id, code=code, name=None)
            s.add(fonds)
            s.flush()
            created.append(Problem("ING008", params={"fonds": code}))
        ids[code] = fonds.id
    return ids, created


def _record_row(t: StoredTransfer, r: StoredRecord, fonds_id: int | None, now: dt.datetime) -> dict[str, Any]:
    spec, decision = r.spec, r.decision
    return {
        "archive_id": t.archive_id,
        "fonds_id": fonds_id,
        "archival_code": spec.archival_code,
        "title": spec.title,
        "creator": spec.creator,
        "date_text": spec.date_text,
        "date_start": spec.date_start,
        "date_end": spec.date_end,
        "retention": spec.retention,
        "security_class": spec.security_class,
        "access_status": decision.status,
        "access_requested": spec.access_requested,
        "access_reason": f"{decision.reason_zh} / {decision.reason_en}",
        "access_review_on": decision.review_on,
        "description": spec.description,
        "keywords": "；".join(spec.keywords) or None,
        "language": spec.language,
        "file_count": len(spec.files),
        "byte_count": sum(t.files[bp].size for bp in spec.files),
        "transfer_id": t.transfer_id,
        "ocfl_object_id": r.object_id,
        "ocfl_head": "v1",
        "extra": {"row": spec.row, "path": spec.path},
        "created_at": now,
        "updated_at": now,
        # what archive.services.note_public_change(record, was_public=False) sets on an ORM row
        "public_changed_at": now if is_public(decision.status) else None,
    }


def _file_row(
    t: StoredTransfer, record_id: int, bag_path: str, logical: str, now: dt.datetime
) -> dict[str, Any]:
    d = t.files[bag_path]
    ident = t.identified.get(bag_path)
    return {
        "record_id": record_id,
        "logical_path": logical,
        "bag_path": bag_path,
        "size": d.size,
        "sha256": d.digests["sha256"],
        "sha512": d.digests["sha512"],
        "digests": {a: v for a, v in d.digests.items() if a not in ("sha256", "sha512")},
        "puid": ident.puid if ident else None,
        "mime": ident.mime if ident else None,
        "format_name": ident.format_name if ident else None,
        "format_version": ident.format_version if ident else None,
        "identification": ident.as_dict() if ident else {},
        "properties": ident.properties if ident else {},
        "role": "original",
        "ocfl_version": "v1",
        "created_at": now,
        "last_fixity_at": now,
    }


def _outbox_row(
    topic: str,
    key: str,
    record_id: int,
    payload: dict[str, Any],
    now: dt.datetime,
    file_id: int | None = None,
) -> dict[str, Any]:
    return {
        "topic": topic,
        "key": key,
        "record_id": record_id,
        "file_id": file_id,
        "payload": payload,
        "created_at": now,
        "available_at": now,
        "attempts": 0,
    }


def write_stored(s: Session, t: StoredTransfer, fonds_ids: Mapping[str, int]) -> dict[str, int]:
    """Insert the transfer's fingerprint, records, files, outbox rows and the records' events; returns the
    record id per OCFL object id."""
    s.add(BagFingerprint(fingerprint=t.fingerprint, transfer_id=t.transfer_id))
    s.flush()
    conn = s.connection()
    now = utcnow()
    record_ids: dict[str, int] = {}
    for chunk in _chunks(t.records):
        rows = [_record_row(t, r, fonds_ids.get(r.spec.fonds or ""), now) for r in chunk]
        ids = conn.execute(
            insert(_RECORDS).returning(_RECORDS.c.id, sort_by_parameter_order=True), rows
        ).scalars()
        record_ids.update(zip((r.object_id for r in chunk), ids, strict=True))
    conn.execute(
        insert(_OUTBOX),
        [
            _outbox_row(
                "index",
                f"index:{record_ids[r.object_id]}:v1",
                record_ids[r.object_id],
                {"reason": "ingest"},
                now,
            )
            for r in t.records
        ],
    )
    pending: list[dict[str, Any]] = []

    def flush_files() -> None:
        for chunk in _chunks(pending):
            ids = conn.execute(
                insert(_FILES).returning(
                    _FILES.c.id, _FILES.c.record_id, _FILES.c.puid, sort_by_parameter_order=True
                ),
                chunk,
            ).all()
            conn.execute(
                insert(_OUTBOX),
                [
                    _outbox_row("migrate", f"migrate:file:{file_id}", record_id, {"puid": puid}, now, file_id)
                    for file_id, record_id, puid in ids
                ],
            )
        pending.clear()

    for r in t.records:
        record_id = record_ids[r.object_id]
        pending.extend(_file_row(t, record_id, bp, r.logical[bp], now) for bp in r.spec.files)
        if len(pending) >= BATCH:
            flush_files()
    flush_files()
    for event in t.events:
        event.record_id = record_ids.get(event.object_id)
    return record_ids


def finish_transfer(
    s: Session,
    transfer_id: str,
    status: TransferStatus,
    *,
    problems: Mapping[str, Any],
    events: Sequence[NewEvent],
    **values: Any,
) -> None:
    """Append ``events`` to the log and set the Transfer row's final state: ``status``, the bounded problem
    account (``problems`` from :func:`ingest.problems.summarise`) and ``values`` (counts, timings…)."""
    append_many(s, events)
    t = s.get(Transfer, transfer_id)
    assert t is not None
    t.status = status
    t.finished_at = utcnow()
    t.problems = problems["errors"]
    t.warnings = problems["warnings"]
    t.problem_counts = problems["counts"]
    t.problem_file = problems.get("file")
    for key, value in values.items():
        setattr(t, key, value)
    s.flush()
