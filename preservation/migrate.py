"""The migration service: one (original file, action) → one validated derivative in a new OCFL version.

    outcome = migrate(settings, file_id, "pdfa")   # MigrationOutcome(status="migrated", version="v2", …)

Order of work, and why it is crash-safe (a SIGKILL may come between any two steps):

1. **Already done?** The derivative's logical path is fixed by (file, action) (see :func:`target_path`). If
   the catalogue has a File row at that path → no-op (``already-done``).
2. :meth:`OcflStore.recover_object` removes a version directory a killed commit left beyond the head.
3. **Committed but not catalogued?** If the OCFL head state already holds the path (the process died after
   the OCFL commit, before the catalogue transaction), the stored content is re-hashed and must match the
   inventory's sha512 and sha256; then only the catalogue part is done (``completed``), with the tool and
   version read back from the version's message. Never a second version.
4. Damaged PDF (``qpdf --check``) before ``pdfa``: the ``pdf-repair`` action runs first, through this same
   function (its own key, version, File row and event), and PDF/A is made from the repaired copy
   (``derived_from`` = the repaired file). For a PDF the ingest's probe read without finding damage
   (pikepdf in a child process with a timeout: ``damaged`` false, no ``error`` in its properties) the check
   runs beside the action instead of before it — ``qpdf`` in its own process while Ghostscript, which is
   single-threaded, runs — and its answer still decides: damage (or a failed check) stops Ghostscript and
   throws its result away, then the repair goes on as above, and the check's error comes before the
   action's. Any other PDF is checked first, so the action's in-process inspection (pikepdf) only reads
   files that one of the two has read safely.
5. The action runs in a private directory ``<staging>/migrate-<uuid>/`` (``flock``ed while alive, removed
   at the end; :func:`clean_staging` removes the ones of dead processes) and validates its output before
   returning (:mod:`preservation.actions`), which also hashes the output and identifies it (Siegfried)
   while pdftotext reads its text for the check.
6. **OCFL commit**: ``begin_version`` → the output is hard-linked into the version's content (no copy; the
   staging area is on the root's file system) → ``commit``. If another writer moved the head meanwhile
   (``VersionConflict``: another action of the same record), the version is staged again on the new head
   — the tool is not run again — up to :data:`COMMIT_ATTEMPTS` times, then :class:`MigrationBusy` (the task
   retries with backoff). If the new head already holds our path, a duplicate delivery won: go to 3.
7. **One catalogue transaction**: File row (role, ``derived_from``, tool, tool version, OCFL version, size,
   sha256/sha512 of the staged output, PUID of the output by Siegfried (both from step 5), validation facts in
   ``properties``), a PREMIS ``migration`` event whose agent is the tool and its version, ``Record.ocfl_head``
   (the highest version, under a row lock), and the job row marked done. The unique (record, logical path)
   of File rows makes a concurrent duplicate fail here and retry into step 1.

Choices: **one OCFL version per (file, action)** — a JPEG's TIFF preservation copy and JPEG access copy are
two versions. It costs an inventory per action, and buys a one-to-one map between task keys and versions,
which is what makes the steps above simple to reason about. Derivatives go to ``<role>/<path under
originals without its extension>.<ext>`` (``originals/卷/a.pdf`` → ``preservation/卷/a.pdf``,
``access/卷/a.jpg``); when two originals of a record share a stem (``a.doc``, ``a.pdf``) the original's
extension is kept (``preservation/卷/a.doc.pdf``); a repaired PDF is ``preservation/<stem>.repaired.pdf``.
The catalogue, not the OCFL object, carries the PREMIS events of migrations (the version's message names
action, source, target and tool, so the object stays self-describing).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import db
from archive.config import Settings
from archive.errors import BadArgument, NotFound
from archive.events import MIGRATION, NewEvent, append_events
from archive.failpoints import failpoint
from archive.home import store_for
from archive.models import File, FileRole, Record, utcnow
from archive.replicas.outbox import enqueue as enqueue_replication
from archive.sealing.outbox import enqueue as enqueue_seals
from archive.sealing.seals import ensure_sealed
from archive.storage import OcflStore, VersionConflict
from preservation import jobs
from preservation.actions import FileIdentity, identify_file, run_action
from preservation.pdf_repair import needs_repair, repair_pdf
from preservation.policy import ACTIONS, REPAIR_ACTION, ActionSpec
from preservation.tools import NoSafeAction, PreservationError

AGENT = jobs.AGENT
COMMIT_ATTEMPTS = 5
WORKDIR_PREFIX = "migrate-"
_MESSAGE_TOOL = re.compile(r" with (?P<tool>\S+) (?P<version>\S+)$")

Status = Literal["migrated", "completed", "already-done", "not-needed"]


class MigrationBusy(PreservationError):
    """The object kept changing under us (other migrations of the same record); retry later."""

    code = "PRS010"


@dataclass(frozen=True)
class MigrationOutcome:
    key: str
    file_id: int
    action: str
    status: Status
    logical_path: str | None = None
    version: str | None = None
    derivative_id: int | None = None
    tool: str | None = None
    tool_version: str | None = None
    repaired: MigrationOutcome | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "file_id": self.file_id,
            "action": self.action,
            "status": self.status,
            "logical_path": self.logical_path,
            "version": self.version,
            "derivative_id": self.derivative_id,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "repaired": self.repaired.as_dict() if self.repaired else None,
        }


@dataclass(frozen=True)
class _Original:
    file_id: int
    record_id: int
    object_id: str
    logical_path: str
    siblings: tuple[str, ...]
    #: The ingest's PDF probe (pikepdf in a child process, with a timeout) read it without finding damage.
    probed_clean: bool = False


@dataclass(frozen=True)
class _Output:
    path: Path
    identity: FileIdentity
    tool: str
    tool_version: str
    details: dict[str, Any]

    @property
    def size(self) -> int:
        return self.identity.size

    @property
    def sha256(self) -> str:
        return self.identity.sha256

    @property
    def sha512(self) -> str:
        return self.identity.sha512


# -- paths and small helpers --------------------------------------------------------------------------------


def spec_for(action: str) -> ActionSpec:
    if action == REPAIR_ACTION.name:
        return REPAIR_ACTION
    if action not in ACTIONS:
        raise NoSafeAction(variant="unknown_action", action=action)
    return ACTIONS[action]


def target_path(original: str, spec: ActionSpec, siblings: Iterable[str] = ()) -> str:
    """The derivative's logical path (see the module docstring)."""
    rel = PurePosixPath(original.removeprefix("originals/"))
    stem = rel.with_suffix("") if rel.suffix else rel
    clash = any(
        s != original and PurePosixPath(s.removeprefix("originals/")).with_suffix("") == stem
        for s in siblings
    )
    base = str(rel) if clash else str(stem)
    extra = ".repaired" if spec.name == REPAIR_ACTION.name else ""
    return f"{spec.role}/{base}{extra}.{spec.extension}"


