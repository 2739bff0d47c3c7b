"""How far behind each replica is: versions and bytes it lacks, and the age of the oldest (the RPO now)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from archive import db
from archive.config import Settings
from archive.models import utcnow
from archive.replicas import outbox
from archive.replicas.errors import NoReplicas
from archive.replicas.models import ReplicaCopy
from archive.replicas.target import S3Target, targets


@dataclass
class ReplicaStatus:
    replica: str
    kind: str  # "fs" / "s3"
    versions_behind: int
    bytes_behind: int
    oldest_unreplicated_at: dt.datetime | None
    rpo_seconds: float  # age of the oldest version the replica lacks; 0 when it lacks none
    versions_copied: int
    last_copied_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "kind": self.kind,
            "versions_behind": self.versions_behind,
            "bytes_behind": self.bytes_behind,
            "oldest_unreplicated_at": self.oldest_unreplicated_at.isoformat()
            if self.oldest_unreplicated_at
            else None,
            "rpo_seconds": round(self.rpo_seconds, 3),
            "versions_copied": self.versions_copied,
            "last_copied_at": self.last_copied_at.isoformat() if self.last_copied_at else None,
        }


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def status(settings: Settings) -> list[ReplicaStatus]:
    """One line per configured replica, read from the catalogue alone (no replica is contacted)."""
    configured = targets(settings)
    if not configured:
        raise NoReplicas()
    now = utcnow()
    found = []
    with db.read_session(settings) as s:
        for t in configured:
            n, nbytes, oldest = outbox.behind(s, t.name)
            copied, last = s.execute(
                select(func.count(ReplicaCopy.id), func.max(ReplicaCopy.copied_at)).where(
                    ReplicaCopy.replica == t.name
                )
            ).one()
            found.append(
                ReplicaStatus(
                    replica=t.name,
                    kind="s3" if isinstance(t, S3Target) else "fs",
                    versions_behind=n,
                    bytes_behind=nbytes,
                    oldest_unreplicated_at=oldest,
                    rpo_seconds=(now - oldest).total_seconds() if oldest else 0.0,
                    versions_copied=int(copied),
                    last_copied_at=_aware(last),
                )
            )
    return found
