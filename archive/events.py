"""PREMIS 3 events in an append-only, hash-chained log.

Every event row stores ``prev_hash`` (the hash of the row before it) and ``hash`` = SHA-256 over ``prev_hash``
and the event's canonical JSON. Changing, inserting or deleting any row breaks the chain from that point on, and
:func:`verify_chain` (``archive events verify``) finds the first broken link. Appends lock the single
``chain_head`` row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite write transactions are already serialised by
``BEGIN IMMEDIATE``), so concurrent ingests produce one linear chain.

Event types follow the Library of Congress PREMIS eventType vocabulary (``ingestion``, ``validation``,
``fixity check``, ``format identification``, ``message digest calculation``, ``migration``,
``policy assignment`` for access decisions, ``deletion`` …).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from xml.etree import ElementTree as ET

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from archive.models import ChainHead, Event, utcnow

GENESIS = "0" * 64

# PREMIS eventType values used by this system (id.loc.gov/vocabulary/preservation/eventType).
INGESTION = "ingestion"
VALIDATION = "validation"
FIXITY_CHECK = "fixity check"
FORMAT_IDENTIFICATION = "format identification"
DIGEST_CALCULATION = "message digest calculation"
MIGRATION = "migration"
ACCESS_DECISION = "policy assignment"
DELETION = "deletion"
REPLICATION = "replication"
RECOVERY = "recovery"
METADATA_MODIFICATION = "metadata modification"
#: an opening review entering the queue, or the transferring office's opinion on it (not a PREMIS term)
REVIEW = "review"


@dataclass
class NewEvent:
    """An event about to be appended to the log."""

    event_type: str
    outcome: str  # success / failure / warning
    agent: str
    object_type: str
    object_id: str
    detail: str | None = None
    outcome_detail: dict[str, Any] = field(default_factory=dict)
    record_id: int | None = None
    transfer_id: str | None = None
    occurred_at: dt.datetime = field(default_factory=utcnow)
    identifier: str = field(default_factory=lambda: str(uuid.uuid4()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "event_type": self.event_type,
            "occurred_at": timestamp(self.occurred_at),
            "outcome": self.outcome,
            "detail": self.detail,
            "outcome_detail": self.outcome_detail,
            "agent": self.agent,
            "object_type": self.object_type,
            "object_id": self.object_id,
        }


def timestamp(value: dt.datetime) -> str:
    """UTC ISO 8601 with microseconds; naive values (SQLite hands them back) are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(row: Event | NewEvent) -> bytes:
    body = {
        "identifier": row.identifier,
        "event_type": row.event_type,
        "occurred_at": timestamp(row.occurred_at),
        "outcome": row.outcome,
        "detail": row.detail,
        "outcome_detail": row.outcome_detail or {},
        "agent": row.agent,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "transfer_id": row.transfer_id,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def chain_hash(prev_hash: str, row: Event | NewEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(row)).hexdigest()


def _lock_head(session: Session) -> ChainHead:
    head = session.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = ChainHead(id=1, last_event_id=0, last_hash=GENESIS)
        session.add(head)
        session.flush()
    return head


def append_events(session: Session, events: Sequence[NewEvent]) -> list[Event]:
    """Append events in order, extending the chain; the caller's transaction commits them."""
    if not events:
        return []
    head = _lock_head(session)
    prev = head.last_hash
    rows: list[Event] = []
    for new in events:
        h = chain_hash(prev, new)
        row = Event(
            identifier=new.identifier,
            event_type=new.event_type,
            occurred_at=new.occurred_at,
            outcome=new.outcome,
            detail=new.detail,
            outcome_detail=new.outcome_detail,
            agent=new.agent,
            object_type=new.object_type,
            object_id=new.object_id,
            record_id=new.record_id,
            transfer_id=new.transfer_id,
            prev_hash=prev,
            hash=h,
        )
        session.add(row)
        rows.append(row)
        prev = h
    session.flush()
    head.last_event_id = rows[-1].id
    head.last_hash = prev
    return rows


def append_many(session: Session, events: Sequence[NewEvent], *, batch: int = 2000) -> None:
    """:func:`append_events` for tens of thousands of events (an ingest's five per record): the same chain,
    written with multi-row INSERTs instead of an ORM object per event."""
    if not events:
        return
    head = _lock_head(session)
    prev = head.last_hash
    table = cast("Table", Event.__table__)
    conn = session.connection()
    last_id = head.last_event_id
    for i in range(0, len(events), batch):
        rows: list[dict[str, Any]] = []
        for new in events[i : i + batch]:
            h = chain_hash(prev, new)
            rows.append(
                {
                    "identifier": new.identifier,
                    "event_type": new.event_type,
                    "occurred_at": new.occurred_at,
                    "outcome": new.outcome,
                    "detail": new.detail,
                    "outcome_detail": new.outcome_detail,
                    "agent": new.agent,
                    "object_type": new.object_type,
                    "object_id": new.object_id,
                    "record_id": new.record_id,
                    "transfer_id": new.transfer_id,
                    "prev_hash": prev,
                    "hash": h,
                }
            )
            prev = h
        ids = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars()
        last_id = list(ids)[-1]
    head.last_event_id = last_id
    head.last_hash = prev
    session.flush()


@dataclass
class ChainReport:
    ok: bool
    checked: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_hash": self.head_hash,
            "broken_at": self.broken_at,
            "reason": self.reason,
        }


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Recompute every link; report the first event whose stored hashes do not follow."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = session.execute(
            select(Event).where(Event.id > last_id).order_by(Event.id).limit(batch)
        ).scalars()
        got = 0
        for row in rows:
            got += 1
            if row.prev_hash != prev:
                return ChainReport(
                    False, checked, prev, row.id, "prev_hash does not match the previous event"
                )
            if chain_hash(prev, row) != row.hash:
                return ChainReport(False, checked, prev, row.id, "event content does not match its hash")
            prev = row.hash
            checked += 1
            last_id = row.id
        session.expunge_all()
        if got < batch:
            break
    head = session.get(ChainHead, 1)
    if head is not None and (head.last_hash != prev or head.last_event_id != last_id):
        return ChainReport(
            False, checked, prev, last_id, "events are missing after the last one (chain head ahead)"
        )
    return ChainReport(True, checked, prev)


