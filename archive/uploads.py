"""Resumable uploads (tus) and the digest that recognises the same bag sent twice (migration ``0007_uploads``).

An :class:`Upload` is a partial bag under ``$ARCHIVE_HOME/uploads/partial/<id>``: its offset is the file's
size (what reached the disk is kept across a cut connection), its expiry is set at creation
(``ARCHIVE_UPLOAD_EXPIRE_HOURS``), and when its last byte arrives it becomes a transfer like any bag sent to
``POST /api/v1/transfers``. Every uploaded bag's SHA-256 (computed while it streams in) is kept in
:class:`TransferDigest`: a second upload of the same bytes to the same archive is answered with the first
transfer instead of a new ingest, unless that one was rejected or interrupted (then the bag may try again:
a rejection can depend on the catalogue, e.g. a 档号 held by another transfer since withdrawn).
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from archive.config import Settings
from archive.errors import NotFound, UploadExpired
from archive.models import Archive, Base, Transfer, TransferStatus, utcnow
from archive.services import get_archive

#: Transfers whose bag may be sent again (a re-upload is ingested anew rather than pointed at them).
RETRYABLE = (TransferStatus.rejected, TransferStatus.interrupted)


class Upload(Base):
    """A resumable upload of one bag, from creation until it becomes a transfer (or expires)."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id"))
    login: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    length: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    sha256: Mapped[str | None] = mapped_column(String(64))
    #: the transfer it became, or the earlier transfer of the same bytes it was recognised as
    transfer_id: Mapped[str | None] = mapped_column(String(40))
    duplicate_of: Mapped[str | None] = mapped_column(String(40))

    archive: Mapped[Archive] = relationship()


class TransferDigest(Base):
    """The SHA-256 of the bag file uploaded for a transfer (API or tus), to recognise the same bag again."""

    __tablename__ = "transfer_digests"
    __table_args__ = (Index("ix_transfer_digests_archive_sha256", "archive_id", "sha256"),)

    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id"), primary_key=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id"))
    sha256: Mapped[str] = mapped_column(String(64))


def partial_dir(settings: Settings) -> Path:
    """Where partial uploads are written (beside the finished uploads, so completing one is a rename)."""
    return settings.home_dir / "uploads" / "partial"


def partial_path(settings: Settings, upload_id: str) -> Path:
    return partial_dir(settings) / upload_id


def create_upload(
    session: Session,
    settings: Settings,
    archive: str,
    *,
    login: str,
    filename: str,
    length: int,
    now: dt.datetime | None = None,
) -> Upload:
    """Register a new upload and create its (empty) file."""
    now = now or utcnow()
    arch = get_archive(session, archive)
    upload = Upload(
        id=uuid.uuid4().hex,
        archive_id=arch.id,
        login=login,
        filename=filename,
        length=length,
        created_at=now,
        expires_at=now + dt.timedelta(hours=settings.upload_expire_hours),
    )
    session.add(upload)
    session.flush()
    partial_dir(settings).mkdir(parents=True, exist_ok=True)
    partial_path(settings, upload.id).touch(exist_ok=False)
    return upload


def get_upload(session: Session, upload_id: str, now: dt.datetime | None = None) -> Upload:
    """The upload ``upload_id``; :class:`NotFound` when unknown, :class:`UploadExpired` when past its expiry
    and not complete."""
    upload = session.get(Upload, upload_id) if len(upload_id) <= 32 else None
    if upload is None:
        raise NotFound()
    if upload.completed_at is None and aware(upload.expires_at) <= (now or utcnow()):
        raise UploadExpired(upload=upload_id)
    return upload


def aware(when: dt.datetime) -> dt.datetime:
    """``when`` in UTC: SQLite gives naive UTC back, PostgreSQL the session's time zone."""
    return when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)


def first_transfer(session: Session, archive_id: int, sha256: str) -> str | None:
    """The earliest transfer of the same bytes to the same archive that was not rejected or interrupted."""
    return session.execute(
        select(Transfer.id)
        .join(TransferDigest, TransferDigest.transfer_id == Transfer.id)
        .where(
            TransferDigest.archive_id == archive_id,
            TransferDigest.sha256 == sha256,
            Transfer.status.not_in([str(s) for s in RETRYABLE]),
        )
        .order_by(Transfer.started_at, Transfer.id)
        .limit(1)
    ).scalar_one_or_none()


def lock_archive(session: Session, archive: str) -> Archive:
    """The archive's row, locked until the transaction ends on PostgreSQL (SQLite's write session already
    serialises writers), so two uploads of the same bag at once cannot both start an ingest."""
    found = session.execute(
        select(Archive).where(Archive.code == archive).with_for_update()
    ).scalar_one_or_none()
    if found is None:
        return get_archive(session, archive)  # raises UnknownArchive
    return found


def record_digest(session: Session, transfer_id: str, archive_id: int, sha256: str) -> None:
    session.add(TransferDigest(transfer_id=transfer_id, archive_id=archive_id, sha256=sha256))


@dataclass(frozen=True)
class Cleaned:
    upload_id: str
    archive: str | None
    bytes: int


def clean_expired(settings: Settings, now: dt.datetime | None = None) -> list[Cleaned]:
    """Remove the partial uploads past their expiry (row and bytes), and partial files no row knows of
    (a crash between creating the file and committing its row). Safe to run while uploads go on."""
    now = now or utcnow()
    from archive import db

    cleaned: list[Cleaned] = []
    with db.write_session(settings) as s:
        rows = (
            s.execute(select(Upload).where(Upload.completed_at.is_(None), Upload.expires_at <= now))
            .scalars()
            .all()
        )
        for upload in rows:
            path = partial_path(settings, upload.id)
            size = path.stat().st_size if path.exists() else 0
            path.unlink(missing_ok=True)
            path.with_suffix(".lock").unlink(missing_ok=True)
            cleaned.append(Cleaned(upload.id, upload.archive.code if upload.archive else None, size))
            s.delete(upload)
        folder = partial_dir(settings)
        if folder.is_dir():
            known = set(s.execute(select(Upload.id)).scalars())
            for path in folder.iterdir():
                stem = path.name.removesuffix(".lock")
                old = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) < now - dt.timedelta(hours=1)
                if stem not in known and old:
                    size = path.stat().st_size
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
                    if not path.name.endswith(".lock"):
                        cleaned.append(Cleaned(stem, None, size))
    return cleaned