def _version_number(version: str) -> int:
    return int(version.lstrip("v") or 0)


def _message(action: str, source: str, target: str, tool: str, tool_version: str) -> str:
    return f"{action} migration of {source} to {target} with {tool} {tool_version.replace(' ', '_')}"


@contextmanager
def workdir(settings: Settings) -> Iterator[Path]:
    """A private directory in the staging area, locked while in use and removed afterwards."""
    path = settings.staging_dir / f"{WORKDIR_PREFIX}{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def clean_staging(settings: Settings) -> list[str]:
    """Remove work directories of dead processes (their lock is free) and the store's stale staging."""
    removed: list[str] = []
    staging = settings.staging_dir
    if staging.is_dir():
        for entry in sorted(staging.iterdir()):
            if not entry.name.startswith(WORKDIR_PREFIX) or not entry.is_dir():
                continue
            try:
                fd = os.open(entry / ".lock", os.O_RDWR)
            except FileNotFoundError:
                if time.time() - entry.stat().st_mtime < 60:
                    continue  # being created right now
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            finally:
                os.close(fd)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    if (settings.ocfl_root / "0=ocfl_1.1").exists():
        removed.extend(store_for(settings).recover())
    return removed


# -- the service --------------------------------------------------------------------------------------------


def _load(settings: Settings, file_id: int, spec: ActionSpec) -> tuple[_Original, str, File | None]:
    """The original, its derivative's logical path, and the derivative's File row if it is catalogued."""
    with db.read_session(settings) as s:
        file = s.get(File, file_id)
        if file is None:
            raise NotFound(variant="file", file_id=file_id)
        if file.role != FileRole.original:
            raise BadArgument(variant="derivative", file_id=file_id)
        record = s.get(Record, file.record_id)
        assert record is not None
        siblings = s.execute(
            select(File.logical_path).where(File.record_id == record.id, File.role == FileRole.original)
        ).scalars()
        probed = file.properties or {}
        original = _Original(
            file.id,
            record.id,
            record.ocfl_object_id,
            file.logical_path,
            tuple(siblings),
            probed_clean=probed.get("damaged") is False and "error" not in probed,
        )
        target = target_path(original.logical_path, spec, original.siblings)
        return original, target, _file_at(s, record.id, target)


