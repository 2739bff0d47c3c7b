"""Catalogue tables of the federation (migration ``0002_federation``): the peers this node trusts and the
signature nonces it has seen.

They hang off :class:`archive.models.Base`, so ``Base.metadata`` (Alembic's target) knows them once this
module is imported; :mod:`archive.federation` imports it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import Base, utcnow


class Peer(Base):
    """A node this node trusts: it answers the peer's signed calls and asks it in regional queries."""

    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(1024))
    #: The raw 32-byte Ed25519 public key, base64 (standard alphabet, padded).
    public_key: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    archives: Mapped[list[Any]] = mapped_column(JSON, default=list)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    key_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_contact_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)


class SeenNonce(Base):
    """A signature nonce, kept until its signature expires, so that a replay is refused by every worker
    process sharing the catalogue (the unique constraint decides the race)."""

    __tablename__ = "federation_nonces"
    __table_args__ = (
        UniqueConstraint("key_id", "nonce"),
        Index("ix_federation_nonces_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
