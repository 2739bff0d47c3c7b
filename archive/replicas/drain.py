"""Drain the replication outbox: copy each committed version whole to every replica, verify it there, then
mark it done.

Per replica, ``ARCHIVE_REPLICATION_WORKERS`` objects at a time, each object's versions in order; a version is
its new content files (each verified at the target against the
version's inventory, see :mod:`archive.replicas.target`), the object's ``extensions/`` files, the version's
inventory and sidecar, and last the object's root inventory and sidecar (copied from the version's), so a
replica read on its own never shows a version whose files are not all there. Only then is the version
recorded as copied (a :class:`~archive.replicas.models.ReplicaCopy` row and a PREMIS ``replication``
event, in batches). A drain killed at any point leaves the version uncounted; the next drain copies it
again from the start (each file is replaced atomically, so a repeated copy is harmless). One drain runs at a
time per home (a lock file); a second one returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive import db
from archive.config import Settings
from archive.errors import ArchiveError
from archive.events import REPLICATION, NewEvent, append_events
from archive.failpoints import failpoint
from archive.replicas import outbox
from archive.replicas.errors import NoReplicas, ReplicaUnavailable
from archive.replicas.target import S3Target, Target, targets
from archive.storage import acquire_lock, release_lock
from archive.storage.errors import InventoryError
from archive.storage.inventory import (
    INVENTORY,
    OBJECT_NAMASTE,
    SIDECAR,
    parse,
    sidecar_digest,
    sidecar_matches,
)
from archive.storage.layout import object_relpath
from archive.storage.ocfl import ROOT_NAMASTE

AGENT = "archive replicas (pearl-archive)"
#: Objects copied between two flushes of the replica (and one catalogue transaction marking them).
BATCH_OBJECTS = 64


@dataclass
class ReplicaSync:
    """What one drain did at one replica."""

    replica: str
    versions: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    unavailable: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "versions": self.versions,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "failures": self.failures,
            "unavailable": self.unavailable,
        }


def copy_root_files(root: Path, target: Target) -> None:
    """The storage root's own files (layout description, extension configs), its declaration last."""
    names = [p for p in root.iterdir() if p.is_file() and p.name != ROOT_NAMASTE]
    ext = root / "extensions"
    if ext.is_dir():
        names += [p for p in ext.rglob("*") if p.is_file()]
    for p in names:
        target.put_file(p.relative_to(root).as_posix(), p, durable=False)
    target.flush()
    target.put_file(ROOT_NAMASTE, root / ROOT_NAMASTE, durable=False)  # flushed with the first batch


def copy_version_files(root: Path, target: Target, object_id: str, version: str) -> tuple[int, int]:
    """The first phase of copying ``version`` of ``object_id``: every file but the object's root inventory —
    the version's new content (each verified at the target against the inventory), the object's
    ``extensions/``, the version's inventory and sidecar, the object's declaration — not yet durable (the
    caller flushes the target). Returns (files, bytes)."""
    rel = object_relpath(object_id).as_posix()
    obj = root / rel
    vdir = obj / version
    target.sweep_partial(rel)  # what a copy killed mid-file left at the target (an OCFL error there)
    data = (vdir / INVENTORY).read_bytes()
    sidecar = (vdir / SIDECAR).read_bytes()
    inventory = parse(data)
    if inventory is None or not sidecar_matches(data, sidecar):
        raise InventoryError(variant="sidecar", path=vdir / INVENTORY)
    algorithm = inventory["digestAlgorithm"]
    files = nbytes = 0
    for digest, paths in inventory["manifest"].items():
        for p in paths:
            if p.startswith(f"{version}/"):
                src = obj / p
                target.put_file(f"{rel}/{p}", src, (algorithm, digest), durable=False)
                files += 1
                nbytes += src.stat().st_size
                failpoint("replicas:file-copied")
    ext = obj / "extensions"
    if ext.is_dir():
        for p in sorted(ext.rglob("*")):
            if p.is_file():
                target.put_file(f"{rel}/{p.relative_to(obj).as_posix()}", p, durable=False)
    inv_digest = sidecar_digest(sidecar)
    expect = ("sha512", inv_digest) if inv_digest else None  # the sidecar is always sha512
    target.put_file(f"{rel}/{version}/{INVENTORY}", vdir / INVENTORY, expect, durable=False)
    target.put_file(f"{rel}/{version}/{SIDECAR}", vdir / SIDECAR, durable=False)
    target.put_file(f"{rel}/{OBJECT_NAMASTE}", obj / OBJECT_NAMASTE, durable=False)
    return files + 3, nbytes + len(data) + len(sidecar)


def publish_version(root: Path, target: Target, object_id: str, version: str) -> None:
    """The second phase, once the first is durable: the object's root inventory and sidecar become the
    version's, so the replica shows the version as whole (the caller flushes the target again)."""
    rel = object_relpath(object_id).as_posix()
    vdir = root / rel / version
    inv_digest = sidecar_digest((vdir / SIDECAR).read_bytes())
    expect = ("sha512", inv_digest) if inv_digest else None
    failpoint("replicas:before-root-inventory")
    target.put_file(f"{rel}/{INVENTORY}", vdir / INVENTORY, expect, durable=False)
    target.put_file(f"{rel}/{SIDECAR}", vdir / SIDECAR, durable=False)


def copy_version(root: Path, target: Target, object_id: str, version: str) -> tuple[int, int]:
    """Copy ``version`` of ``object_id`` from the storage root ``root`` to ``target`` whole, verifying every
    content file there, durably, the root inventory last; returns (files, bytes). Raises before the root
    inventory is written if anything fails, so the replica's object still describes its previous version."""
    files, nbytes = copy_version_files(root, target, object_id, version)
    target.flush()
    publish_version(root, target, object_id, version)
    target.flush()
    return files + 2, nbytes


