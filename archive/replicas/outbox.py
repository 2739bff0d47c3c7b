"""The replication outbox: one ``replicate`` row per committed OCFL version, in the catalogue's outbox table.

Whoever catalogues a new version (the ingest, a migration, a metadata edit) adds its row in the same
transaction (:func:`enqueue` / :func:`outbox_rows`), so a version in the catalogue is always on its way to
the replicas, and nothing is copied on the ingest's critical path. :func:`backfill` adds rows for versions
catalogued before replication existed. What each replica still lacks is :func:`pending`; ``done_at`` is
set once every replica configured at the time has the version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, cast, func, insert, select
from sqlalchemy.orm import Session

from archive.models import Archive, Outbox, Record, utcnow
from archive.replicas.models import ReplicaCopy
from archive.storage.inventory import version_number

TOPIC = "replicate"


@dataclass(frozen=True)
class Version:
    """A committed OCFL version to replicate, as the outbox holds it."""

    key: str
    object_id: str
    version: str
    bytes: int
    created_at: dt.datetime
    record_id: int | None = None
    event_type: str = "record"  # the PREMIS object type of its events: record / transfer
    event_id: str = ""  # the event's object id, e.g. GZ/档号

    @property
    def number(self) -> int:
        return version_number(self.version) or 0


def outbox_key(object_id: str, version: str) -> str:
    """The idempotency key of a version's row (object ids can be longer than the key column)."""
    return f"{TOPIC}:{hashlib.sha256(object_id.encode()).hexdigest()[:40]}:{version}"


