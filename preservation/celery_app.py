"""The Celery application of the preservation workers, built from :class:`archive.config.Settings`.

``celery -A preservation.celery_app worker`` (or ``archive worker``) uses the module-level :data:`app`, built
from the environment at import; code that sends tasks for a given ``Settings`` (the CLI, tests) uses
:func:`app_for`.

Choices made here:

* **Delivery.** ``task_acks_late`` + ``task_reject_on_worker_lost`` + ``worker_prefetch_multiplier = 1``: a
  message is acknowledged only after its task finished, a worker child killed mid-task (OOM killer, SIGKILL)
  puts its message back, and a worker holds no more messages than it runs. Every task is idempotent (see
  :mod:`preservation.migrate`), so a redelivery is harmless. JSON only (no pickle).
* **Results** are not kept (``task_ignore_result``): job state lives in the catalogue's outbox rows
  (:mod:`preservation.jobs`), which ``archive jobs`` reads. The result backend is still configured from
  ``Settings.celery_results`` for callers that ask for one explicitly.
* **Brokers.** Redis in production and CI (``ARCHIVE_BROKER_URL``); the embedded default is kombu's
  SQLAlchemy transport on SQLite (``$ARCHIVE_HOME/broker.sqlite3``), which needs no server. For it we pass
  ``connect_args.timeout`` (SQLite's busy timeout, so the worker, beat and producers queue on the file lock
  instead of failing with "database is locked") and create ``ARCHIVE_HOME`` first. That transport marks a
  message invisible when it is fetched and never restores it if the process dies, and Redis restores an
  unacknowledged message only after ``visibility_timeout``; so the *outbox*, not the broker, is the source
  of truth: a worker starting up re-queues the jobs of dead worker processes on its host, and the beat's
  dispatcher re-queues jobs whose lease ran out (:func:`preservation.jobs.requeue_stale`).
* **Retries.** The base task (:class:`preservation.tasks.PreservationTask`) retries with exponential backoff
  and jitter, ``Settings.task_max_retries`` (``ARCHIVE_TASK_MAX_RETRIES``, default 3) times, backoff capped
  at 10 minutes.
* **Schedule** (``archive beat`` or ``archive worker --beat``): drain the migrate outbox every
  ``Settings.dispatch_interval`` seconds (``ARCHIVE_DISPATCH_INTERVAL``, default 30); an incremental fixity
  audit every night at 02:00 UTC, of the objects not verified for ``Settings.audit_cycle_days`` days
  (``ARCHIVE_AUDIT_CYCLE_DAYS``, default 30), oldest-verified first;
  the incremental OAI-PMH harvest of every peer into the regional catalogue copy hourly (minute 17); the
  partial uploads past their expiry removed hourly (minute 41); the
  re-decision of ``auto`` records whose 25 years came (opening by time, :mod:`archive.review`) daily at 00:05.
* After fork, each worker child drops the parent's database connections (ours and the SQLite broker's).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from celery import Celery
from celery.schedules import crontab

from archive.config import Settings, get_settings

QUEUE = "preservation"
DISPATCH_TASK = "preservation.dispatch_pending"
MIGRATE_TASK = "preservation.migrate_file"
AUDIT_TASK = "preservation.audit_incremental"
HARVEST_TASK = "preservation.harvest_catalogue"
INGEST_TASK = "preservation.ingest_transfer"
CLEAN_UPLOADS_TASK = "preservation.clean_uploads"
REDECIDE_TASK = "preservation.redecide_access"


def lease_seconds(settings: Settings) -> float:
    """How long a queued or running job may go without news before the dispatcher queues it again.

    A migration runs at most a few tools (repair, Ghostscript twice, validation), each bounded by
    ``tool_timeout``; the lease is well beyond that, so a live job is never duplicated in normal operation
    (and a duplicate would be a no-op anyway)."""
    return max(900.0, 6 * settings.tool_timeout)


def broker_url_and_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL for kombu and its transport options.

    A Redis URL may carry ``?prefix=<text>``: every key the transport writes then starts with it
    (kombu's ``global_keyprefix``), so several nodes — or test runs — can share one Redis."""
    url = settings.celery_broker
    if url.startswith(("sqla+sqlite", "sqlalchemy+sqlite")):
        return url, {"connect_args": {"timeout": 60}}
    if url.startswith(("redis://", "rediss://", "redis+socket://")):
        options: dict[str, Any] = {"visibility_timeout": int(max(3600.0, lease_seconds(settings)))}
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = [v for k, v in query if k == "prefix"]
        if prefix:
            options["global_keyprefix"] = prefix[-1]
            url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
        return url, options
    return url, {}


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    if settings.celery_broker.startswith(("sqla+sqlite", "sqlalchemy+sqlite")) or (
        settings.celery_results.startswith("db+sqlite")
    ):
        settings.home_dir.mkdir(parents=True, exist_ok=True)
    broker, options = broker_url_and_options(settings)
    celery = Celery(
        "preservation",
        broker=broker,
        backend=settings.celery_results,
        include=["preservation.tasks"],
        set_as_current=False,
    )
    celery.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_track_started=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=options,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "drain-migrate-outbox": {
                "task": DISPATCH_TASK,
                "schedule": settings.dispatch_interval,
                "options": {"expires": max(5.0, settings.dispatch_interval)},
            },
            "incremental-fixity-audit": {
                "task": AUDIT_TASK,
                "schedule": crontab(hour=2, minute=0),
            },
            # opening by time (archive.review.redecide): auto records whose 25 years came open, or enter the
            # review queue under a "review first" policy; scheduled reviews that fell due join the queue
            "redecide-access": {
                "task": REDECIDE_TASK,
                "schedule": crontab(hour=0, minute=5),
                "options": {"expires": 20 * 3600.0},
            },
            # the harvested regional catalogue (search.harvest): incremental OAI-PMH harvest of every peer
            "harvest-regional-catalogue": {
                "task": HARVEST_TASK,
                "schedule": crontab(minute=17),
                "options": {"expires": 3000.0},
            },
            # partial (tus) uploads past ARCHIVE_UPLOAD_EXPIRE_HOURS (archive.uploads.clean_expired)
            "clean-expired-uploads": {
                "task": CLEAN_UPLOADS_TASK,
                "schedule": crontab(minute=41),
                "options": {"expires": 3000.0},
            },
        },
    )
    return celery


_APPS: dict[tuple[str, str], Celery] = {}


def app_for(settings: Settings) -> Celery:
    """An app sending to ``settings``' broker (one per broker for the life of the process)."""
    key = (settings.celery_broker, settings.celery_results)
    found = _APPS.get(key)
    if found is None:
        found = _APPS[key] = make_app(settings)
    return found


def close_apps() -> None:
    """Close the broker connections of every app made by :func:`app_for` (tests, CLI exit)."""
    while _APPS:
        _APPS.popitem()[1].close()


def dispose_broker_engines() -> None:
    """Forget the SQLite broker's pooled connections inherited over fork (kombu caches one engine per URL)."""
    try:
        from kombu.transport.sqlalchemy import Channel
    except ImportError:  # pragma: no cover - kombu without SQLAlchemy support
        return
    for engine, _ in list(Channel._engines.values()):
        engine.dispose(close=False)


app = make_app()
