"""Celery tasks of the preservation workers, on one base class that does the bookkeeping.

:class:`PreservationTask` (after warehouse's ``WarehouseTask``) gives every task its ``Settings``, timing and
logging, and the retry policy: exponential backoff with jitter (2 s, 4 s, 8 s … capped at 10 minutes) up to
``Settings.task_max_retries`` times; errors that no retry can mend
(:data:`PERMANENT`: an unrepairable PDF, a missing tool, an unknown file…) fail at once. A task declared with
``tracks_job=True`` takes ``(file_id, action)`` and has its job row kept up to date by the base: ``running``
when it starts, ``retrying`` with the reason before each retry, ``failed`` with the reason and a PREMIS
failure event when it gives up (:mod:`preservation.jobs`). The message is acknowledged after that (acks
late), so a task that gave up is not redelivered; one whose worker died is.

The bodies are one line each: :func:`dispatch_pending` (drain the migrate outbox), :func:`migrate_file`
(:func:`preservation.migrate.migrate`) and :func:`audit_incremental` (:func:`preservation.audit.run_audit`
for the objects not verified for ``Settings.audit_cycle_days`` days, oldest-verified first, resumable).

:class:`IngestTask` is the ingest of an uploaded bag: retried like the others, and when it gives up its
transfer is rejected with UPL006 (:mod:`preservation.ingest_jobs`) instead of staying ``received``.

Worker signals: each child process drops inherited database connections after fork; a worker that becomes
ready cleans the staging area of dead processes and re-queues the jobs (migrations and ingests) its host's
dead workers held.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import Retry
from celery.signals import worker_process_init, worker_ready
from sqlalchemy.exc import IntegrityError, OperationalError

from archive import db
from archive.config import Settings, get_settings
from archive.errors import ArchiveError, NotFound, ServiceUnavailable, UsageError
from archive.models import TransferStatus, utcnow
from archive.storage import StorageError, VersionConflict
from preservation import ingest_jobs, jobs
from preservation.celery_app import (
    AUDIT_TASK,
    CLEAN_UPLOADS_TASK,
    DISPATCH_TASK,
    HARVEST_TASK,
    INGEST_TASK,
    MIGRATE_TASK,
    REDECIDE_TASK,
    app,
    dispose_broker_engines,
)
from preservation.migrate import clean_staging, migrate
from preservation.tools import NoSafeAction, PolicyInvalid, ToolMissing, Unrepairable

log = logging.getLogger("preservation.tasks")

#: Errors a retry cannot mend: give up at once.
PERMANENT: tuple[type[BaseException], ...] = (
    Unrepairable,
    NoSafeAction,
    PolicyInvalid,
    ToolMissing,
    NotFound,
    UsageError,
)
#: Errors that say "try again soon" rather than "this attempt failed".
TRANSIENT: tuple[type[BaseException], ...] = (
    VersionConflict,
    OperationalError,
    IntegrityError,
    ServiceUnavailable,  # the database server out of reach (was an OperationalError before it was coded)
)

BACKOFF_BASE = 2.0
BACKOFF_MAX = 600.0


def backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: 2, 4, 8 … with ±25 % jitter, at most 10 minutes."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**retries)
    return round(delay * random.uniform(0.75, 1.25), 2)


class PreservationTask(Task):
    """Base of every preservation task: settings, logging, retries, job bookkeeping."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = get_settings().task_max_retries
    tracks_job = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            type(self)._settings = get_settings()
        assert self._settings is not None
        return self._settings

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        attempt = self.request.retries + 1 if self.request else 1
        label = f"{self.name}{list(args)} [{self.request.id if self.request else '-'}] attempt {attempt}"
        log.debug("start %s", label)
        if self.tracks_job:
            jobs.mark_running(self.settings, int(args[0]), str(args[1]))
        try:
            result = super().__call__(*args, **kwargs)
        except Retry:
            raise
        except Exception as exc:
            return self._failed(exc, args, label, time.perf_counter() - started)
        log.debug("done %s in %.2fs: %s", label, time.perf_counter() - started, result)
        return result

    def _failed(self, exc: Exception, args: tuple[Any, ...], label: str, seconds: float) -> Any:
        retries = self.request.retries if self.request else 0
        limit = self.max_retries if self.max_retries is not None else 0
        if (
            isinstance(exc, PERMANENT)
            or (retries >= limit and not isinstance(exc, TRANSIENT))
            or retries >= 3 * limit + 3
        ):
            log.error("gave up %s after %.2fs: %s", label, seconds, exc)
            if self.tracks_job:
                jobs.mark_failed(self.settings, int(args[0]), str(args[1]), exc)
            self.gave_up(args, exc, retries + 1)
            return {"ok": False, "error": str(exc)}
        countdown = backoff(retries)
        log.warning("retry %s in %.1fs after %.2fs: %s", label, countdown, seconds, exc)
        if self.tracks_job:
            jobs.mark_retrying(self.settings, int(args[0]), str(args[1]), exc, countdown)
        self.retrying(args, exc, countdown)
        # transient conflicts do not use up the retries meant for failing tools
        raise self.retry(exc=exc, countdown=countdown, max_retries=3 * limit + 3)

    def retrying(self, args: tuple[Any, ...], exc: Exception, countdown: float) -> None:
        """Called before a retry is scheduled (a task's own bookkeeping)."""

    def gave_up(self, args: tuple[Any, ...], exc: Exception, attempts: int) -> None:
        """Called when the task gives up for good (a task's own bookkeeping)."""


