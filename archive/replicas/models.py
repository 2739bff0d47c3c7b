"""Catalogue table of the replicas (migration ``0012_replicas``): which version reached which replica.

The versions to copy are ``replicate`` rows of the catalogue's outbox (one per committed OCFL version,
written in the transaction that catalogues the version); a ``ReplicaCopy`` row is written only once the
whole version is at that replica and verified there. A replica added later is simply behind by every
version it has no row for.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import Base, utcnow


class ReplicaCopy(Base):
    """A version copied whole to a replica and verified there."""

    __tablename__ = "replica_copies"
    __table_args__ = (
        UniqueConstraint("replica", "outbox_key"),
        Index("ix_replica_copies_object", "object_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    replica: Mapped[str] = mapped_column(String(1024))  # the ARCHIVE_REPLICAS entry
    outbox_key: Mapped[str] = mapped_column(String(255))  # the outbox row's key: replicate:<hash>:<version>
    object_id: Mapped[str] = mapped_column(String(512))
    version: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(BigInteger, default=0)
    copied_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
