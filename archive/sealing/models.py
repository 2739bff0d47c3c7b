"""The timestamp outbox (migration ``0011_seals``): one row per commit of sealed versions (an ingest's
batch, a migration's version), drained by ``archive seals sync`` and the beat schedule.

Signing happens inside the OCFL commit; asking the TSA does not, so a TSA outage never blocks an ingest.
A row stays pending while any of its versions has no token; ``archive seals status`` shows the gap.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import Base, utcnow


class SealOutbox(Base):
    __tablename__ = "seal_outbox"
    __table_args__ = (Index("ix_seal_outbox_pending", "pending"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: [{"object_id", "version", "digest" (sha512 hex of the inventory), "sealed_at", "algorithm",
    #:   "key_id", "logged" (signature event recorded), "token" (token stored)}]
    items: Mapped[list[Any]]
    #: versions of ``items`` still without a token (0: done)
    pending: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
