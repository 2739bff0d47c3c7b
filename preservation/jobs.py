"""Migration jobs: what is queued, running, failed (and why) and done — kept in the catalogue's outbox.

No new table: ingest writes one outbox row per original file (topic ``migrate``, key ``migrate:file:<id>``);
the dispatcher claims it, asks the format policy what to do, and writes one **job row** per (file, action)
(topic ``migrate-job``, key ``migrate:<file_id>:<action>``, unique) in the same transaction, then marks the
file row done. A job row's state is in its ``payload`` (``state``, ``action``, ``outcome``, ``target``,
``version``, ``reason``…) mirrored in the outbox columns: ``attempts`` (runs started), ``last_error``,
``claimed_by`` (``host:pid`` of the process running it), ``claimed_at``, ``available_at`` (the lease: when
the dispatcher may queue it again if nothing was heard) and ``done_at`` (done or failed for good).

States: ``queued`` → ``running`` → ``done`` | ``retrying`` (→ ``running``…) | ``failed``. A format with no safe
action gets a job ``migrate:<file_id>:risk`` that is ``done`` at once with outcome ``risk`` and a PREMIS
migration event with outcome ``warning`` naming the risk. Formats kept without a risk (PDF/A, FLAC, text)
get no job.

At-least-once, never lost: task messages are sent *after* the transaction that made the jobs commits; a
job whose message was lost (a SQLite-broker worker SIGKILLed, a crash between commit and send) is sent again
when its lease runs out (:func:`requeue_stale`) or, faster, when a worker starting on the same host finds
it ``running`` under a process that no longer exists (:func:`recover_dead_workers`). Duplicates are no-ops
(:mod:`preservation.migrate` is idempotent per key).
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import socket
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive import db
from archive.config import Settings
from archive.errors import ArchiveError, BrokerUnavailable
from archive.events import MIGRATION, NewEvent, append_events
from archive.models import Archive, File, FileRole, Outbox, Record, utcnow
from archive.services import get_record
from preservation.celery_app import MIGRATE_TASK, QUEUE, app_for, broker_url_and_options, lease_seconds
from preservation.policy import Policy, load_policy

TOPIC_FILE = "migrate"
TOPIC_JOB = "migrate-job"
RISK = "risk"
AGENT = "pearl-archive preservation 0.1"


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    retrying = "retrying"
    failed = "failed"
    done = "done"


def job_key(file_id: int, action: str) -> str:
    return f"migrate:{file_id}:{action}"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Work:
    """One task to send: migrate ``file_id`` with ``action``."""

    file_id: int
    action: str


@dataclass(frozen=True)
class Job:
    key: str
    file_id: int
    record_id: int | None
    action: str
    state: str
    attempts: int
    outcome: str | None = None
    reason: str | None = None
    reason_code: str | None = None
    record: str | None = None  # ARCHIVE/档号
    path: str | None = None  # the original's logical path
    target: str | None = None  # the derivative's logical path
    version: str | None = None
    worker: str | None = None
    updated_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "file_id": self.file_id,
            "record": self.record,
            "path": self.path,
            "action": self.action,
            "state": self.state,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "target": self.target,
            "version": self.version,
            "worker": self.worker,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass
class DispatchResult:
    files: int = 0  # file rows expanded into jobs
    risks: int = 0  # jobs closed at once as a preservation risk
    requeued: int = 0  # stale jobs queued again
    work: list[Work] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return len(self.work)

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "risks": self.risks, "requeued": self.requeued, "queued": self.queued}


# -- small helpers ------------------------------------------------------------------------------------------


def _locked(session: Session, stmt: Select[Outbox]) -> Select[Outbox]:
    """Row locks on PostgreSQL (skip rows another dispatcher holds); SQLite's BEGIN IMMEDIATE serialises."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def _set(row: Outbox, **values: Any) -> None:
    row.payload = {**(row.payload or {}), **values}  # a new dict, so SQLAlchemy sees the change


def get_job(session: Session, key: str) -> Outbox | None:
    return session.execute(select(Outbox).where(Outbox.key == key)).scalar_one_or_none()