def _file_at(s: Session, record_id: int, logical_path: str) -> File | None:
    return s.execute(
        select(File).where(File.record_id == record_id, File.logical_path == logical_path)
    ).scalar_one_or_none()


def _catalogued(settings: Settings, record_id: int, logical_path: str) -> File | None:
    with db.read_session(settings) as s:
        return _file_at(s, record_id, logical_path)


def _content_path(store: OcflStore, object_id: str, logical_path: str) -> Path | None:
    """Where the head version keeps ``logical_path``, or None."""
    inventory = store.read_inventory(object_id)
    for digest, paths in inventory["versions"][inventory["head"]]["state"].items():
        if logical_path in paths:
            return store.object_path(object_id) / inventory["manifest"][digest][0]
    return None


def migrate(settings: Settings, file_id: int, action: str) -> MigrationOutcome:
    """Make (or finish making) the derivative of ``file_id`` by ``action``; idempotent per (file, action)."""
    spec = spec_for(action)
    original, target, done = _load(settings, file_id, spec)
    key = jobs.job_key(file_id, action)
    if done is not None:
        _close_job(settings, original, action, done, target)
        return MigrationOutcome(
            key,
            file_id,
            action,
            "already-done",
            target,
            done.ocfl_version,
            done.id,
            done.tool,
            done.tool_version,
        )
    store = store_for(settings)
    store.recover_object(original.object_id)
    if _content_path(store, original.object_id, target) is not None:
        return _complete(settings, store, original, spec, target)

    source = _content_path(store, original.object_id, original.logical_path)
    if source is None:
        raise NotFound(
            variant="logical_path", object_id=original.object_id, logical_path=original.logical_path
        )
    derived_from = original.file_id
    repaired: MigrationOutcome | None = None
    with workdir(settings) as work:
        if spec.name == "pdfa":
            output, repaired, derived_from = _run_pdfa(settings, store, original, source, work)
        elif spec.name == REPAIR_ACTION.name:
            fixed = _run_repair(settings, source, work)
            if fixed is None:  # pdf-repair found nothing to repair
                return MigrationOutcome(key, file_id, action, "not-needed")
            output = fixed
        else:
            output = _run(settings, spec, source, work)
        failpoint("migrate:after-action")
        version = _commit(store, original, spec, target, output)
        if version is None:  # a duplicate delivery committed the same path meanwhile
            return _complete(settings, store, original, spec, target)
        failpoint("migrate:after-ocfl-commit")
        derivative = _catalogue(settings, original, spec, target, version, output, derived_from)
        failpoint("migrate:after-db-commit")
    return MigrationOutcome(
        key,
        file_id,
        action,
        "migrated",
        target,
        version,
        derivative,
        output.tool,
        output.tool_version,
        repaired,
        output.details,
    )


def _run(
    settings: Settings, spec: ActionSpec, source: Path, work: Path, stop: threading.Event | None = None
) -> _Output:
    result = run_action(spec, source, work, settings.tool_timeout, identify=True, stop=stop)
    assert result.identity is not None
    return _Output(result.output, result.identity, result.tool, result.tool_version, dict(result.details))