def outbox_rows(versions: list[dict[str, Any]], now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Outbox rows for ``versions`` (dicts with ``object_id``, ``version``, ``bytes`` and optionally
    ``record_id``, ``event_type``, ``event_id``), for a bulk insert into the outbox table."""
    now = now or utcnow()
    return [
        {
            "topic": TOPIC,
            "key": outbox_key(v["object_id"], v["version"]),
            "record_id": v.get("record_id"),
            "file_id": None,
            "payload": {
                "object_id": v["object_id"],
                "version": v["version"],
                "bytes": int(v.get("bytes") or 0),
                "event_type": v.get("event_type", "record"),
                "event_id": v.get("event_id", v["object_id"]),
            },
            "created_at": now,
            "available_at": now,
            "attempts": 0,
        }
        for v in versions
    ]


def enqueue(session: Session, versions: list[dict[str, Any]]) -> None:
    """Add the rows of newly committed ``versions`` in the caller's transaction (skipping any already there)."""
    rows = outbox_rows(versions)
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        present = set(
            session.execute(select(Outbox.key).where(Outbox.key.in_([r["key"] for r in chunk]))).scalars()
        )
        chunk = [r for r in chunk if r["key"] not in present]
        if chunk:
            session.execute(insert(Outbox), chunk)


def needs_backfill(session: Session) -> bool:
    """Whether some catalogued record version has no row (two aggregate queries)."""
    expected = session.execute(
        select(func.coalesce(func.sum(cast(func.substr(Record.ocfl_head, 2), Integer)), 0))
    ).scalar_one()
    have = session.execute(
        select(func.count()).select_from(Outbox).where(Outbox.topic == TOPIC, Outbox.record_id.is_not(None))
    ).scalar_one()
    return bool(have < expected)


def backfill(session: Session) -> int:
    """Enqueue every catalogued record version that has no row yet (a home from before replication);
    returns how many were added."""
    heads = session.execute(
        select(
            Record.id,
            Record.ocfl_object_id,
            Record.ocfl_head,
            Record.byte_count,
            Record.archival_code,
            Archive.code,
        ).join(Archive, Archive.id == Record.archive_id)
    ).all()
    present = set(session.execute(select(Outbox.key).where(Outbox.topic == TOPIC)).scalars())
    missing = []
    for row in heads:
        for n in range(1, (version_number(row.ocfl_head) or 1) + 1):
            v = f"v{n}"
            if outbox_key(row.ocfl_object_id, v) not in present:
                missing.append(
                    {
                        "object_id": row.ocfl_object_id,
                        "version": v,
                        "bytes": row.byte_count if n == 1 else 0,
                        "record_id": row.id,
                        "event_id": f"{row.code}/{row.archival_code}",
                    }
                )
    for start in range(0, len(missing), 1000):
        session.execute(insert(Outbox), outbox_rows(missing[start : start + 1000]))
    return len(missing)


def _version(row: Outbox) -> Version:
    p = row.payload
    return Version(
        key=row.key,
        object_id=p["object_id"],
        version=p["version"],
        bytes=int(p.get("bytes") or 0),
        created_at=row.created_at,
        record_id=row.record_id,
        event_type=p.get("event_type", "record"),
        event_id=p.get("event_id", p["object_id"]),
    )


def pending(session: Session, replica: str) -> list[Version]:
    """The versions ``replica`` does not hold yet, oldest first; an object's versions in order."""
    rows = session.execute(
        select(Outbox)
        .outerjoin(ReplicaCopy, and_(ReplicaCopy.outbox_key == Outbox.key, ReplicaCopy.replica == replica))
        .where(Outbox.topic == TOPIC, ReplicaCopy.id.is_(None))
        .order_by(Outbox.id)
    ).scalars()
    found = [_version(r) for r in rows]
    first_seen: dict[str, int] = {}
    for i, v in enumerate(found):
        first_seen.setdefault(v.object_id, i)
    return sorted(found, key=lambda v: (first_seen[v.object_id], v.number))


def behind(session: Session, replica: str) -> tuple[int, int, dt.datetime | None]:
    """(versions, bytes, the oldest one's commit time) that ``replica`` lacks."""
    row = session.execute(
        select(func.count(Outbox.id), func.min(Outbox.created_at))
        .outerjoin(ReplicaCopy, and_(ReplicaCopy.outbox_key == Outbox.key, ReplicaCopy.replica == replica))
        .where(Outbox.topic == TOPIC, ReplicaCopy.id.is_(None))
    ).one()
    nbytes = 0
    if row[0]:
        payloads = session.execute(
            select(Outbox.payload)
            .outerjoin(
                ReplicaCopy, and_(ReplicaCopy.outbox_key == Outbox.key, ReplicaCopy.replica == replica)
            )
            .where(Outbox.topic == TOPIC, ReplicaCopy.id.is_(None))
        ).scalars()
        nbytes = sum(int(p.get("bytes") or 0) for p in payloads)
    oldest = row[1]
    if oldest is not None and oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=dt.UTC)
    return int(row[0]), nbytes, oldest


def mark_copied(
    session: Session, replica: str, copies: list[tuple[Version, int, int]], all_replicas: list[str]
) -> None:
    """Record ``copies`` ((version, files, bytes) each) as whole at ``replica``; close the outbox rows that
    every configured replica now holds."""
    now = utcnow()
    session.execute(
        insert(ReplicaCopy),
        [
            {
                "replica": replica,
                "outbox_key": v.key,
                "object_id": v.object_id,
                "version": v.version,
                "bytes": nbytes,
                "files": files,
                "copied_at": now,
            }
            for v, files, nbytes in copies
        ],
    )
    keys = [v.key for v, _f, _b in copies]
    held = session.execute(
        select(ReplicaCopy.outbox_key, func.count(ReplicaCopy.id))
        .where(ReplicaCopy.outbox_key.in_(keys), ReplicaCopy.replica.in_(all_replicas))
        .group_by(ReplicaCopy.outbox_key)
    ).all()
    whole = [k for k, n in held if n >= len(all_replicas)]
    if whole:
        for row in session.execute(select(Outbox).where(Outbox.key.in_(whole))).scalars():
            row.done_at = now