PREMIS_NS = "http://www.loc.gov/premis/v3"


def premis_xml(events: Iterable[NewEvent], *, object_id: str) -> bytes:
    """A PREMIS 3 document of the events about one object, stored inside the OCFL object."""
    ET.register_namespace("premis", PREMIS_NS)
    q = lambda tag: f"{{{PREMIS_NS}}}{tag}"  # noqa: E731
    root = ET.Element(q("premis"), {"version": "3.0"})
    obj = ET.SubElement(root, q("object"))
    ident = ET.SubElement(obj, q("objectIdentifier"))
    ET.SubElement(ident, q("objectIdentifierType")).text = "OCFL object id"
    ET.SubElement(ident, q("objectIdentifierValue")).text = object_id
    for ev in events:
        el = ET.SubElement(root, q("event"))
        eid = ET.SubElement(el, q("eventIdentifier"))
        ET.SubElement(eid, q("eventIdentifierType")).text = "UUID"
        ET.SubElement(eid, q("eventIdentifierValue")).text = ev.identifier
        ET.SubElement(el, q("eventType")).text = ev.event_type
        ET.SubElement(el, q("eventDateTime")).text = timestamp(ev.occurred_at)
        if ev.detail:
            info = ET.SubElement(el, q("eventDetailInformation"))
            ET.SubElement(info, q("eventDetail")).text = ev.detail
        out = ET.SubElement(el, q("eventOutcomeInformation"))
        ET.SubElement(out, q("eventOutcome")).text = ev.outcome
        if ev.outcome_detail:
            det = ET.SubElement(out, q("eventOutcomeDetail"))
            ET.SubElement(det, q("eventOutcomeDetailNote")).text = json.dumps(
                ev.outcome_detail, ensure_ascii=False, sort_keys=True
            )
        agent = ET.SubElement(el, q("linkingAgentIdentifier"))
        ET.SubElement(agent, q("linkingAgentIdentifierType")).text = "software"
        ET.SubElement(agent, q("linkingAgentIdentifierValue")).text = ev.agent
        link = ET.SubElement(el, q("linkingObjectIdentifier"))
        ET.SubElement(link, q("linkingObjectIdentifierType")).text = ev.object_type
        ET.SubElement(link, q("linkingObjectIdentifierValue")).text = ev.object_id
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
