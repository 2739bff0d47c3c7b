"""四性检测 after a migration or a repair: the preservation checks on the records whose objects changed.

Called once a new version is committed and catalogued (the worker's migrate task, ``archive migrate --now``)
and after an audit that repaired content from the replica. A failing check never undoes the change: it is
in the stored report (``archive check runs``), with its event, for the archivist to act on. Switched off
with ``ARCHIVE_CHECK_AFTER_CHANGES=false``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from archive import db
from archive.checks import Report, check_objects
from archive.config import Settings
from archive.models import Record
from preservation.audit import AuditReport

AGENT = "pearl-archive preservation 0.1"


def check_records(settings: Settings, record_ids: Iterable[int], reason: str) -> Report | None:
    ids = sorted(set(record_ids))
    if not ids or not settings.check_after_changes:
        return None
    return check_objects(settings, ids, reason=reason, agent=AGENT)


def check_migrated(settings: Settings, file_id: int, action: str) -> Report | None:
    """After the derivative of ``file_id`` by ``action`` was committed."""
    from archive.models import File

    with db.read_session(settings) as s:
        record_id = s.execute(select(File.record_id).where(File.id == file_id)).scalar_one_or_none()
    return check_records(settings, [record_id] if record_id else [], f"migration {action} of file {file_id}")


def check_repaired(settings: Settings, report: AuditReport) -> Report | None:
    """After an audit repaired objects from the replica."""
    objects = sorted({f.object_id for f in report.failures if f.repaired})
    if not objects:
        return None
    with db.read_session(settings) as s:
        ids = list(s.execute(select(Record.id).where(Record.ocfl_object_id.in_(objects))).scalars())
    return check_records(settings, ids, f"repair from the replica in audit {report.run_id}")
