"""A record's evidence: its events, PREMIS and METS documents, and its evidence package.

    events = record_events(session, record)
    premis = record_premis(session, record); mets = record_mets(settings, session, record)
    summary = record_package(settings, session, record, Path("GZ-0001.zip"), agent="auditor:li")

A record's events are those about the record itself and those about the transfer it came in (its receipt
checks, the transfer stored or rejected). The package carries the transfer's 四性检测 receipt report when it
has one. Writing a package is itself an event (PREMIS ``dissemination``)
with the zip's sha256, so the log says who took which evidence out and when.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from archive.config import Settings
from archive.events import NewEvent, append_events
from archive.evidence.errors import ObjectMissing
from archive.evidence.exports import mets_document, premis_document, record_ref
from archive.evidence.package import Contents, PackageSummary, write_package
from archive.home import store_for
from archive.models import Event, Record
from archive.storage import ObjectNotFound

DISSEMINATION = "dissemination"


def record_events(session: Session, record: Record) -> Sequence[Event]:
    """Every event about the record or about its transfer, in chain order."""
    about_transfer = and_(Event.object_type == "transfer", Event.object_id == record.transfer_id)
    return (
        session.execute(
            select(Event).where(or_(Event.record_id == record.id, about_transfer)).order_by(Event.id)
        )
        .scalars()
        .all()
    )


def record_premis(session: Session, record: Record) -> bytes:
    return premis_document(record, record_events(session, record))


def record_mets(settings: Settings, session: Session, record: Record) -> bytes:
    try:
        inventory = store_for(settings).read_inventory(record.ocfl_object_id)
    except ObjectNotFound:
        raise ObjectMissing(record=record_ref(record), object_id=record.ocfl_object_id) from None
    return mets_document(record, inventory, record_events(session, record))


def package_name(record: Record) -> str:
    """A folder name every unzip tool accepts: the reference with anything but word characters, dots and
    dashes turned into '-' (档号 characters stay: they are word characters)."""
    return "evidence-" + re.sub(r"[^\w.\-]+", "-", record_ref(record)).strip("-")


def record_package(
    settings: Settings, session: Session, record: Record, out: Path, *, agent: str
) -> PackageSummary:
    """Write the record's evidence package to ``out`` and log it; the caller's transaction commits."""
    from archive.evidence.reports import receipt_report_files  # it builds on this module

    events = record_events(session, record)
    files = {
        "mets.xml": record_mets(settings, session, record),
        "premis.xml": premis_document(record, events),
    }
    files.update(receipt_report_files(settings, session, record.transfer_id))
    contents = Contents(
        name=package_name(record),
        title=record_ref(record),
        events=events,
        object_ids=[record.ocfl_object_id],
        files=files,
    )
    summary = write_package(settings, session, out, contents)
    append_events(
        session,
        [
            NewEvent(
                event_type=DISSEMINATION,
                outcome="success",
                agent=agent,
                object_type="record",
                object_id=record_ref(record),
                record_id=record.id,
                detail="evidence package exported",
                outcome_detail={
                    "agent_type": "person",
                    "sha256": summary.sha256,
                    "bytes": summary.size,
                    "file": out.name,
                    "head_event_id": summary.head_event_id,
                    "head_hash": summary.head_hash,
                },
            )
        ],
    )
    return summary
