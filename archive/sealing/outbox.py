"""The timestamp outbox: what was sealed at commit, recorded as PREMIS events and timestamped afterwards.

A catalogue transaction that commits versions calls :func:`enqueue` with what the store's sealer signed (one
row per commit). :func:`sync` (``archive seals sync``, the beat every ``ARCHIVE_DISPATCH_INTERVAL``) records
each version's signature event, asks the TSA for its token, stores the token beside the seal and records a
second event; a TSA that cannot be reached stops the pass and leaves the rest for the next one. Every step is
idempotent: a token already on disk (a crash before the catalogue heard of it) is not asked for again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import db
from archive.config import Settings
from archive.events import NewEvent, append_events
from archive.home import store_for
from archive.models import Record, utcnow
from archive.sealing.errors import TsaRejected, TsaUnavailable
from archive.sealing.models import SealOutbox
from archive.sealing.seals import Sealed, ensure_sealed, has_token, read_seal, write_tokens
from archive.sealing.tsa import request_token, token_time

AGENT = "pearl-archive sealing"
SIGNATURE = "digital signature generation"  # PREMIS eventType (id.loc.gov)


def enqueue(session: Session, sealed: Sequence[Sealed]) -> None:
    """Add what one commit sealed to the outbox, in the caller's catalogue transaction."""
    if sealed:
        session.add(SealOutbox(items=[s.item() for s in sealed], pending=len(sealed), attempts=0))


@dataclass
class SyncReport:
    signed_logged: int = 0
    timestamped: int = 0
    waiting: int = 0  # versions still without a token after this pass
    error: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "signatures_recorded": self.signed_logged,
            "timestamped": self.timestamped,
            "waiting": self.waiting,
            "error": self.error,
            "problems": self.problems,
        }


