"""The bookkeeping of ingest jobs (bags uploaded through the staff API or tus, ingested by a worker).

The transfer row is the job's state: ``received`` (queued, or waiting for a retry) → ``validating`` →
``storing`` → ``stored`` | ``rejected``. A failure that is not a rejection (the disk, the database, a bug)
is retried with the preservation tasks' backoff; when the retries are spent the transfer is ``rejected`` with
problem UPL006 (the attempts and the last error) and its upload removed, never left ``received`` for ever. A
bag whose upload is gone is ``rejected`` with UPL007.

A worker killed mid-ingest (SIGKILL, OOM, power cut) leaves the transfer under a dead process of its host: a
worker starting on that host rolls it back (:func:`archive.home.recover_transfers`) and queues it again
(:func:`recover_dead_ingests`), as :func:`preservation.jobs.recover_dead_workers` does for migrations. A
redelivered message of a transfer that was decided meanwhile is a no-op (:func:`claim`).
"""

from __future__ import annotations

import enum
import os
import shutil
import socket
from pathlib import Path

from sqlalchemy import select

from archive import db
from archive.codes import info, render
from archive.config import Settings
from archive.errors import ArchiveError
from archive.events import NewEvent, append_events
from archive.home import FINAL, recover_transfers
from archive.models import Transfer, TransferStatus, utcnow

AGENT = "pearl-archive worker"


class Claim(enum.StrEnum):
    go = "go"  # ingest it now
    decided = "decided"  # stored or rejected already: a redelivered message
    elsewhere = "elsewhere"  # a live process of this host is ingesting it
    unknown = "unknown"  # no such transfer (its registration was rolled back)


def _alive(pid: int | None) -> bool:
    if not pid or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(settings: Settings, transfer_id: str) -> Claim:
    """Whether this process should ingest ``transfer_id`` now."""
    with db.read_session(settings) as s:
        transfer = s.get(Transfer, transfer_id)
        if transfer is None:
            return Claim.unknown
        if transfer.status in (TransferStatus.stored, TransferStatus.rejected):
            return Claim.decided
        busy = transfer.status in (TransferStatus.validating, TransferStatus.storing)
        if busy and transfer.host == socket.gethostname() and _alive(transfer.pid):
            return Claim.elsewhere
    return Claim.go


def _problem(code: str, **details: object) -> dict[str, str]:
    zh, en = render(code, details)
    return {"code": code, "severity": info(code).severity, "message_zh": zh, "message_en": en, "path": ""}


def _reason(exc: BaseException) -> str:
    return f"{exc.code}: {exc.en}" if isinstance(exc, ArchiveError) else f"{type(exc).__name__}: {exc}"


def retrying(settings: Settings, transfer_id: str, exc: BaseException, countdown: float) -> None:
    """Before a retry: the transfer is ``received`` again (waiting), with an event saying why."""
    with db.write_session(settings) as s:
        transfer = s.get(Transfer, transfer_id)
        if transfer is None or transfer.status in FINAL:
            return
        transfer.status = TransferStatus.received
        append_events(
            s,
            [
                NewEvent(
                    event_type="ingestion",
                    outcome="warning",
                    agent=AGENT,
                    object_type="transfer",
                    object_id=transfer_id,
                    transfer_id=transfer_id,
                    detail=f"ingest attempt failed, retried in {countdown:.0f} s: {_reason(exc)}",
                )
            ],
        )


def give_up(settings: Settings, transfer_id: str, code: str, **details: object) -> None:
    """The ingest cannot be done: the transfer is ``rejected`` with the problem ``code``; the upload goes."""
    problem = _problem(code, **details)
    source: str | None = None
    with db.write_session(settings) as s:
        transfer = s.get(Transfer, transfer_id)
        if transfer is None or transfer.status in (TransferStatus.stored, TransferStatus.rejected):
            return
        source = transfer.source
        transfer.status = TransferStatus.rejected
        transfer.finished_at = utcnow()
        transfer.problems = [*(transfer.problems or []), problem]
        transfer.problem_counts = {**(transfer.problem_counts or {}), code: 1}
        append_events(
            s,
            [
                NewEvent(
                    event_type="ingestion",
                    outcome="failure",
                    agent=AGENT,
                    object_type="transfer",
                    object_id=transfer_id,
                    transfer_id=transfer_id,
                    detail=problem["message_en"],
                    outcome_detail={"code": code},
                )
            ],
        )
    remove_upload(settings, source)


def remove_upload(settings: Settings, source: str | None) -> None:
    """Remove an uploaded bag's folder (``$ARCHIVE_HOME/uploads/<transfer>/``), and nothing outside it."""
    if not source:
        return
    folder = Path(source).parent
    uploads = (settings.home_dir / "uploads").resolve()
    if folder.resolve().parent == uploads and folder.name != "partial":
        shutil.rmtree(folder, ignore_errors=True)


def recover_dead_ingests(settings: Settings) -> list[tuple[str, str, str]]:
    """At worker start: roll back transfers whose process died, then return (transfer, bag path, archive)
    of every uploaded transfer on this host left undecided by a dead process, set ``received`` again."""
    recover_transfers(settings)
    host = socket.gethostname()
    found: list[tuple[str, str, str]] = []
    with db.write_session(settings) as s:
        rows = s.execute(
            select(Transfer).where(
                Transfer.status.in_(
                    [
                        str(TransferStatus.received),
                        str(TransferStatus.validating),
                        str(TransferStatus.storing),
                        str(TransferStatus.interrupted),
                    ]
                ),
                Transfer.host == host,
            )
        ).scalars()
        uploads = (settings.home_dir / "uploads").resolve()
        for transfer in list(rows):
            source = Path(transfer.source)
            if transfer.archive is None or source.resolve().parent.parent != uploads or not source.exists():
                continue
            if transfer.status != TransferStatus.interrupted and _alive(transfer.pid):
                continue
            transfer.status = TransferStatus.received
            transfer.problems = []
            transfer.finished_at = None
            found.append((transfer.id, str(source), transfer.archive.code))
    return found
