"""The node's home (``ARCHIVE_HOME``): creating it, opening it, and rolling back dead transfers on open."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from sqlalchemy import inspect, select, update

from archive import db
from archive.codes import info, render
from archive.config import Settings
from archive.errors import NotInitialised
from archive.events import RECOVERY, NewEvent, append_events
from archive.journal import Abandoned, recover
from archive.models import Transfer, TransferStatus, utcnow
from archive.recovery.journal import follow
from archive.storage import OcflStore

logger = logging.getLogger(__name__)

FINAL = (TransferStatus.stored, TransferStatus.rejected, TransferStatus.interrupted)


def interrupted_problem() -> dict[str, str]:
    """The problem recorded on a transfer rolled back after its process died (ING007, from the catalogue)."""
    zh, en = render("ING007", {})
    return {"code": "ING007", "severity": info("ING007").severity, "message_zh": zh, "message_en": en}


def store_for(settings: Settings) -> OcflStore:
    """The node's storage root; every version committed through it is signed (:mod:`archive.sealing`)."""
    from archive.sealing.seals import VersionSealer

    return OcflStore(settings.ocfl_root, settings.staging_dir, sealer=VersionSealer(settings))


def leftover_staging(settings: Settings) -> list[Path]:
    """What staging holds besides the (empty) per-object lock files: should be nothing when idle."""
    if not settings.staging_dir.is_dir():
        return []
    return sorted(p for p in settings.staging_dir.iterdir() if p.name != "ocfl-locks")


def init_home(settings: Settings) -> tuple[str | None, str | None]:
    """Create ``ARCHIVE_HOME`` (catalogue + storage root) or bring its schema up to date; safe to run at every
    start, and by several processes at once (they take turns on ``$ARCHIVE_HOME/.init.lock``). Returns the
    catalogue's schema revision before and after."""
    for path in (settings.home_dir, settings.journal_dir, settings.staging_dir):
        path.mkdir(parents=True, exist_ok=True)
    with open(settings.home_dir / ".init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        store_for(settings).init()
        return db.upgrade(settings)


def is_initialised(settings: Settings) -> bool:
    if not (settings.ocfl_root / "0=ocfl_1.1").exists():
        return False
    if settings.database_url is None and not (settings.home_dir / "catalogue.sqlite3").exists():
        return False
    return inspect(db.get_engine(settings)).has_table("alembic_version")


def open_home(settings: Settings) -> list[Abandoned]:
    """Check the home is initialised and roll back transfers whose process died."""
    if not is_initialised(settings):
        raise NotInitialised(settings.home_dir)
    rolled = recover_transfers(settings)
    try:
        follow(settings)  # events a crash kept from the catalogue journal (see archive/recovery/journal.py)
    except OSError as exc:  # a read-only root: the next command that can write it catches up
        logger.warning("catalogue journal not brought up to date now: %s", exc)
    return rolled


def recover_transfers(settings: Settings) -> list[Abandoned]:
    store = store_for(settings)

    def was_stored(transfer_id: str) -> bool:
        with db.read_session(settings) as s:
            status = s.execute(select(Transfer.status).where(Transfer.id == transfer_id)).scalar_one_or_none()
        return status == TransferStatus.stored

    def remove_object(object_id: str) -> None:
        if store.exists(object_id):
            store.remove_object(object_id)

    def mark_interrupted(transfer_id: str) -> None:
        with db.write_session(settings) as s:
            changed = s.execute(  # type: ignore[attr-defined]  # an UPDATE's CursorResult has rowcount
                update(Transfer)
                .where(Transfer.id == transfer_id, Transfer.status.not_in([str(f) for f in FINAL]))
                .values(
                    status=TransferStatus.interrupted,
                    finished_at=utcnow(),
                    problems=[interrupted_problem()],
                )
            ).rowcount
            if changed:
                append_events(
                    s,
                    [
                        NewEvent(
                            event_type=RECOVERY,
                            outcome="success",
                            agent="pearl-archive",
                            object_type="transfer",
                            object_id=transfer_id,
                            transfer_id=transfer_id,
                            detail="rolled back an interrupted transfer",
                        )
                    ],
                )

    rolled = recover(
        settings.journal_dir,
        settings.staging_dir,
        was_stored=was_stored,
        remove_object=remove_object,
        mark_interrupted=mark_interrupted,
    )
    if rolled:
        store.recover()  # staging of the dead builders, half-finished versions, the whole root
    else:
        store.sweep_staging()  # what a dead writer left in staging, even with nothing to roll back
    return rolled