def _run_repair(settings: Settings, source: Path, work: Path) -> _Output | None:
    fixed = repair_pdf(source, work, settings.tool_timeout)
    if not fixed.repaired or fixed.output is None:
        return None
    details: dict[str, Any] = {"note": fixed.note, "pages": fixed.pages}
    return _Output(fixed.output, identify_file(fixed.output), fixed.tool, fixed.tool_version, details)


def _run_pdfa(
    settings: Settings, store: OcflStore, original: _Original, source: Path, work: Path
) -> tuple[_Output, MigrationOutcome | None, int]:
    """PDF/A of ``source``, or of its repaired copy when ``qpdf --check`` finds damage (step 4 of the
    module docstring); with the repair's outcome and the file the PDF/A derives from."""
    spec, timeout = ACTIONS["pdfa"], settings.tool_timeout
    if original.probed_clean:
        stop = threading.Event()

        def stop_if_damaged(check: Future[bool]) -> None:
            if check.exception() is not None or check.result():
                stop.set()

        with ThreadPoolExecutor(max_workers=1) as pool:
            check = pool.submit(needs_repair, source, timeout)
            check.add_done_callback(stop_if_damaged)
            try:
                output = _run(settings, spec, source, work, stop)
            except Exception:  # as if the check had come first: its error, else damage, decides
                if not check.result():
                    raise
            else:
                if not check.result():
                    return output, None, original.file_id
    elif not needs_repair(source, timeout):
        return _run(settings, spec, source, work), None, original.file_id
    repaired = migrate(settings, original.file_id, REPAIR_ACTION.name)
    derived_from = original.file_id
    if repaired.logical_path and repaired.derivative_id:
        fixed = _content_path(store, original.object_id, repaired.logical_path)
        assert fixed is not None
        source, derived_from = fixed, repaired.derivative_id
    return _run(settings, spec, source, work), repaired, derived_from


def _commit(
    store: OcflStore, original: _Original, spec: ActionSpec, target: str, output: _Output
) -> str | None:
    """Commit a version holding ``target``; None if the head already holds it (someone else did it)."""
    message = _message(spec.name, original.logical_path, target, output.tool, output.tool_version)
    for attempt in range(COMMIT_ATTEMPTS):
        builder = store.begin_version(original.object_id)
        try:
            if target in builder.state:
                return None
            staged = builder.content_path(target)
            try:
                os.link(output.path, staged)
            except OSError:  # another file system after all: copy
                shutil.copyfile(output.path, staged)
            builder.add_written(
                target, sha512=output.sha512, size=output.size, fixity={"sha256": output.sha256}
            )
            return store.commit(
                builder, message=message, user_name=f"{AGENT} ({output.tool} {output.tool_version})"
            )
        except VersionConflict:
            time.sleep(min(2.0, 0.05 * 2**attempt))
        finally:
            store.abort(builder)
    raise MigrationBusy(object_id=original.object_id)


def _migration_event(
    original: _Original, spec: ActionSpec, target: str, version: str, output: _Output, *, completed: bool
) -> NewEvent:
    detail = (
        f"{spec.name}: {original.logical_path} → {target} ({spec.description}) with {output.tool} "
        f"{output.tool_version}, validated, stored as OCFL {version}"
    )
    return NewEvent(
        event_type=MIGRATION,
        outcome="success",
        agent=f"{output.tool} {output.tool_version}",
        object_type="file",
        object_id=f"{original.object_id}/{original.logical_path}",
        record_id=original.record_id,
        detail=detail,
        outcome_detail={
            "action": spec.name,
            "role": spec.role,
            "source": original.logical_path,
            "target": target,
            "ocfl_version": version,
            "tool": output.tool,
            "tool_version": output.tool_version,
            "software": AGENT,
            "sha256": output.sha256,
            "size": output.size,
            "completed_after_interruption": completed,
            "risk": spec.risk.en if spec.risk else None,
        },
    )