def _parse(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _done(item: dict[str, Any]) -> bool:
    return bool(item["logged"] and item["token"])


def sync(settings: Settings, *, limit: int = 1000) -> SyncReport:
    """Drain up to ``limit`` outbox rows now; returns what was done (a TSA outage is reported, not raised)."""
    report = SyncReport()
    with db.read_session(settings) as s:
        ids = list(
            s.execute(
                select(SealOutbox.id).where(SealOutbox.pending > 0).order_by(SealOutbox.id).limit(limit)
            )
            .scalars()
            .all()
        )
    with httpx.Client(timeout=settings.tsa_timeout) as client:  # one connection pool for the whole pass
        for row_id in ids:
            error = _sync_row(settings, row_id, client, report)
            if error is not None:
                report.error = error.as_dict()
                break
    return report


def _sync_row(
    settings: Settings, row_id: int, client: httpx.Client, report: SyncReport
) -> TsaUnavailable | TsaRejected | None:
    store = store_for(settings)
    with db.read_session(settings) as s:
        row = s.get(SealOutbox, row_id)
        if row is None:
            return None
        items = [dict(i) for i in row.items]
    events: list[NewEvent] = []
    wanted: list[tuple[dict[str, Any], Path, bytes]] = []  # item, object directory, inventory bytes
    for item in items:
        if _done(item):
            continue
        obj = store.object_path(item["object_id"])
        if not obj.exists():  # undone ingest: nothing left to timestamp
            item.update(logged=True, token=True, gone=True)
            continue
        if not item["logged"]:
            sealed = ensure_sealed(settings, obj, item["object_id"], item["version"], store.staging_dir)
            events.append(_signature_event(sealed))
            item["logged"] = True
            report.signed_logged += 1
        if item["token"] or not settings.tsa_url:
            continue
        if has_token(obj, item["version"]):  # stored before a crash, the catalogue never heard
            item["token"] = True
            continue
        inventory = (obj / item["version"] / "inventory.json").read_bytes()
        if hashlib.sha512(inventory).hexdigest() != item["digest"]:
            report.problems.append(f"{item['object_id']} {item['version']}: inventory differs from its seal")
            continue  # never timestamp a changed inventory: `archive verify` names it
        wanted.append((item, obj, inventory))
    tokens: list[tuple[dict[str, Any], Path, bytes]] = []
    error: TsaUnavailable | TsaRejected | None = None
    for item, obj, inventory in wanted:
        try:
            tokens.append((item, obj, request_token(settings, inventory, client=client)))
        except (TsaUnavailable, TsaRejected) as exc:
            error = exc
            break
    write_tokens([(obj, item["version"], token) for item, obj, token in tokens], store.staging_dir)
    for item, _obj, token in tokens:
        item["token"] = True
        report.timestamped += 1
        events.append(_token_event(settings, item, token))
    with db.write_session(settings) as s:
        row = s.get(SealOutbox, row_id)
        assert row is not None
        row.items = items
        row.pending = sum(1 for i in items if not _done(i))
        row.updated_at = utcnow()
        if error is not None:
            row.attempts += 1
            row.last_error = str(error)
        if events:
            _link_records(s, events)
            append_events(s, events)
    report.waiting += sum(1 for i in items if not i["token"])
    return error


def backfill(settings: Settings, *, batch: int = 1000) -> int:
    """Seal every stored version that has no seal yet (committed before sealing existed, or by a store without
    a sealer) and queue it for its timestamp; returns how many were sealed. Their ``sealedAt`` is now, not
    their commit time: the evidence starts today."""
    store = store_for(settings)
    pending: list[Sealed] = []
    count = 0
    for object_id in store.iter_objects():
        obj = store.object_path(object_id)
        for version in store.read_inventory(object_id)["versions"]:
            if read_seal(obj, version) is None:
                pending.append(ensure_sealed(settings, obj, object_id, version, store.staging_dir))
        if len(pending) >= batch:
            count += _enqueue_now(settings, pending)
    return count + _enqueue_now(settings, pending)


def _enqueue_now(settings: Settings, sealed: list[Sealed]) -> int:
    n = len(sealed)
    if sealed:
        with db.write_session(settings) as s:
            enqueue(s, list(sealed))
        sealed.clear()
    return n


def _signature_event(sealed: Sealed) -> NewEvent:
    return NewEvent(
        event_type=SIGNATURE,
        outcome="success",
        agent=AGENT,
        object_type="record",
        object_id=sealed.object_id,
        detail=f"inventory of OCFL {sealed.version} signed ({sealed.algorithm})",
        outcome_detail={
            "ocfl_version": sealed.version,
            "inventory_sha512": sealed.digest,
            "algorithm": sealed.algorithm,
            "key_id": sealed.key_id,
        },
        occurred_at=_parse(sealed.sealed_at),
    )


def _token_event(settings: Settings, item: dict[str, Any], token: bytes) -> NewEvent:
    return NewEvent(
        event_type=SIGNATURE,
        outcome="success",
        agent=AGENT,
        object_type="record",
        object_id=item["object_id"],
        detail=f"RFC 3161 timestamp of the inventory of OCFL {item['version']}",
        outcome_detail={
            "ocfl_version": item["version"],
            "inventory_sha512": item["digest"],
            "tsa": settings.tsa_url,
            "gen_time": token_time(token),
        },
    )


def _link_records(session: Session, events: list[NewEvent]) -> None:
    ids = {e.object_id for e in events}
    rows = session.execute(select(Record.ocfl_object_id, Record.id).where(Record.ocfl_object_id.in_(ids)))
    found = {oid: rid for oid, rid in rows}
    for e in events:
        e.record_id = found.get(e.object_id)


def status(settings: Settings) -> dict[str, Any]:
    """The gap: versions without a token (and without a recorded signature event), the oldest one's age."""
    with db.read_session(settings) as s:
        rows = (
            s.execute(select(SealOutbox).where(SealOutbox.pending > 0).order_by(SealOutbox.id))
            .scalars()
            .all()
        )
        untimed = [(r, i) for r in rows for i in r.items if not i["token"]]
        unlogged = sum(1 for r in rows for i in r.items if not i["logged"])
        last_error = next((r.last_error for r in reversed(rows) if r.last_error), None)
    oldest = min((_parse(i["sealed_at"]) for _r, i in untimed), default=None)
    return {
        "tsa_url": settings.tsa_url,
        "versions_without_token": len(untimed),
        "signatures_not_recorded": unlogged,
        "oldest_without_token": oldest.isoformat() if oldest else None,
        "oldest_age_seconds": round((utcnow() - oldest).total_seconds(), 1) if oldest else 0.0,
        "last_error": last_error,
    }
