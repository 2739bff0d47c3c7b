"""Replicas: make one (:func:`make_replica`) and repair damaged content files from it (:func:`repair_object`).

With a replica root (another OCFL root holding the same objects) a bitrot, truncated or missing content file
is copied back from the replica while hashing the copy into a temporary file in the staging area (same file
system as the root, so no stray file is ever left inside an object); only if the copy matches the inventory
digest (and the catalogue's, if it has one) is it fsynced and renamed over the damaged file. A replica copy
that is also bad leaves the failure standing. Inventory problems and extra files are never "repaired": they
need a person. A repaired failure stays in the report (``repaired: true``) and ``AuditReport.ok`` stays
false — the storage rotted and someone should know; ``AuditReport.intact`` tells whether everything found
was repaired. Every repair attempt is one ``recovery`` event.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from archive import db
from archive.config import Settings
from archive.digests import CHUNK, hash_file
from archive.errors import BadArgument
from archive.events import RECOVERY, REPLICATION, NewEvent, append_events
from archive.storage import fsync_dir, fsync_file
from archive.storage.inventory import INVENTORY, SIDECAR
from archive.storage.ocfl import ROOT_NAMASTE
from preservation.audit.judge import AGENT, ObjectResult
from preservation.audit.plan import Plan
from preservation.audit.report import FailureKind


@dataclass
class ReplicaResult:
    replica_root: Path
    files_copied: int
    bytes_copied: int
    files_unchanged: int


_REPAIRABLE = (FailureKind.bitrot, FailureKind.truncated, FailureKind.missing)


def _repair_file(
    src: Path, dest: Path, tmp_dir: Path, expect: dict[str, str]
) -> tuple[bool, str, dict[str, str]]:
    """Copy ``src`` over ``dest`` if its digests equal ``expect``; atomically (temp, fsync, rename)."""
    if not src.is_file():
        return False, f"the replica has no copy at {src}", {}
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"audit-repair-{uuid.uuid4().hex}.tmp"
    try:
        _size, got = hash_file(src, tuple(expect), copy_to=tmp)
        fsync_file(tmp)
        wrong = [a for a in expect if got[a] != expect[a]]
        if wrong:
            tmp.unlink()
            return False, f"the replica copy is damaged too ({', '.join(wrong)} differs); not repaired", got
        shutil.copymode(src, tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # staging on another file system: fall back to a temporary file beside the target
            local = dest.with_name(f".{dest.name}.audit-repair-{uuid.uuid4().hex}")
            shutil.copyfile(tmp, local)
            fsync_file(local)
            os.replace(local, dest)
        fsync_dir(dest.parent)
        return True, f"restored from the replica copy {src}", got
    finally:
        tmp.unlink(missing_ok=True)


def repair_object(
    result: ObjectResult,
    plan: Plan,
    obj_dir: Path,
    replica_obj: Path,
    tmp_dir: Path,
    run_id: str,
) -> list[NewEvent]:
    events: list[NewEvent] = []
    target = result.target
    for f in result.failures:
        if (
            f.kind not in _REPAIRABLE
            or f.content_path is None
            or not plan.trusted
            or f.expected_sha512 is None
        ):
            continue
        expect = {"sha512": f.expected_sha512}
        if f.expected_sha256:
            expect["sha256"] = f.expected_sha256
        cats = [cf for cf in target.files if cf.id == f.file_id]
        got: dict[str, str] = {}
        if cats and (
            cats[0].sha512 != f.expected_sha512 or (f.expected_sha256 and cats[0].sha256 != f.expected_sha256)
        ):
            f.repair_detail = "the catalogue and the inventory disagree on the digest; not repaired"
        else:
            try:
                ok, detail, got = _repair_file(
                    replica_obj / f.content_path, obj_dir / f.content_path, tmp_dir, expect
                )
            except OSError as exc:
                ok, detail = False, f"repair failed: {exc}"
            f.repaired, f.repair_detail = ok, detail
            if ok and f.file_id is not None:
                result.ok_file_ids.append(f.file_id)
        events.append(
            NewEvent(
                event_type=RECOVERY,
                outcome="success" if f.repaired else "failure",
                agent=AGENT,
                object_type=target.object_type,
                object_id=target.object_id,
                record_id=target.record_id,
                transfer_id=target.transfer_id,
                detail=f"{'repaired' if f.repaired else 'could not repair'} {f.content_path} ({f.kind}) "
                f"from the replica: {f.repair_detail}",
                outcome_detail={
                    "run": run_id,
                    "content_path": f.content_path,
                    "kind": f.kind,
                    "replica": str(replica_obj),
                    "expected_sha512": f.expected_sha512,
                    "replica_sha512": got.get("sha512"),
                },
            )
        )
    return events


def make_replica(settings: Settings, replica_root: Path, *, record_event: bool = True) -> ReplicaResult:
    """Copy the storage root to ``replica_root`` like ``rsync -a`` without ``--delete``: files whose size or
    modification time differ are (re)copied, each atomically (temporary file, fsync, rename); running it again
    copies only what changed. Children are copied before their parents' files, so an object's root inventory
    (and the root's ``0=ocfl_1.1``) arrive after the versions they describe. Not a fixity check: a replica
    file that rotted is not noticed here (size and time are unchanged) — audit the replica for that."""
    source = settings.ocfl_root
    if not (source / ROOT_NAMASTE).is_file():
        raise BadArgument(variant="not_ocfl_root", root=source)
    dest_root = Path(replica_root).absolute()
    if dest_root == source or source in dest_root.parents or dest_root in source.parents:
        raise BadArgument(variant="replica_inside_root")
    copied = unchanged = nbytes = 0
    for dirpath, _dirs, files in os.walk(source, topdown=False):
        here = Path(dirpath)
        target_dir = dest_root / here.relative_to(source)
        target_dir.mkdir(parents=True, exist_ok=True)
        last = (ROOT_NAMASTE, INVENTORY, SIDECAR)
        changed = False
        for name in sorted(files, key=lambda n: (n in last, last.index(n) if n in last else 0, n)):
            src = here / name
            dst = target_dir / name
            st = src.stat()
            try:
                dt_st = dst.stat()
                same = dt_st.st_size == st.st_size and dt_st.st_mtime_ns == st.st_mtime_ns
            except FileNotFoundError:
                same = False
            if same:
                unchanged += 1
                continue
            tmp = target_dir / f".replica-{uuid.uuid4().hex}.tmp"
            try:
                with open(src, "rb") as fin, open(tmp, "xb") as fout:
                    shutil.copyfileobj(fin, fout, CHUNK)
                fsync_file(tmp)
                shutil.copystat(src, tmp)
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
            copied += 1
            nbytes += st.st_size
            changed = True
        if changed or not any(target_dir.iterdir()):
            fsync_dir(target_dir)
    fsync_dir(dest_root.parent)
    result = ReplicaResult(dest_root, copied, nbytes, unchanged)
    if record_event:
        with db.write_session(settings) as s:
            append_events(
                s,
                [
                    NewEvent(
                        event_type=REPLICATION,
                        outcome="success",
                        agent=AGENT,
                        object_type="node",
                        object_id=f"replica:{dest_root}",
                        detail=f"replicated the storage root to {dest_root}: {copied} files copied, "
                        f"{unchanged} unchanged",
                        outcome_detail={
                            "replica_root": str(dest_root),
                            "files_copied": copied,
                            "bytes_copied": nbytes,
                            "files_unchanged": unchanged,
                        },
                    )
                ],
            )
    return result
