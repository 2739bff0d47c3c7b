"""Replicas in a fixity audit: repair damaged files from any replica that holds a good copy
(:func:`repair_object`, :func:`repair_inventory`); make a file-system replica in one go (:func:`make_replica`).

The replicas are the :mod:`archive.replicas` targets (file systems and S3 buckets alike: one code path).
A bitrot, truncated or missing content file is streamed back from the first replica whose copy has the
inventory's digest (and the catalogue's, if it has one), hashed into a temporary file in the staging area
(same file system as the root, so no stray file is ever left inside an object), then fsynced and renamed
over the damaged file; a replica copy that is also bad is skipped, never used. A damaged inventory (its
sidecar does not match, or the root differs from the head version's) is replaced by a replica's copy only
if that copy is trusted (:func:`archive.replicas.trust.trusted_inventory`: sidecar, object id, and the
version's seal read from the same replica — its signature over exactly these bytes) and agrees with every digest and the head the catalogue holds; the
object is then audited again. Extra files are never "repaired": they need a person. A repaired failure stays
in the report (``repaired: true``) and ``AuditReport.ok`` stays false — the storage rotted and someone should
know; ``AuditReport.intact`` tells whether everything found was repaired. Every repair attempt is one
``recovery`` event.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive import db
from archive.config import Settings
from archive.digests import CHUNK
from archive.errors import ArchiveError, BadArgument
from archive.events import RECOVERY, REPLICATION, NewEvent, append_events
from archive.replicas.target import Target as Replica
from archive.replicas.trust import read_trusted_inventory, trusted_inventory
from archive.sealing.seals import seal_relpath
from archive.storage import fsync_dir, fsync_file
from archive.storage.inventory import INVENTORY, SIDECAR
from archive.storage.ocfl import ROOT_NAMASTE
from preservation.audit.judge import AGENT, ObjectResult
from preservation.audit.plan import Plan
from preservation.audit.report import Failure, FailureKind
from preservation.audit.scope import Target


@dataclass
class ReplicaResult:
    replica_root: Path
    files_copied: int
    bytes_copied: int
    files_unchanged: int


_REPAIRABLE = (FailureKind.bitrot, FailureKind.truncated, FailureKind.missing)


def _fetch(replica: Replica, key: str, tmp: Path, algorithms: Sequence[str]) -> dict[str, str] | None:
    """Stream ``key`` from ``replica`` into ``tmp`` (fsynced) and return its digests; None if absent."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    try:
        with replica.open(key) as fin, open(tmp, "xb") as fout:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
    except FileNotFoundError:
        return None
    fsync_file(tmp)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _put_in_place(tmp: Path, dest: Path) -> None:
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


