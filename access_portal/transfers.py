"""A bag that has arrived (in one piece through ``POST /api/v1/transfers`` or resumably through tus) becomes a
transfer: registered ``received`` and queued for a worker, or, when the same bytes already went to the same
archive, recognised as that earlier transfer (see :mod:`archive.uploads` for when a re-upload may try again).
A bag sent in one piece (the API's ``POST /api/v1/transfers`` and the workspace's upload form) arrives through
:func:`receive_bag`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from archive import db, services
from archive.config import Settings
from archive.errors import BadArgument, NotFound, UnknownArchive, UploadTooLarge
from archive.events import NewEvent, append_events
from archive.models import utcnow
from archive.uploads import Upload, first_transfer, lock_archive, record_digest

#: What a bag may be sent as (the ingest reads the archive's content, not its name; the name is the bag's).
BAG_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
CHUNK = 1 << 20


def bag_name(filename: str | None) -> str:
    """The bag's file name as sent, refused (BadArgument) unless it is a plain .zip, .tar or .tar.gz name."""
    name = Path(filename or "").name
    if not name or name.startswith(".") or not name.lower().endswith(BAG_SUFFIXES) or "\x00" in name:
        raise BadArgument(variant="bag_upload_name")
    return name


def store_upload(settings: Settings, upload: BinaryIO, transfer_id: str, name: str) -> tuple[Path, str]:
    """Copy the uploaded bag (the request's file) under ``$ARCHIVE_HOME/uploads/<transfer>/``, refusing more than the transfer
    limit (``ARCHIVE_MAX_TRANSFER_BYTES``), and hash it (SHA-256) on the way; the worker's task removes the
    folder after the ingest."""
    folder = settings.home_dir / "uploads" / transfer_id
    folder.mkdir(parents=True, exist_ok=False)
    target = folder / name
    limit = settings.transfer_byte_limit()
    written = 0
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        while chunk := upload.read(CHUNK):
            written += len(chunk)
            if written > limit:
                out.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise UploadTooLarge(limit=limit)
            out.write(chunk)
            digest.update(chunk)
        out.flush()
        os.fsync(out.fileno())
    return target, digest.hexdigest()


@dataclass(frozen=True)
class Accepted:
    transfer_id: str
    #: the earlier transfer of the same bytes this upload was recognised as (then no ingest was queued)
    duplicate_of: str | None = None

    @property
    def status_url(self) -> str:
        return f"/api/v1/transfers/{self.transfer_id}"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "transfer_id": self.transfer_id,
            "status_url": self.status_url,
            "duplicate_of": self.duplicate_of,
        }


def accept_bag(
    settings: Settings,
    archive: str,
    path: Path,
    sha256: str,
    *,
    transfer_id: str,
    actor: str,
    upload: str | None = None,
    now: dt.datetime | None = None,
) -> Accepted:
    """Register and queue the bag at ``path`` (under ``$ARCHIVE_HOME/uploads/<transfer_id>/``) as
    ``transfer_id``, or point at the earlier transfer of the same bytes (and remove this copy). ``upload``
    names the tus upload that brought it, marked complete in the same transaction."""
    from preservation.jobs import send_ingest  # the portal queues work for the workers

    with db.write_session(settings) as s:
        arch = lock_archive(s, archive)
        first = first_transfer(s, arch.id, sha256)
        if first is None:
            services.register_upload(
                s, transfer_id, archive, source=str(path), bag_name=path.name, actor=actor
            )
            record_digest(s, transfer_id, arch.id, sha256)
        else:
            append_events(
                s,
                [
                    NewEvent(
                        event_type="transfer",
                        outcome="warning",
                        agent=actor,
                        object_type="transfer",
                        object_id=first,
                        transfer_id=first,
                        detail=f"the same bag ({path.name}, sha256 {sha256}) was uploaded again for "
                        f"{arch.code} by {actor}; answered with this transfer, not ingested again",
                        outcome_detail={"agent_type": "person", "sha256": sha256},
                    )
                ],
            )
        if upload is not None:
            row = s.get(Upload, upload)
            if row is not None:
                row.completed_at = now or utcnow()
                row.sha256 = sha256
                row.transfer_id = first or transfer_id
                row.duplicate_of = first
    if first is not None:
        shutil.rmtree(path.parent, ignore_errors=True)
        return Accepted(first, duplicate_of=first)
    send_ingest(settings, transfer_id, str(path), archive)
    return Accepted(transfer_id)


def receive_bag(
    settings: Settings, archive: str, upload: BinaryIO, filename: str | None, *, actor: str
) -> Accepted:
    """A bag sent in one piece: its name checked (:func:`bag_name`), its bytes kept (:func:`store_upload`),
    then registered and queued (:func:`accept_bag`). Raises BadArgument (the name), UploadTooLarge, or
    NotFound for an archive the catalogue does not know (nothing kept)."""
    from ingest.pipeline import new_transfer_id

    name = bag_name(filename)
    transfer_id = new_transfer_id()
    path, sha256 = store_upload(settings, upload, transfer_id, name)
    try:
        return accept_bag(settings, archive, path, sha256, transfer_id=transfer_id, actor=actor)
    except UnknownArchive:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise NotFound() from None