def _event(v: outbox.Version, target: Target, files: int, nbytes: int) -> NewEvent:
    return NewEvent(
        event_type=REPLICATION,
        outcome="success",
        agent=AGENT,
        object_type=v.event_type,
        object_id=v.event_id,
        record_id=v.record_id,
        detail=f"{v.version} copied whole to the replica {target.name} and verified there",
        outcome_detail={"replica": target.name, "version": v.version, "files": files, "bytes": nbytes},
    )


def _drain_one(
    settings: Settings,
    target: Target,
    names: list[str],
    limit: int | None,
    progress: Callable[[str, int, int], None] | None,
    batch: int = BATCH_OBJECTS,
) -> ReplicaSync:
    result = ReplicaSync(target.name)
    started = time.perf_counter()
    with db.read_session(settings) as s:
        todo = outbox.pending(s, target.name)
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        result.seconds = time.perf_counter() - started
        return result
    if isinstance(target, S3Target):
        target.ensure_bucket()
    root = settings.ocfl_root
    copy_root_files(root, target)
    done: list[tuple[outbox.Version, int, int]] = []

    def mark() -> None:
        if done:
            with db.write_session(settings) as s:
                outbox.mark_copied(s, target.name, done, names)
                append_events(s, [_event(v, target, f, b) for v, f, b in done])
            done.clear()

    by_object: dict[str, list[outbox.Version]] = {}
    for v in todo:
        by_object.setdefault(v.object_id, []).append(v)
    objects = list(by_object.values())

    def copy_object(versions: list[outbox.Version]) -> list[tuple[outbox.Version, int, int] | dict[str, Any]]:
        copied: list[tuple[outbox.Version, int, int] | dict[str, Any]] = []
        for v in versions:
            try:
                files, nbytes = copy_version_files(root, target, v.object_id, v.version)
            except ReplicaUnavailable:
                raise
            except (ArchiveError, OSError) as exc:  # later versions of this object wait for this one
                copied.append(
                    {
                        "object_id": v.object_id,
                        "version": v.version,
                        "code": getattr(exc, "code", type(exc).__name__),
                        "error": getattr(exc, "en", str(exc)),
                    }
                )
                break
            copied.append((v, files + 2, nbytes))
        return copied

    written: list[list[tuple[outbox.Version, int, int]]] = []  # per object: files at the target, not durable
    published: list[tuple[outbox.Version, int, int]] = []  # root inventory written, not yet durable
    n = 0

    def settle() -> None:
        """One flush, then: the versions whose root inventory it made durable are marked copied; the
        versions whose files it made durable get their root inventory (made durable by the next flush)."""
        nonlocal n, written, published
        target.flush()
        if published:
            failpoint("replicas:version-copied")
            for item in published:
                done.append(item)
                result.versions += 1
                result.files += item[1]
                result.bytes += item[2]
            n += len(published)
            published = []
            mark()
            if progress is not None:
                progress(target.name, n, len(todo))
        for good in written:
            v = good[-1][0]  # the object's last version copied whole: its inventory lists the earlier ones
            publish_version(root, target, v.object_id, v.version)
            published.extend(good)
        written = []

    # Objects in batches; per batch, one task per object (its pending versions in order: a later version
    # waits for the earlier one), objects in parallel. While a batch is being copied, this thread settles
    # the one before: one flush makes its files durable (and the root inventories published before it),
    # then its root inventories are written, made durable by the next batch's flush, and only then marked
    # in the catalogue — one flush per batch, overlapping the copies, and still no version visible at the
    # replica before all its files are durable, none marked before its root inventory is.
    pool = ThreadPoolExecutor(max(1, settings.replication_workers), thread_name_prefix="replicate")
    try:
        for start in range(0, len(objects), max(1, batch)):
            futures = [pool.submit(copy_object, o) for o in objects[start : start + max(1, batch)]]
            if written or published:
                settle()
            for future in futures:
                outcome = future.result()
                good = [item for item in outcome if not isinstance(item, dict)]
                result.failures.extend(item for item in outcome if isinstance(item, dict))
                if good:
                    written.append(good)
        while written or published:
            settle()
    except ReplicaUnavailable as exc:
        result.unavailable = exc.en
        pool.shutdown(wait=True, cancel_futures=True)  # no copy still writing when we stop
        if published:  # their root inventories are at the replica: mark them if a flush still works
            try:
                target.flush()
            except (ArchiveError, OSError):
                published = []
            done.extend(published)
            result.versions += len(published)
            result.files += sum(item[1] for item in published)
            result.bytes += sum(item[2] for item in published)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    mark()
    result.seconds = time.perf_counter() - started
    return result


def sync(
    settings: Settings,
    *,
    only: list[Target] | None = None,
    limit: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    batch: int = BATCH_OBJECTS,
) -> list[ReplicaSync] | None:
    """Copy every pending version to every replica (or to ``only``); None if another drain is running.
    A replica that cannot be reached is skipped (``unavailable``) and the others still get their copies.
    ``batch``: objects copied between two flushes of a replica."""
    configured = targets(settings)
    if not configured:
        raise NoReplicas()
    names = [t.name for t in configured]
    lock = acquire_lock(settings.home_dir / "replication.lock", blocking=False)
    if lock is None:
        return None
    try:
        with db.read_session(settings) as s:
            missing = outbox.needs_backfill(s)
        if missing:
            with db.write_session(settings) as s:
                outbox.backfill(s)
        return [_drain_one(settings, t, names, limit, progress, batch) for t in (only or configured)]
    finally:
        release_lock(lock)