def _repair_file(
    replicas: Sequence[Replica], key: str, dest: Path, tmp_dir: Path, expect: dict[str, str]
) -> tuple[bool, str, dict[str, str], str | None]:
    """Restore ``dest`` from the first replica whose copy of ``key`` has the digests ``expect``.
    Returns (repaired, detail, the digests of the last copy looked at, the replica used or last tried)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    got: dict[str, str] = {}
    tried: str | None = None
    for replica in replicas:
        tried = replica.name
        tmp = tmp_dir / f"audit-repair-{uuid.uuid4().hex}.tmp"
        try:
            found = _fetch(replica, key, tmp, tuple(expect))
            if found is None:
                notes.append(f"{replica.name} has no copy")
                continue
            got = found
            wrong = [a for a in expect if found[a] != expect[a]]
            if wrong:
                notes.append(f"the copy at {replica.name} is damaged too ({', '.join(wrong)} differs)")
                continue
            _put_in_place(tmp, dest)
            return True, f"restored from the replica copy at {replica.name}", found, replica.name
        except (OSError, ArchiveError) as exc:
            notes.append(f"{replica.name}: {getattr(exc, 'en', exc)}")
        finally:
            tmp.unlink(missing_ok=True)
    return False, "; ".join(notes) + "; not repaired" if notes else "no replica; not repaired", got, tried


def _recovery_event(target: Target, f: Failure, run_id: str, replica: str | None, **extra: Any) -> NewEvent:
    return NewEvent(
        event_type=RECOVERY,
        outcome="success" if f.repaired else "failure",
        agent=AGENT,
        object_type=target.object_type,
        object_id=target.object_id,
        record_id=target.record_id,
        transfer_id=target.transfer_id,
        detail=f"{'repaired' if f.repaired else 'could not repair'} {f.content_path} ({f.kind}) "
        f"from a replica: {f.repair_detail}",
        outcome_detail={
            "run": run_id,
            "content_path": f.content_path,
            "kind": f.kind,
            "replica": replica,
            **extra,
        },
    )


def repair_object(
    result: ObjectResult,
    plan: Plan,
    obj_dir: Path,
    rel_obj: str,
    replicas: Sequence[Replica],
    tmp_dir: Path,
    run_id: str,
) -> list[NewEvent]:
    """Repair the content failures of ``result`` from ``replicas`` (``rel_obj``: the object's folder relative
    to the storage root, the same at every replica)."""
    events: list[NewEvent] = []
    target = result.target
    for f in result.failures:
        if (
            f.kind not in _REPAIRABLE
            or f.content_path is None
            or not plan.trusted
            or f.expected_sha512 is None
            or f.repaired
        ):
            continue
        expect = {"sha512": f.expected_sha512}
        if f.expected_sha256:
            expect["sha256"] = f.expected_sha256
        cats = [cf for cf in target.files if cf.id == f.file_id]
        got: dict[str, str] = {}
        used: str | None = None
        if cats and (
            cats[0].sha512 != f.expected_sha512 or (f.expected_sha256 and cats[0].sha256 != f.expected_sha256)
        ):
            f.repair_detail = "the catalogue and the inventory disagree on the digest; not repaired"
        else:
            try:
                ok, detail, got, used = _repair_file(
                    replicas, f"{rel_obj}/{f.content_path}", obj_dir / f.content_path, tmp_dir, expect
                )
            except OSError as exc:
                ok, detail = False, f"repair failed: {exc}"
            f.repaired, f.repair_detail = ok, detail
            if ok and f.file_id is not None:
                result.ok_file_ids.append(f.file_id)
        events.append(
            _recovery_event(
                target,
                f,
                run_id,
                used,
                expected_sha512=f.expected_sha512,
                replica_sha512=got.get("sha512"),
            )
        )
    return events


def _agrees_with_catalogue(inventory: dict[str, Any], target: Target, version: str | None = None) -> bool:
    """Every catalogued file of ``target`` up to the inventory's head is in ``inventory`` at its version with
    the catalogue's sha512; a root inventory (``version`` None) must reach the newest version the catalogue
    knows, a version's inventory must be that version's."""
    versions = inventory.get("versions", {})
    head = inventory.get("head", "")
    if not head[1:].isdigit():
        return False
    newest = max((int(cf.version[1:]) for cf in target.files if cf.version[1:].isdigit()), default=1)
    if (version is None and int(head[1:]) < newest) or (version is not None and head != version):
        return False
    for cf in target.files:
        if cf.version[1:].isdigit() and int(cf.version[1:]) > int(head[1:]):
            continue
        state = versions.get(cf.version, {}).get("state", {})
        if cf.logical_path not in state.get(cf.sha512, []):
            return False
    return True


def repair_inventory(
    settings: Settings,
    result: ObjectResult,
    obj_dir: Path,
    rel_obj: str,
    replicas: Sequence[Replica],
    tmp_dir: Path,
    run_id: str,
) -> tuple[bool, list[NewEvent]]:
    """Replace the damaged inventories of ``result`` (root or version) with a replica's trusted copy that
    agrees with the catalogue; (anything repaired, events). Trusted: its sidecar, and the version seal read
    from the same replica (:func:`archive.replicas.trust.read_trusted_inventory`). A record the catalogue
    does not know (``kind == "object"``) is never repaired this way: nothing vouches for a replica's
    inventory of it."""
    events: list[NewEvent] = []
    target = result.target
    repaired_any = False
    wanted = sorted(
        {f.content_path for f in result.failures if f.kind == FailureKind.inventory and f.content_path}
    )
    for rel in wanted:
        failures = [f for f in result.failures if f.kind == FailureKind.inventory and f.content_path == rel]
        where = rel.rpartition("/")[0]
        used: str | None = None
        notes: list[str] = []
        ok = False
        sealed = True
        if target.kind == "object" or not target.files:
            notes.append("the catalogue holds nothing to check a replica's inventory against")
        for replica in replicas if not notes else ():
            used = replica.name
            try:
                trusted = read_trusted_inventory(
                    settings,
                    replica,
                    rel_obj,
                    object_id=target.object_id,
                    version=where or None,
                    primary_dir=obj_dir,
                )
            except FileNotFoundError:
                notes.append(f"{replica.name} has no copy")
                continue
            except (OSError, ArchiveError) as exc:
                notes.append(f"{replica.name}: {getattr(exc, 'en', exc)}")
                continue
            if trusted is None:
                notes.append(
                    f"the inventory at {replica.name} is not trustworthy (sidecar, id, or its seal's signature)"
                )
                continue
            inventory, data, sidecar = trusted.inventory, trusted.data, trusted.sidecar
            if not _agrees_with_catalogue(inventory, target, where or None):
                notes.append(f"the inventory at {replica.name} disagrees with the catalogue")
                continue
            if not where and _sound_head_differs(
                settings, obj_dir, target.object_id, inventory["head"], data
            ):
                notes.append(f"the inventory at {replica.name} differs from the sound head version's")
                continue
            tmp_dir.mkdir(parents=True, exist_ok=True)
            dest = obj_dir / where if where else obj_dir
            for name, content in ((INVENTORY, data), (SIDECAR, sidecar)):
                tmp = tmp_dir / f"audit-repair-{uuid.uuid4().hex}.tmp"
                try:
                    tmp.write_bytes(content)
                    fsync_file(tmp)
                    _put_in_place(tmp, dest / name)
                finally:
                    tmp.unlink(missing_ok=True)
            ok, sealed = True, trusted.sealed
            break
        detail = f"restored from the replica copy at {used}" if ok else "; ".join(notes) + "; not repaired"
        if ok and not sealed:
            detail += (
                " (the version has no seal here nor there: trusted on its sidecar and the catalogue alone)"
            )
        for f in failures:
            f.repaired, f.repair_detail = ok, detail
            extra = {"sealed": sealed} if ok else {}
            events.append(_recovery_event(target, f, run_id, used if ok else None, **extra))
        repaired_any = repaired_any or ok
    return repaired_any, events


def _sound_head_differs(settings: Settings, obj_dir: Path, object_id: str, head: str, data: bytes) -> bool:
    """Whether the primary's own copy of the head version's inventory is sound (trusted as a replica's would
    be, by its sidecar and its seal) and differs from ``data``."""
    here = obj_dir / head
    if not (here / INVENTORY).is_file() or not (here / SIDECAR).is_file():
        return False
    head_copy = (here / INVENTORY).read_bytes()
    if head_copy == data:
        return False
    try:
        seal: bytes | None = (obj_dir / seal_relpath(head)).read_bytes()
    except FileNotFoundError:
        seal = None
    trusted = trusted_inventory(
        settings,
        head_copy,
        (here / SIDECAR).read_bytes(),
        seal,
        object_id=object_id,
        version=head,
        unsealed_ok=seal is None,
    )
    return trusted is not None


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