class IngestTask(PreservationTask):
    """The ingest of an uploaded bag: its transfer row is the job (:mod:`preservation.ingest_jobs`)."""

    def retrying(self, args: tuple[Any, ...], exc: Exception, countdown: float) -> None:
        ingest_jobs.retrying(self.settings, str(args[0]), exc, countdown)

    def gave_up(self, args: tuple[Any, ...], exc: Exception, attempts: int) -> None:
        reason = f"{exc.code}: {exc.en}" if isinstance(exc, ArchiveError) else f"{type(exc).__name__}: {exc}"
        ingest_jobs.give_up(self.settings, str(args[0]), "UPL006", attempts=attempts, reason=reason)


@app.task(base=PreservationTask, bind=True, name=DISPATCH_TASK, max_retries=0)
def dispatch_pending(self: PreservationTask) -> dict[str, Any]:
    """Expand new migrate outbox rows into jobs, re-queue stale ones, send their tasks."""
    return jobs.dispatch(self.settings).as_dict()


@app.task(base=PreservationTask, bind=True, name=MIGRATE_TASK, tracks_job=True)
def migrate_file(self: PreservationTask, file_id: int, action: str) -> dict[str, Any]:
    """Make the derivative of one original file by one action (idempotent)."""
    return migrate(self.settings, file_id, action).as_dict()


@app.task(base=PreservationTask, bind=True, name=AUDIT_TASK, max_retries=1)
def audit_incremental(self: PreservationTask) -> dict[str, Any]:
    """Fixity audit of the objects not verified for a cycle, oldest-verified first."""
    from preservation.audit import run_audit

    report = run_audit(
        self.settings,
        since=utcnow() - timedelta(days=self.settings.audit_cycle_days),
        replica_root=self.settings.replica_root,
        resume=True,
    )
    return {"ok": report.ok, "run_id": report.run_id, "files": report.files, "failures": len(report.failures)}


@app.task(base=PreservationTask, bind=True, name=HARVEST_TASK, max_retries=0)
def harvest_catalogue(self: PreservationTask) -> list[dict[str, Any]]:
    """Hourly: the incremental OAI-PMH harvest of every peer into the regional catalogue copy. A failing
    peer is reported (and retried by the next hour's run from the same ``from``), never retried here."""
    # Imported in the task: search stands beside preservation; the worker is where scheduled work runs.
    from search.harvest import run

    return [r.as_dict() for r in run(self.settings)]


@app.task(base=PreservationTask, bind=True, name=REDECIDE_TASK, max_retries=2)
def redecide_access(self: PreservationTask) -> dict[str, Any]:
    """Daily: open the ``auto`` records whose 25 years came today (or queue them for review under a "review
    first" policy), then index the opened ones at once. Idempotent: a second run the same day does nothing."""
    from archive.review import redecide
    from search import get_backend, index_records  # search stands beside preservation, as for harvest

    counts = redecide(self.settings)
    indexed = index_records(self.settings, get_backend(self.settings), counts.record_ids)
    return {**counts.as_dict(), "indexed": indexed.indexed}


@app.task(base=IngestTask, bind=True, name=INGEST_TASK)
def ingest_transfer(self: PreservationTask, transfer_id: str, path: str, archive: str) -> dict[str, Any]:
    """Ingest a bag uploaded through the staff API (``POST /api/v1/transfers`` or tus) under the transfer id
    the upload registered; the upload is removed once the ingest has decided (stored or rejected). A failure
    that is not a rejection is retried with backoff and then rejects the transfer (UPL006); a redelivered
    message of a decided transfer does nothing (:mod:`preservation.ingest_jobs`)."""
    from ingest.pipeline import ingest  # ingest stands beside preservation; the worker runs its long work

    claim = ingest_jobs.claim(self.settings, transfer_id)
    if claim is not ingest_jobs.Claim.go:
        return {"transfer_id": transfer_id, "status": None, "skipped": str(claim)}
    source = Path(path)
    if not source.is_file():
        ingest_jobs.give_up(self.settings, transfer_id, "UPL007")
        return {"transfer_id": transfer_id, "status": str(TransferStatus.rejected)}
    result = ingest(source, archive, self.settings, transfer_id=transfer_id)
    ingest_jobs.remove_upload(self.settings, path)
    return {"transfer_id": transfer_id, "status": str(result.status)}


@app.task(base=PreservationTask, bind=True, name=CLEAN_UPLOADS_TASK, max_retries=0)
def clean_uploads(self: PreservationTask) -> dict[str, Any]:
    """Hourly: remove partial (tus) uploads past their expiry (``ARCHIVE_UPLOAD_EXPIRE_HOURS``)."""
    from archive.uploads import clean_expired

    cleaned = clean_expired(self.settings)
    return {"removed": len(cleaned), "bytes": sum(c.bytes for c in cleaned)}


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    db.dispose_engines()
    dispose_broker_engines()


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    settings = get_settings()
    try:
        for action in clean_staging(settings):
            log.warning("staging: %s", action)
        for work in jobs.recover_dead_workers(settings):
            log.warning("re-queued %s of a dead worker", jobs.job_key(work.file_id, work.action))
        for transfer_id, path, archive in ingest_jobs.recover_dead_ingests(settings):
            jobs.send_ingest(settings, transfer_id, path, archive)
            log.warning("re-queued the ingest of transfer %s of a dead worker", transfer_id)
    except (
        StorageError,
        OperationalError,
        ServiceUnavailable,
    ) as exc:  # an uninitialised home: the tasks will say so
        log.error("start-up recovery skipped: %s", exc)
    finally:
        db.dispose_engines()
