"""Tables of 四性检测: one row per check run, one per item of a run, and results recorded by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from archive.models import Archive, Base, utcnow


class CheckRun(Base):
    """A run of checks: the receipt checks of one transfer, a preservation cycle, or the checks after a
    migration or repair. The whole report is the JSON file ``report_file`` (its sha256 is recorded here and
    as an event); every failure is in ``failures_file``."""

    __tablename__ = "check_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # e.g. C20261207-001500-1a2b3c4d
    stage: Mapped[str] = mapped_column(String(16), index=True)  # receipt / preservation
    scope: Mapped[str] = mapped_column(String(16))  # transfer / full / sample / objects
    archive_id: Mapped[int | None] = mapped_column(ForeignKey("archives.id"), index=True)
    transfer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    seed: Mapped[int | None] = mapped_column(
        BigInteger
    )  # a sample's seed: the same seed draws the same sample
    fraction: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))  # pass / fail / warn: the worst automatic item
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    agent: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    report_file: Mapped[str | None] = mapped_column(Text)
    failures_file: Mapped[str | None] = mapped_column(Text)
    report_sha256: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(
        default=dict
    )  # e.g. the objects a post-migration run covered

    archive: Mapped[Archive | None] = relationship()
    items: Mapped[list[CheckItem]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="CheckItem.id"
    )


class CheckItem(Base):
    """One item's outcome in a run (the numbers behind the pass rates per archive, property and stage)."""

    __tablename__ = "check_items"
    __table_args__ = (UniqueConstraint("run_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("check_runs.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(8))  # DA/T 70 item
    property: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8))  # pass / fail / warn / manual / n/a
    checked: Mapped[int] = mapped_column(Integer, default=0)  # how many things the item looked at
    failure_count: Mapped[int] = mapped_column(Integer, default=0)

    run: Mapped[CheckRun] = relationship(back_populates="items")


class ManualCheck(Base):
    """A result of a manual item (carrier appearance, optical disc quality) recorded by a person."""

    __tablename__ = "manual_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(8), index=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id"), index=True)
    transfer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(8))  # pass / fail
    note: Mapped[str | None] = mapped_column(Text)
    agent: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    archive: Mapped[Archive] = relationship()