def ensure_job(session: Session, file: File, action: str, *, now: dt.datetime | None = None) -> Outbox:
    """The job row for (file, action), created ``queued`` if missing (inside a savepoint, so a concurrent
    creator's row wins without spoiling the caller's transaction)."""
    key = job_key(file.id, action)
    row = get_job(session, key)
    if row is not None:
        return row
    now = now or utcnow()
    row = Outbox(
        topic=TOPIC_JOB,
        key=key,
        record_id=file.record_id,
        file_id=file.id,
        payload={"action": action, "state": JobState.queued, "path": file.logical_path},
        available_at=now,
        attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = get_job(session, key)
        assert found is not None
        return found
    return row


def _queue(row: Outbox, settings: Settings, now: dt.datetime) -> Work:
    _set(row, state=JobState.queued)
    row.claimed_by = None
    row.claimed_at = now
    row.available_at = now + dt.timedelta(seconds=lease_seconds(settings))
    row.done_at = None
    assert row.file_id is not None
    return Work(row.file_id, str(row.payload["action"]))


def _risk_event(file: File, record: Record, note_zh: str, note_en: str) -> NewEvent:
    return NewEvent(
        event_type=MIGRATION,
        outcome="warning",
        agent=AGENT,
        object_type="file",
        object_id=f"{record.ocfl_object_id}/{file.logical_path}",
        record_id=record.id,
        detail=f"preservation risk: no safe migration for this format, the original is kept as it is. {note_en}",
        outcome_detail={
            "risk": True,
            "puid": file.puid,
            "format": file.format_name,
            "path": file.logical_path,
            "risk_zh": note_zh,
            "risk_en": note_en,
        },
    )


def _expand(
    session: Session, settings: Settings, policy: Policy, row: Outbox, result: DispatchResult
) -> None:
    """Turn one ingest file row into its job rows (or a risk), and mark it done."""
    now = utcnow()
    row.done_at = now
    row.claimed_by = worker_id()
    row.claimed_at = now
    file = session.get(File, row.file_id) if row.file_id is not None else None
    if file is None or file.role != FileRole.original:
        row.last_error = "no original file with this id"
        return
    result.files += 1
    actions = policy.actions_for(file.puid, file.logical_path)
    if actions:
        for spec in actions:
            job = ensure_job(session, file, spec.name, now=now)
            if job.payload.get("state") == JobState.queued and job.done_at is None:
                result.work.append(_queue(job, settings, now))
        return
    risk = policy.risk_for(file.puid, file.logical_path)
    if risk is None:
        return  # kept as it is, nothing to report (PDF/A, FLAC, plain text…)
    job = ensure_job(session, file, RISK, now=now)
    if job.done_at is None:
        record = session.get(Record, file.record_id)
        assert record is not None
        _set(job, state=JobState.done, outcome=RISK, reason=risk.en, reason_zh=risk.zh)
        job.done_at = now
        append_events(session, [_risk_event(file, record, risk.zh, risk.en)])
        result.risks += 1


def requeue_stale(session: Session, settings: Settings, now: dt.datetime, limit: int) -> list[Work]:
    """Jobs not done whose lease ran out: their message was lost, or their worker died. Send them again."""
    rows = session.execute(
        _locked(
            session,
            select(Outbox)
            .where(Outbox.topic == TOPIC_JOB, Outbox.done_at.is_(None), Outbox.available_at <= now)
            .order_by(Outbox.available_at, Outbox.id)
            .limit(limit),
        )
    ).scalars()
    return [_queue(row, settings, now) for row in rows]


# -- dispatching --------------------------------------------------------------------------------------------


def plan_pending(settings: Settings, *, policy: Policy | None = None, limit: int = 500) -> DispatchResult:
    """Claim pending ingest rows and stale jobs in one transaction; return the work to send."""
    policy = policy or load_policy(settings.policy_file)
    result = DispatchResult()
    with db.write_session(settings) as s:
        now = utcnow()
        rows = s.execute(
            _locked(
                s,
                select(Outbox)
                .where(Outbox.topic == TOPIC_FILE, Outbox.done_at.is_(None), Outbox.available_at <= now)
                .order_by(Outbox.id)
                .limit(limit),
            )
        ).scalars()
        for row in list(rows):
            _expand(s, settings, policy, row, result)
        stale = requeue_stale(s, settings, now, limit)
        already = set(result.work)
        fresh = [w for w in stale if w not in already]
        result.requeued = len(fresh)
        result.work.extend(fresh)
    return result


def send(settings: Settings, work: Iterable[Work]) -> int:
    """Send one ``migrate_file`` task per job (after the jobs were committed)."""
    work = list(work)
    if not work:
        return 0
    celery = app_for(settings)
    with warnings.catch_warnings():
        # kombu's SQLAlchemy transport declares its models with lazy="noload", deprecated in SQLAlchemy 2.1
        warnings.filterwarnings("ignore", message=".*noload.*", category=DeprecationWarning)
        try:
            with celery.producer_or_acquire() as producer:
                for w in work:
                    celery.send_task(MIGRATE_TASK, args=[w.file_id, w.action], queue=QUEUE, producer=producer)
        except (KombuOperationalError, OSError) as exc:  # the broker (Redis) cannot be reached
            raise BrokerUnavailable(url=broker_url_and_options(settings)[0], reason=exc) from exc
    return len(work)


def send_ingest(settings: Settings, transfer_id: str, path: str, archive: str) -> None:
    """Queue the ingest of an uploaded bag (``POST /api/v1/transfers``) for a worker."""
    from preservation.celery_app import INGEST_TASK

    celery = app_for(settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*noload.*", category=DeprecationWarning)  # as in send()
        celery.send_task(INGEST_TASK, args=[transfer_id, path, archive], queue=QUEUE)


def dispatch(settings: Settings, *, policy: Policy | None = None, limit: int = 500) -> DispatchResult:
    """Drain the migrate outbox: expand new rows into jobs, re-queue stale ones, send their tasks."""
    total = DispatchResult()
    while True:
        result = plan_pending(settings, policy=policy, limit=limit)
        send(settings, result.work)
        total.files += result.files
        total.risks += result.risks
        total.requeued += result.requeued
        total.work.extend(result.work)
        if result.files < limit and len(result.work) < limit:
            return total


def queue_record(
    settings: Settings, ref: tuple[str, str], *, policy: Policy | None = None, send_tasks: bool = True
) -> DispatchResult:
    """``archive migrate --record``: queue every action the policy names for the record's originals again
    (failed jobs start over; done jobs are queued too and finish as no-ops if their derivative exists).
    Without ``send_tasks`` the jobs are claimed but no task is sent (``--now`` runs them in this process)."""
    policy = policy or load_policy(settings.policy_file)
    result = DispatchResult()
    with db.write_session(settings) as s:
        now = utcnow()
        record = get_record(s, *ref)
        for file in record.files:
            if file.role != FileRole.original:
                continue
            pending = s.execute(
                select(Outbox).where(Outbox.key == f"migrate:file:{file.id}", Outbox.done_at.is_(None))
            ).scalar_one_or_none()
            if pending is not None:
                _expand(s, settings, policy, pending, result)
                continue
            result.files += 1
            for spec in policy.actions_for(file.puid, file.logical_path):
                job = ensure_job(s, file, spec.name, now=now)
                if job.payload.get("state") != JobState.done:
                    job.attempts = 0
                    _set(job, outcome=None, reason=None, reason_code=None)
                    job.last_error = None
                result.work.append(_queue(job, settings, now))
    if send_tasks:
        send(settings, result.work)
    return result


def recover_dead_workers(settings: Settings) -> list[Work]:
    """At worker start: jobs ``running`` under a process of this host that no longer exists are queued
    again at once (their message died with a SIGKILLed worker, or will only come back much later)."""
    host = socket.gethostname()
    with db.write_session(settings) as s:
        now = utcnow()
        rows = s.execute(
            select(Outbox).where(
                Outbox.topic == TOPIC_JOB, Outbox.done_at.is_(None), Outbox.claimed_by.like(f"{host}:%")
            )
        ).scalars()
        work = [
            _queue(row, settings, now)
            for row in list(rows)
            if row.payload.get("state") in (JobState.running, JobState.retrying)
            and not _alive(int(str(row.claimed_by).rpartition(":")[2] or 0))
        ]
    send(settings, work)
    return work


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- state changes made by the task -------------------------------------------------------------------------


def mark_running(settings: Settings, file: File | int, action: str) -> None:
    with db.write_session(settings) as s:
        f = s.get(File, file) if isinstance(file, int) else s.get(File, file.id)
        if f is None:
            return
        now = utcnow()
        row = ensure_job(s, f, action, now=now)
        if row.done_at is not None and row.payload.get("state") == JobState.done:
            return
        _set(row, state=JobState.running)
        row.done_at = None
        row.claimed_by = worker_id()
        row.claimed_at = now
        row.available_at = now + dt.timedelta(seconds=lease_seconds(settings))
        row.attempts = (row.attempts or 0) + 1


def mark_done(session: Session, file: File, action: str, **payload: Any) -> None:
    """Inside the caller's transaction (the one that catalogues the derivative)."""
    now = utcnow()
    row = ensure_job(session, file, action, now=now)
    _set(row, state=JobState.done, reason=None, reason_code=None, **payload)
    row.last_error = None
    row.done_at = now
    row.claimed_at = now


def _reason(error: BaseException) -> tuple[str, str, str]:
    if isinstance(error, ArchiveError):
        return error.code, error.zh, error.en
    return type(error).__name__, str(error), str(error)


def mark_retrying(
    settings: Settings, file_id: int, action: str, error: BaseException, countdown: float
) -> None:
    code, _zh, en = _reason(error)
    with db.write_session(settings) as s:
        row = get_job(s, job_key(file_id, action))
        if row is None or row.done_at is not None:
            return
        now = utcnow()
        _set(row, state=JobState.retrying, reason_code=code, reason=en)
        row.last_error = f"{code}: {en}"[:4000]
        row.available_at = now + dt.timedelta(seconds=countdown + lease_seconds(settings))


def mark_failed(settings: Settings, file_id: int, action: str, error: BaseException) -> None:
    """Leave the job failed with its reason, and record the failure as a PREMIS migration event."""
    code, zh, en = _reason(error)
    with db.write_session(settings) as s:
        file = s.get(File, file_id)
        if file is None:
            return
        record = s.get(Record, file.record_id)
        assert record is not None
        now = utcnow()
        row = ensure_job(s, file, action, now=now)
        if row.done_at is not None and row.payload.get("state") == JobState.done:
            return  # a duplicate delivery failed after another one succeeded: nothing to report
        _set(row, state=JobState.failed, outcome="failed", reason_code=code, reason=en, reason_zh=zh)
        row.last_error = f"{code}: {en}"[:4000]
        row.done_at = now
        details = getattr(error, "details", {}) or {}
        append_events(
            s,
            [
                NewEvent(
                    event_type=MIGRATION,
                    outcome="failure",
                    agent=AGENT,
                    object_type="file",
                    object_id=f"{record.ocfl_object_id}/{file.logical_path}",
                    record_id=record.id,
                    detail=f"{action} failed after {row.attempts} attempt(s); nothing was stored. {en}"[
                        :4000
                    ],
                    outcome_detail={
                        "action": action,
                        "code": code,
                        "message_zh": zh,
                        "message_en": en,
                        "attempts": row.attempts,
                        "stderr": str(details.get("stderr", ""))[-1000:],
                    },
                )
            ],
        )


# -- reading ------------------------------------------------------------------------------------------------


def list_jobs(
    settings: Settings,
    *,
    states: Sequence[str] | None = None,
    record: tuple[str, str] | None = None,
    limit: int | None = None,
) -> list[Job]:
    """Jobs, newest first, with the record they belong to."""
    with db.read_session(settings) as s:
        stmt = (
            select(Outbox, File.logical_path, Record.archival_code, Archive.code)
            .join(File, File.id == Outbox.file_id)
            .join(Record, Record.id == File.record_id)
            .join(Archive, Archive.id == Record.archive_id)
            .where(Outbox.topic == TOPIC_JOB)
            .order_by(Outbox.id.desc())
        )
        if record is not None:
            stmt = stmt.where(Archive.code == record[0].strip().upper(), Record.archival_code == record[1])
        jobs = [_job(row, path, code, archive) for row, path, code, archive in s.execute(stmt)]
    if states:
        jobs = [j for j in jobs if j.state in states]
    return jobs[:limit] if limit else jobs


def _job(row: Outbox, path: str, code: str, archive: str) -> Job:
    p = row.payload or {}
    assert row.file_id is not None
    return Job(
        key=row.key,
        file_id=row.file_id,
        record_id=row.record_id,
        action=str(p.get("action", "")),
        state=str(p.get("state", JobState.queued)),
        attempts=row.attempts or 0,
        outcome=p.get("outcome"),
        reason=p.get("reason"),
        reason_code=p.get("reason_code"),
        record=f"{archive}/{code}",
        path=path,
        target=p.get("target"),
        version=p.get("version"),
        worker=row.claimed_by,
        updated_at=row.done_at or row.claimed_at or row.created_at,
    )


def pending_files(settings: Settings) -> int:
    """Ingest rows not yet expanded into jobs."""
    with db.read_session(settings) as s:
        rows = s.execute(select(Outbox.id).where(Outbox.topic == TOPIC_FILE, Outbox.done_at.is_(None)))
        return len(rows.all())