def _catalogue(
    settings: Settings,
    original: _Original,
    spec: ActionSpec,
    target: str,
    version: str,
    output: _Output,
    derived_from: int,
    *,
    completed: bool = False,
) -> int:
    """The one catalogue transaction: File row, migration event, record head, job done."""
    with db.write_session(settings) as s:
        record = s.execute(
            select(Record).where(Record.id == original.record_id).with_for_update()
        ).scalar_one()
        existing = _file_at(s, record.id, target)
        source = s.get(File, original.file_id)
        assert source is not None
        if existing is not None:  # a duplicate delivery catalogued it first
            jobs.mark_done(
                s, source, spec.name, outcome="already-done", target=target, version=existing.ocfl_version
            )
            return existing.id
        row = File(
            record_id=record.id,
            logical_path=target,
            size=output.size,
            sha256=output.sha256,
            sha512=output.sha512,
            digests={},
            puid=output.identity.puid,
            role=spec.role,
            derived_from_id=derived_from,
            tool=output.tool,
            tool_version=output.tool_version[:64],
            ocfl_version=version,
            properties={"action": spec.name, "validation": output.details},
            last_fixity_at=utcnow(),
        )
        s.add(row)
        s.flush()
        append_events(s, [_migration_event(original, spec, target, version, output, completed=completed)])
        store = store_for(settings)
        seal = ensure_sealed(
            settings, store.object_path(original.object_id), original.object_id, version, store.staging_dir
        )
        enqueue_seals(s, [seal])  # its timestamp is fetched after this commit
        enqueue_replication(
            s,
            [
                {
                    "object_id": record.ocfl_object_id,
                    "version": version,
                    "bytes": output.size,
                    "record_id": record.id,
                    "event_id": f"{record.archive.code}/{record.archival_code}",
                }
            ],
        )
        if _version_number(version) > _version_number(record.ocfl_head):
            record.ocfl_head = version
        record.updated_at = utcnow()
        jobs.mark_done(
            s,
            source,
            spec.name,
            outcome="completed" if completed else "migrated",
            target=target,
            version=version,
        )
        return row.id


def _close_job(settings: Settings, original: _Original, action: str, done: File, target: str) -> None:
    with db.write_session(settings) as s:
        row = s.get(File, original.file_id)
        assert row is not None
        job = jobs.get_job(s, jobs.job_key(original.file_id, action))
        if job is None or job.payload.get("state") != jobs.JobState.done:
            jobs.mark_done(s, row, action, outcome="already-done", target=target, version=done.ocfl_version)


def _complete(
    settings: Settings, store: OcflStore, original: _Original, spec: ActionSpec, target: str
) -> MigrationOutcome:
    """The version holding ``target`` is committed, the catalogue does not know it: catalogue it."""
    inventory = store.read_inventory(original.object_id)
    versions = sorted(inventory["versions"], key=_version_number)
    version, digest = next(
        (v, d) for v in versions for d, paths in inventory["versions"][v]["state"].items() if target in paths
    )
    content = store.object_path(original.object_id) / inventory["manifest"][digest][0]
    identity = identify_file(content)
    expected_256 = next(
        (
            value
            for value, paths in inventory.get("fixity", {}).get("sha256", {}).items()
            if inventory["manifest"][digest][0] in paths
        ),
        identity.sha256,
    )
    if identity.sha512 != digest or identity.sha256 != expected_256:
        raise PreservationError(variant="stored_mismatch", target=target, version=version)
    found = _MESSAGE_TOOL.search(inventory["versions"][version].get("message", ""))
    tool, tool_version = (found["tool"], found["version"]) if found else (spec.tool, "unknown")
    output = _Output(content, identity, tool, tool_version, {"completed_from_inventory": True})
    derived_from = original.file_id
    if spec.name == "pdfa":
        repaired = _catalogued(
            settings, original.record_id, target_path(original.logical_path, REPAIR_ACTION, original.siblings)
        )
        derived_from = repaired.id if repaired is not None else derived_from
    derivative = _catalogue(settings, original, spec, target, version, output, derived_from, completed=True)
    failpoint("migrate:after-db-commit")
    return MigrationOutcome(
        jobs.job_key(original.file_id, spec.name),
        original.file_id,
        spec.name,
        "completed",
        target,
        version,
        derivative,
        tool,
        tool_version,
    )
