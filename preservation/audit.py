"""Fixity audits: re-hash every stored file of every OCFL version and compare it with what was recorded.

    report = run_audit(settings, archive="GZ", replica_root=Path("/mnt/replica/ocfl"))
    report.ok, report.report_json, report.failures

What is checked, per OCFL object in scope:

* every inventory (root and ``vN/``) against its ``inventory.json.sha512`` sidecar; the root inventory is
  byte-identical to the head version's; the inventory names the right object; content paths stay inside
  the object (a tampered inventory never makes the audit read or write outside it);
* every content file of every version (not only the head) against the inventory manifest's sha512, and, when
  the catalogue has a File row for it (originals and derivatives), against the row's sha512 and size;
* no file in any ``vN/content/`` that no inventory lists, no version directory beyond the head;
* objects the catalogue expects (records, stored transfers) exist.

Choices:

* **Algorithms.** Content is deduplicated, so each content file is read once however many versions and logical
  paths share it. The audit computes **sha512 only** by default: it is the OCFL content digest (the manifest),
  and the catalogue stores it too, so one hash checks both; the throughput target is then measured against
  raw sha512 over the same files. ``algorithms=("sha512", "sha256")`` (the CLI's ``--deep``) also computes
  sha256 and checks it against the inventory's fixity block and the catalogue's sha256 — twice the work.
  ``algorithms=("sha256",)`` alone is allowed too (≈3× faster than sha512 on CPUs with SHA extensions) and
  checks the fixity block and the catalogue, not the manifest.
* **Streaming and parallel.** Objects are planned (inventories read, content listed and stat'ed) and content
  files hashed in a thread pool of ``workers`` threads (default ``Settings.workers``: one per core;
  ``hashlib`` and ``readinto`` release the GIL). Each thread reads into one reused 256 KiB buffer: that size
  stays in the CPU's L2 cache and measured about 15% less CPU per byte than 1 MiB reads, on par with
  ``hashlib.file_digest``. Files are grouped into batches of at most 16 MiB / 256 files, so small files cost
  little each and big objects still spread over every core. Up to 64 objects (or 50 000 files) are planned
  ahead and their batches run largest first, so a big file does not end up hashing alone at the end while
  the other cores idle. Memory stays bounded by that look-ahead whatever the root holds (only the list of
  object ids in scope is kept whole). Per run there are a handful of fsyncs and two catalogue transactions
  for a small audit, one more every 5 s or 20 000 files for a large one.
* **Resumable.** A run lives in ``$ARCHIVE_HOME/audits/<run-id>/``: ``run.json`` (scope, status, sessions)
  and ``progress.jsonl`` (one line per finished object with its counts and failures, appended and fsynced
  after the catalogue transaction that records it). ``resume=True`` continues the newest unfinished run with
  the same scope (archive, since, algorithms) instead of starting over: finished objects are not read again,
  and the final report folds every line, so it covers the whole run. A run directory is ``flock``ed while a
  process works on it. The unit of resumption is the object.
* **Catalogue and events.** ``File.last_fixity_at`` is set for files verified (or repaired) in batched
  updates, committed at most every few seconds and at the end. The event log stays proportional to what
  happened, not to the size of the root: one ``fixity check`` event per *failing* object (outcome
  ``failure``, failing paths in ``outcome_detail``), one ``recovery`` event per repair attempt (success or
  failure), and one summary ``fixity check`` event per run (object_type ``node``, object_id
  ``audit:<run-id>``) carrying the totals and the sha256 of ``report.json``, ``report.csv`` and
  ``summary.txt``. When anything failed, the summary event *is the alert*: outcome ``failure`` and a detail
  starting with ``ALERT:``; the same line is logged at ERROR level (logger ``preservation.audit``).
* **Incremental (``since``).** The unit is the object: a record's object is due when any of its files was
  never verified or last verified before ``since`` (or it has no File rows); a transfer's object is due with
  its transfer's first due record. Due objects go oldest-verified first (never-verified first of all). The
  root is not walked, so uncatalogued objects are seen by full audits only.
* **Repair.** With ``replica_root`` (another OCFL root holding the same objects, see :func:`make_replica`) a
  bitrot/truncated/missing content file is copied back from the replica while hashing the copy into a
  temporary file in the staging area (same file system as the root, so no stray file is ever left inside
  an object); only if the copy matches the inventory digest (and the catalogue's, if it has one) is it
  fsynced and renamed over the damaged file. A replica copy that is also bad leaves the failure standing.
  Inventory problems and extra files are never "repaired": they need a person. A repaired failure stays in
  the report (``repaired: true``) and ``AuditReport.ok`` stays false — the storage rotted and someone should
  know; ``AuditReport.intact`` tells whether everything found was repaired.
* Races with writers: an object is planned after its catalogue rows are read (a migration commits OCFL before
  the catalogue), and an inventory mismatch is re-read once after a short pause before it is reported, since
  a commit replaces the root inventory and then its sidecar.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import heapq
import itertools
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote

from sqlalchemy import func, select, update

from archive import db
from archive.config import Settings
from archive.errors import BadArgument, UnknownArchive
from archive.events import FIXITY_CHECK, RECOVERY, REPLICATION, NewEvent, append_events
from archive.models import Archive, File, Record, Transfer, TransferStatus, utcnow
from archive.storage import object_relpath
from archive.storage.ocfl import INVENTORY, OBJECT_NAMASTE, ROOT_NAMASTE, SIDECAR
from preservation.audit_report import (
    AuditReport,
    Failure,
    FailureKind,
    Session,
    write_durable_replace,
    write_report_files,
)
from preservation.digests import CHUNK, hash_file, read_buffer

__all__ = [
    "ALGORITHMS",
    "AuditProgress",
    "AuditReport",
    "Failure",
    "FailureKind",
    "ReplicaResult",
    "hash_file",
    "make_replica",
    "run_audit",
]

log = logging.getLogger("preservation.audit")

AGENT = "pearl-archive audit 0.1"
ALGORITHMS = ("sha512", "sha256")
BATCH_BYTES = 16 * 1024 * 1024
LOOKAHEAD_OBJECTS = 64
LOOKAHEAD_FILES = 50_000
BATCH_FILES = 256
FLUSH_SECONDS = 5.0
FLUSH_FILES = 20_000
CATALOGUE_CHUNK = 500
MAX_EVENT_FAILURES = 50
TRANSFER_OBJECT = "urn:pearl-archive:{archive}:transfer:{transfer}"
_TRANSFER_RE = re.compile(r"^urn:pearl-archive:([^:]+):transfer:(.+)$")
_ARCHIVE_RE = re.compile(r"^urn:pearl-archive:([^:]+):")
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# -- public types ------------------------------------------------------------------------------------------


@dataclass
class AuditProgress:
    """Handed to the ``progress`` callback after every hashed batch and every finished object."""

    run_id: str
    objects_total: int
    objects_done: int
    files_done: int
    bytes_done: int
    failures: int


ProgressCallback = Callable[[AuditProgress], None]


@dataclass
class ReplicaResult:
    replica_root: Path
    files_copied: int
    bytes_copied: int
    files_unchanged: int


# -- hashing -----------------------------------------------------------------------------------------------


class _Hashed(NamedTuple):
    rel: str
    size: int
    digests: dict[str, str]
    error: str | None  # "missing" / "unreadable: …"


def _hash_batch(obj_dir: Path, rels: list[str], algorithms: tuple[str, ...]) -> list[_Hashed]:
    out = []
    for rel in rels:
        try:
            size, digests = hash_file(obj_dir / rel, algorithms)
        except FileNotFoundError:
            out.append(_Hashed(rel, 0, {}, "missing"))
        except OSError as exc:
            out.append(_Hashed(rel, 0, {}, f"unreadable: {exc.strerror or exc}"))
        else:
            out.append(_Hashed(rel, size, digests, None))
    return out


# -- scope -------------------------------------------------------------------------------------------------


class _CatFile(NamedTuple):
    id: int
    logical_path: str
    version: str
    sha256: str
    sha512: str
    size: int


@dataclass
class _Target:
    object_id: str
    kind: str  # record / transfer / object (in the root, unknown to the catalogue)
    archive: str | None
    archival_code: str | None = None
    record_id: int | None = None
    transfer_id: str | None = None
    files: list[_CatFile] = field(default_factory=list)


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _decode_object_dir(root: Path, obj_dir: Path) -> str | None:
    """The object id from its directory name (extension 0003), checked by re-encoding; or the inventory's."""
    name = obj_dir.name
    if not (len(name) > 100 and name[100] == "-"):
        try:
            candidate = unquote(name, errors="strict")
        except UnicodeDecodeError:
            candidate = None
        if candidate and root / object_relpath(candidate) == obj_dir:
            return candidate
    try:
        data = json.loads((obj_dir / INVENTORY).read_bytes())
        object_id = data.get("id") if isinstance(data, dict) else None
    except (OSError, ValueError):
        object_id = None
    return object_id if isinstance(object_id, str) else None


def _walk_root(root: Path) -> Iterator[tuple[str, Path]]:
    """(object id, directory) of every object directory under the storage root; an object whose id cannot
    be told gets ``?<relative path>`` as id (its inventory failure is reported)."""
    top = str(root)
    for dirpath, dirs, files in os.walk(top):
        if dirpath == top:
            dirs[:] = sorted(d for d in dirs if d != "extensions")
            continue
        if OBJECT_NAMASTE in files:
            dirs[:] = []
            here = Path(dirpath)
            object_id = _decode_object_dir(root, here)
            yield (object_id or f"?{here.relative_to(root).as_posix()}"), here
        else:
            dirs.sort()


def _archive_of(object_id: str) -> str | None:
    m = _ARCHIVE_RE.match(object_id)
    return m.group(1) if m else None


def _scope_targets(
    settings: Settings, archive: str | None, since: dt.datetime | None
) -> tuple[list[_Target], dict[str, Path]]:
    """Objects in scope, in audit order, and directories of objects whose id differs from the layout's."""
    odd_dirs: dict[str, Path] = {}
    with db.read_session(settings) as s:
        if (
            archive is not None
            and s.execute(select(Archive.id).where(Archive.code == archive)).first() is None
        ):
            raise UnknownArchive(archive)
        record_cols = (
            Record.id,
            Record.ocfl_object_id,
            Record.archival_code,
            Archive.code,
            Record.transfer_id,
        )
        if since is None:
            q = select(*record_cols).join(Archive, Record.archive_id == Archive.id)
            if archive is not None:
                q = q.where(Archive.code == archive)
            records: list[tuple[int, str, str, str, str]] = [
                (rid, oid, code, arch, tid) for rid, oid, code, arch, tid in s.execute(q)
            ]
        else:
            dq = (
                select(
                    *record_cols,
                    func.min(File.last_fixity_at),
                    func.count(File.id) - func.count(File.last_fixity_at),
                    func.count(File.id),
                )
                .join(Archive, Record.archive_id == Archive.id)
                .outerjoin(File, File.record_id == Record.id)
                .group_by(*record_cols)
            )
            if archive is not None:
                dq = dq.where(Archive.code == archive)
            since_utc = _as_utc(since)
            due = []
            for rid, oid, code, arch, tid, oldest, never, nfiles in s.execute(dq):
                oldest_utc = _as_utc(oldest) if oldest is not None else None
                if never or not nfiles or oldest_utc is None or oldest_utc < since_utc:
                    due.append((rid, oid, code, arch, tid, oldest_utc, 0 if (never or not nfiles) else 1))
            due.sort(key=lambda r: (r[6], r[5] or _EPOCH, r[1]))
            records = [(rid, oid, code, arch, tid) for rid, oid, code, arch, tid, _o, _n in due]
        tq = (
            select(Transfer.id, Archive.code)
            .join(Archive, Transfer.archive_id == Archive.id)
            .where(Transfer.status == TransferStatus.stored)
        )
        if archive is not None:
            tq = tq.where(Archive.code == archive)
        transfers = {tid: code for tid, code in s.execute(tq)}

    def transfer_target(tid: str, code: str) -> _Target:
        return _Target(TRANSFER_OBJECT.format(archive=code, transfer=tid), "transfer", code, transfer_id=tid)

    targets: list[_Target] = []
    if since is not None:
        seen_transfers: set[str] = set()
        for rid, oid, code, arch, tid in records:
            targets.append(_Target(oid, "record", arch, code, rid, tid))
            if tid in transfers and tid not in seen_transfers:
                seen_transfers.add(tid)
                targets.append(transfer_target(tid, transfers[tid]))
        return targets, odd_dirs

    by_id: dict[str, _Target] = {}
    for rid, oid, code, arch, tid in records:
        by_id[oid] = _Target(oid, "record", arch, code, rid, tid)
    for tid, code in transfers.items():
        t = transfer_target(tid, code)
        by_id.setdefault(t.object_id, t)
    root = settings.ocfl_root
    prefix = f"urn:pearl-archive:{archive}:" if archive else None
    for object_id, obj_dir in _walk_root(root):
        if object_id in by_id:
            continue
        if prefix is not None and not object_id.startswith(prefix):
            continue
        if object_id.startswith("?") or root / object_relpath(object_id) != obj_dir:
            odd_dirs[object_id] = obj_dir  # e.g. a copied object in the wrong place: audit it where it is
        m = _TRANSFER_RE.match(object_id)
        by_id[object_id] = _Target(
            object_id, "object", _archive_of(object_id), transfer_id=m.group(2) if m else None
        )
    targets = [by_id[k] for k in sorted(by_id)]
    return targets, odd_dirs


def _load_catalogue(settings: Settings, targets: Sequence[_Target]) -> None:
    ids = {t.record_id: t for t in targets if t.record_id is not None}
    if not ids:
        return
    with db.read_session(settings) as s:
        rows = s.execute(
            select(
                File.record_id,
                File.id,
                File.logical_path,
                File.ocfl_version,
                File.sha256,
                File.sha512,
                File.size,
            )
            .where(File.record_id.in_(list(ids)))
            .order_by(File.id)
        )
        for record_id, fid, logical, version, sha256, sha512, size in rows:
            ids[record_id].files.append(_CatFile(fid, logical, version, sha256, sha512, size))


# -- planning an object ------------------------------------------------------------------------------------


@dataclass
class _Content:
    rel: str  # content path relative to the object directory
    sha512: str
    sha256: str | None
    refs: list[tuple[str, str]]  # (version, logical path) of every state entry using this content
    size: int | None  # on disk when planned; None when absent


@dataclass
class _Plan:
    failures: list[Failure]
    inventory: dict[str, Any] | None = None
    trusted: bool = False  # the inventory used passed its sidecar check (repairs need that)
    contents: list[_Content] = field(default_factory=list)


def _sidecar_value(sidecar: bytes) -> str | None:
    parts = sidecar.decode("ascii", "replace").split()
    return parts[0].lower() if len(parts) == 2 and parts[1] == INVENTORY else None


def _safe_content_path(rel: str) -> bool:
    parts = rel.split("/")
    return (
        len(parts) >= 3
        and _VERSION_RE.match(parts[0]) is not None
        and all(p not in ("", ".", "..") for p in parts)
        and "\\" not in rel
        and "\x00" not in rel
    )


def _plan_object(obj_dir: Path, target: _Target) -> _Plan:
    try:
        plan = _plan_once(obj_dir, target)
        if any(f.kind == FailureKind.inventory for f in plan.failures):
            time.sleep(0.2)  # a commit replaces the root inventory, then its sidecar: look once more
            plan = _plan_once(obj_dir, target)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # the directory vanished or cannot be listed, or an inventory is malformed beyond what is checked
        unreadable = isinstance(exc, OSError)
        failure = Failure(
            kind=FailureKind.unreadable if unreadable else FailureKind.inventory,
            object_id=target.object_id,
            archive=target.archive,
            archival_code=target.archival_code,
            detail=f"cannot read the object directory: {exc}"
            if unreadable
            else f"malformed inventory: {exc!r}",
        )
        return _Plan(failures=[failure])
    return plan


def _plan_once(obj_dir: Path, target: _Target) -> _Plan:
    def fail(kind: FailureKind, detail: str, **kw: Any) -> None:
        plan.failures.append(
            Failure(
                kind=kind,
                object_id=target.object_id,
                detail=detail,
                archive=target.archive,
                archival_code=target.archival_code,
                **kw,
            )
        )

    plan = _Plan(failures=[])
    if not (obj_dir / OBJECT_NAMASTE).is_file():
        fail(FailureKind.missing, "the object is not in the storage root")
        return plan
    # "" for the root inventory, else the version name -> (bytes, matches its sidecar)
    inventories: dict[str, tuple[bytes, bool]] = {}
    versions = sorted(
        (int(m.group(1)), e)
        for e in os.listdir(obj_dir)
        if (m := _VERSION_RE.match(e)) and (obj_dir / e).is_dir()
    )
    for where in ["", *(v for _, v in versions)]:
        inv_path = obj_dir / where / INVENTORY if where else obj_dir / INVENTORY
        rel = f"{where}/{INVENTORY}" if where else INVENTORY
        try:
            data = inv_path.read_bytes()
        except FileNotFoundError:
            if not where:
                fail(FailureKind.inventory, "the root inventory.json is missing", content_path=rel)
            continue  # a version inventory is only a SHOULD
        except OSError as exc:
            fail(FailureKind.inventory, f"cannot read the inventory: {exc.strerror}", content_path=rel)
            continue
        actual = hashlib.sha512(data).hexdigest()
        try:
            expected = _sidecar_value(inv_path.with_name(SIDECAR).read_bytes())
        except OSError:
            expected = None
        ok = expected == actual
        if not ok:
            fail(
                FailureKind.inventory,
                "inventory.json does not match its sidecar inventory.json.sha512"
                if expected
                else "the sidecar inventory.json.sha512 is missing or malformed",
                content_path=rel,
                expected_sha512=expected,
                actual_sha512=actual,
                actual_size=len(data),
            )
        inventories[where] = (data, ok)

    def parse(data: bytes) -> dict[str, Any] | None:
        try:
            inv = json.loads(data)
        except ValueError:
            return None
        if not (
            isinstance(inv, dict)
            and isinstance(inv.get("head"), str)
            and isinstance(inv.get("manifest"), dict)
            and isinstance(inv.get("versions"), dict)
            and inv.get("head") in inv["versions"]
        ):
            return None
        return inv

    root_inv = parse(inventories[""][0]) if "" in inventories else None
    if "" in inventories and root_inv is None:
        fail(
            FailureKind.inventory, "the root inventory is not a valid OCFL inventory", content_path=INVENTORY
        )
    head = root_inv["head"] if root_inv else (versions[-1][1] if versions else None)
    head_entry = inventories.get(head) if head else None
    if root_inv is not None and head_entry is not None and head_entry[0] != inventories[""][0]:
        fail(
            FailureKind.inventory,
            f"the root inventory differs from the head version's ({head}/inventory.json)",
            content_path=INVENTORY,
            version=head,
        )
    # the inventory to check content against: the root if sound, else the head version's if sound
    chosen: dict[str, Any] | None = None
    if (
        root_inv is not None
        and inventories[""][1]
        and (head_entry is None or head_entry[0] == inventories[""][0])
    ):
        chosen, plan.trusted = root_inv, True
    elif head_entry is not None and head_entry[1] and (head_inv := parse(head_entry[0])) is not None:
        chosen, plan.trusted = head_inv, True
    elif root_inv is not None:
        chosen = root_inv
    if chosen is None:
        return plan
    if chosen.get("id") != target.object_id and not target.object_id.startswith("?"):
        fail(
            FailureKind.inventory, f"the inventory names object {chosen.get('id')!r}", content_path=INVENTORY
        )
        plan.trusted = False
    head = chosen["head"]
    head_number = int(head[1:]) if _VERSION_RE.match(head) else 0
    for number, name in versions:
        if number > head_number:
            fail(
                FailureKind.extra,
                f"version directory {name} is beyond the head {head} (uncommitted)",
                content_path=name,
                version=name,
            )
    plan.inventory = chosen

    try:
        fixity_sha256: dict[str, str] = {}
        for value, paths in chosen.get("fixity", {}).get("sha256", {}).items():
            for p in paths:
                fixity_sha256[p] = value.lower()
        refs: dict[str, list[tuple[str, str]]] = {}
        for version in sorted(chosen["versions"], key=lambda v: int(v[1:]) if _VERSION_RE.match(v) else 0):
            for digest, logical_paths in chosen["versions"][version]["state"].items():
                refs.setdefault(digest, []).extend((version, lp) for lp in logical_paths)
        listed: set[str] = set()
        base = f"{obj_dir}/"
        for digest, paths in chosen["manifest"].items():
            for rel in paths:
                if not isinstance(rel, str) or not _safe_content_path(rel):
                    fail(FailureKind.inventory, f"the manifest lists an unsafe content path {rel!r}")
                    continue
                listed.add(rel)
                try:
                    size: int | None = os.stat(base + rel).st_size
                except OSError:
                    size = None
                plan.contents.append(
                    _Content(rel, digest.lower(), fixity_sha256.get(rel), refs.get(digest, []), size)
                )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        fail(FailureKind.inventory, f"the inventory is malformed: {exc!r}", content_path=INVENTORY)
        plan.inventory, plan.contents, plan.trusted = None, [], False
        return plan

    content_dir = chosen.get("contentDirectory", "content")
    for number, name in versions:
        if number > head_number:
            continue
        skip = len(str(obj_dir)) + 1
        for dirpath, _dirs, files in os.walk(f"{obj_dir}/{name}/{content_dir}"):
            for fname in files:
                rel = f"{dirpath[skip:]}/{fname}"
                if rel not in listed:
                    try:
                        extra_size: int | None = os.stat(f"{dirpath}/{fname}").st_size
                    except OSError:
                        extra_size = None
                    fail(
                        FailureKind.extra,
                        "a file in the content directory that no inventory lists",
                        content_path=rel,
                        version=name,
                        actual_size=extra_size,
                    )
    return plan


def _batches(contents: list[_Content]) -> Iterator[tuple[list[str], int]]:
    batch: list[str] = []
    nbytes = 0
    for c in contents:
        batch.append(c.rel)
        nbytes += c.size or 0
        if nbytes >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            yield batch, nbytes
            batch, nbytes = [], 0
    if batch:
        yield batch, nbytes


# -- judging -----------------------------------------------------------------------------------------------


@dataclass
class _ObjectResult:
    target: _Target
    failures: list[Failure]
    ok_file_ids: list[int]
    files: int
    bytes: int


def _content_failure(
    target: _Target,
    object_path: str,
    c: _Content,
    version: str,
    logical: str | None,
    cats: list[_CatFile],
    kind: FailureKind,
    detail: str,
    **actual: Any,
) -> Failure:
    return Failure(
        kind=kind,
        detail=detail,
        object_id=target.object_id,
        archive=target.archive,
        archival_code=target.archival_code,
        object_path=object_path,
        version=version,
        logical_path=logical,
        content_path=c.rel,
        expected_sha512=c.sha512,
        expected_sha256=c.sha256,
        expected_size=cats[0].size if cats else None,
        file_id=cats[0].id if cats else None,
        **actual,
    )


def _judge(target: _Target, plan: _Plan, hashed: dict[str, _Hashed], object_path: str) -> _ObjectResult:
    failures = list(plan.failures)
    ok_ids: list[int] = []
    files = nbytes = 0
    inv = plan.inventory
    cat_for_rel: dict[str, list[_CatFile]] = {}
    if inv is not None:
        for cf in target.files:
            state = inv["versions"].get(cf.version, {}).get("state", {})
            digest = next((d for d, lps in state.items() if cf.logical_path in lps), None)
            paths = inv["manifest"].get(digest) if digest else None
            if not paths:
                failures.append(
                    Failure(
                        kind=FailureKind.catalogue,
                        object_id=target.object_id,
                        archive=target.archive,
                        archival_code=target.archival_code,
                        version=cf.version,
                        logical_path=cf.logical_path,
                        expected_sha512=cf.sha512,
                        expected_sha256=cf.sha256,
                        expected_size=cf.size,
                        file_id=cf.id,
                        detail=f"listed by the catalogue in {cf.version} but not held by the inventory",
                    )
                )
                continue
            cat_for_rel.setdefault(paths[0], []).append(cf)
    for c in plan.contents:
        h = hashed[c.rel]
        own_version = c.rel.split("/", 1)[0]
        version, logical = next(
            ((v, lp) for v, lp in c.refs if v == own_version), c.refs[0] if c.refs else (own_version, None)
        )
        cats = cat_for_rel.get(c.rel, [])

        def failure(kind: FailureKind, detail: str, **actual: Any) -> Failure:
            return _content_failure(target, object_path, c, version, logical, cats, kind, detail, **actual)  # noqa: B023

        if h.error is not None:
            missing = h.error == "missing"
            failures.append(
                failure(
                    FailureKind.missing if missing else FailureKind.unreadable,
                    "the content file is missing" if missing else f"the content file is {h.error}",
                )
            )
            continue
        files += 1
        nbytes += h.size
        got512, got256 = h.digests.get("sha512"), h.digests.get("sha256")
        if got512 is None and (got256 is None or c.sha256 is None):
            detail = "the inventory has no sha256 fixity for this file; audit it with sha512"
            failures.append(failure(FailureKind.inventory, detail, actual_sha256=got256, actual_size=h.size))
            continue
        if (got512 is not None and got512 != c.sha512) or (
            got256 is not None and c.sha256 is not None and got256 != c.sha256
        ):
            expected_size = cats[0].size if cats else None
            if h.size == 0 or (expected_size is not None and h.size < expected_size):
                kind = FailureKind.truncated
                detail = f"the content file is shorter than recorded ({h.size} of {expected_size} bytes)"
            else:
                kind = FailureKind.bitrot
                detail = "the content file's digest differs from the inventory's"
            failures.append(
                failure(kind, detail, actual_sha512=got512, actual_sha256=got256, actual_size=h.size)
            )
            continue
        for cf in cats:
            wrong = [
                name
                for name, ok in (
                    ("sha512", got512 is None or got512 == cf.sha512),
                    ("sha256", got256 is None or got256 == cf.sha256),
                    ("size", h.size == cf.size),
                )
                if not ok
            ]
            if wrong:
                failures.append(
                    Failure(
                        kind=FailureKind.catalogue,
                        object_id=target.object_id,
                        archive=target.archive,
                        archival_code=target.archival_code,
                        object_path=object_path,
                        version=cf.version,
                        logical_path=cf.logical_path,
                        content_path=c.rel,
                        expected_sha512=cf.sha512,
                        actual_sha512=got512,
                        expected_sha256=cf.sha256,
                        actual_sha256=got256,
                        expected_size=cf.size,
                        actual_size=h.size,
                        file_id=cf.id,
                        detail=f"the file matches its inventory but not the catalogue ({', '.join(wrong)})",
                    )
                )
            else:
                ok_ids.append(cf.id)
    return _ObjectResult(target, failures, ok_ids, files, nbytes)


# -- repair ------------------------------------------------------------------------------------------------

_REPAIRABLE = (FailureKind.bitrot, FailureKind.truncated, FailureKind.missing)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _repair_file(
    src: Path, dest: Path, tmp_dir: Path, expect: dict[str, str]
) -> tuple[bool, str, dict[str, str]]:
    """Copy ``src`` over ``dest`` if its digests equal ``expect``; atomically (temp, fsync, rename)."""
    if not src.is_file():
        return False, f"the replica has no copy at {src}", {}
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"audit-repair-{uuid.uuid4().hex}.tmp"
    hashers = {a: hashlib.new(a) for a in expect}
    buf = read_buffer()
    view = memoryview(buf)
    try:
        with open(src, "rb", buffering=0) as fin, open(tmp, "xb") as fout:
            while n := fin.readinto(buf):
                chunk = view[:n]
                for h in hashers.values():
                    h.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        got = {a: h.hexdigest() for a, h in hashers.items()}
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
            with open(local, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(local, dest)
        _fsync_dir(dest.parent)
        return True, f"restored from the replica copy {src}", got
    finally:
        tmp.unlink(missing_ok=True)


def _repair(
    result: _ObjectResult,
    plan: _Plan,
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
                object_type=_object_type(target),
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


# -- the run directory -------------------------------------------------------------------------------------


def _object_type(target: _Target) -> str:
    return {"record": "record", "transfer": "transfer"}.get(target.kind, "object")


def _now_text() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class _Run:
    """``$ARCHIVE_HOME/audits/<run-id>/``: run.json + progress.jsonl, locked while in use."""

    def __init__(self, directory: Path, state: dict[str, Any], lock_fd: int) -> None:
        self.dir = directory
        self.state = state
        self.lock_fd = lock_fd
        self.progress_path = directory / "progress.jsonl"

    @property
    def run_id(self) -> str:
        return str(self.state["run_id"])

    @classmethod
    def open(cls, audits: Path, scope: dict[str, Any], resume: bool) -> tuple[_Run, bool]:
        audits.mkdir(parents=True, exist_ok=True)
        if resume:
            for d in sorted((p for p in audits.iterdir() if p.is_dir()), reverse=True):
                try:
                    state = json.loads((d / "run.json").read_bytes())
                except (OSError, ValueError):
                    continue
                if state.get("status") != "running" or state.get("scope") != scope:
                    continue
                fd = _lock(d / ".lock")
                if fd is not None:
                    return cls(d, state, fd), True
        run_id = f"{utcnow():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        d = audits / run_id
        d.mkdir()
        fd = _lock(d / ".lock")
        assert fd is not None
        return cls(d, {"run_id": run_id, "scope": scope, "status": "running", "sessions": []}, fd), False

    def save(self) -> None:
        write_durable_replace(
            self.dir / "run.json",
            (json.dumps(self.state, ensure_ascii=False, indent=2) + "\n").encode("utf-8"),
        )

    def done_objects(self) -> set[str]:
        return {line["object"] for line in self.lines()}

    def lines(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self.progress_path, "rb") as fh:
                for raw in fh:
                    try:
                        yield json.loads(raw)
                    except ValueError:  # a line cut short by a crash: that object is done again
                        continue
        except FileNotFoundError:
            return

    def append(self, lines: list[str]) -> None:
        with open(self.progress_path, "ab") as fh:
            fh.write("".join(lines).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        os.close(self.lock_fd)


class _Ledger:
    """Finished objects waiting to be committed: catalogue updates + events first, then progress lines."""

    def __init__(self, settings: Settings, run: _Run) -> None:
        self.settings = settings
        self.run = run
        self.ok_ids: list[int] = []
        self.events: list[NewEvent] = []
        self.lines: list[str] = []
        self.files = 0
        self.last = time.monotonic()

    def add(self, result: _ObjectResult, events: list[NewEvent]) -> None:
        self.ok_ids.extend(result.ok_file_ids)
        self.events.extend(events)
        self.files += result.files
        self.lines.append(
            json.dumps(
                {
                    "object": result.target.object_id,
                    "kind": result.target.kind,
                    "files": result.files,
                    "bytes": result.bytes,
                    "failures": [f.as_dict() for f in result.failures],
                },
                ensure_ascii=False,
            )
            + "\n"
        )

    def due(self) -> bool:
        return self.files >= FLUSH_FILES or time.monotonic() - self.last >= FLUSH_SECONDS

    def flush(self) -> None:
        """Commit the catalogue updates and events, then append the objects' lines to the progress file
        (so a line always means "recorded"; a crash in between only makes a resumed run check it again)."""
        if self.ok_ids or self.events:
            now = utcnow()
            with db.write_session(self.settings) as s:
                for i in range(0, len(self.ok_ids), CATALOGUE_CHUNK):
                    chunk = self.ok_ids[i : i + CATALOGUE_CHUNK]
                    s.execute(update(File).where(File.id.in_(chunk)).values(last_fixity_at=now))
                append_events(s, self.events)
        if self.lines:
            self.run.append(self.lines)
        self.ok_ids, self.events, self.lines, self.files = [], [], [], 0
        self.last = time.monotonic()


def _failure_event(result: _ObjectResult, run_id: str) -> NewEvent:
    t = result.target
    kinds: dict[str, int] = {}
    for f in result.failures:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    listed = [
        {
            k: v
            for k, v in f.as_dict().items()
            if k
            in (
                "kind",
                "version",
                "logical_path",
                "content_path",
                "expected_sha512",
                "actual_sha512",
                "expected_size",
                "actual_size",
            )
            and v is not None
        }
        for f in result.failures[:MAX_EVENT_FAILURES]
    ]
    return NewEvent(
        event_type=FIXITY_CHECK,
        outcome="failure",
        agent=AGENT,
        object_type=_object_type(t),
        object_id=t.object_id,
        record_id=t.record_id,
        transfer_id=t.transfer_id,
        detail=f"fixity audit {run_id}: {len(result.failures)} problem(s): "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        outcome_detail={
            "run": run_id,
            "files": result.files,
            "bytes": result.bytes,
            "failures": listed,
            "failures_total": len(result.failures),
        },
    )


# -- the audit ---------------------------------------------------------------------------------------------


def run_audit(
    settings: Settings,
    *,
    archive: str | None = None,
    since: dt.datetime | None = None,
    replica_root: Path | None = None,
    report_dir: Path | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    algorithms: Sequence[str] = ("sha512",),
) -> AuditReport:
    """Audit the objects in scope (see the module docstring); write the report; record the events."""
    algos = tuple(dict.fromkeys(a.lower() for a in algorithms))
    if not algos or any(a not in ALGORITHMS for a in algos):
        raise BadArgument(variant="audit_algorithms", known=", ".join(ALGORITHMS), given=algorithms)
    if archive is not None:
        archive = archive.strip().upper()
    if since is not None:
        since = _as_utc(since)
    root = settings.ocfl_root
    if not (root / ROOT_NAMASTE).is_file():
        raise BadArgument(variant="not_ocfl_root", root=root)
    replica = Path(replica_root).absolute() if replica_root is not None else None
    if replica is not None and not (replica / ROOT_NAMASTE).is_file():
        raise BadArgument(variant="replica_not_ocfl_root", root=replica)
    scope = {"archive": archive, "since": since.isoformat() if since else None, "algorithms": list(algos)}
    run, resumed = _Run.open(settings.home_dir / "audits", scope, resume)
    try:
        return _run(
            settings, run, resumed, scope, archive, since, replica, report_dir, workers, progress, algos
        )
    finally:
        run.close()


def _run(
    settings: Settings,
    run: _Run,
    resumed: bool,
    scope: dict[str, Any],
    archive: str | None,
    since: dt.datetime | None,
    replica: Path | None,
    report_dir: Path | None,
    workers: int | None,
    progress: ProgressCallback | None,
    algos: tuple[str, ...],
) -> AuditReport:
    root = settings.ocfl_root
    session = Session(started_at=_now_text())
    run.state["sessions"].append(dataclasses.asdict(session))
    run.save()
    clock = time.perf_counter()
    targets, odd_dirs = _scope_targets(settings, archive, since)
    done = run.done_objects() if resumed else set()
    todo = [t for t in targets if t.object_id not in done]
    counters = AuditProgress(run.run_id, len(todo) + len(done), len(done), 0, 0, 0)
    ledger = _Ledger(settings, run)
    n_workers = max(1, workers or settings.workers)
    try:
        with ThreadPoolExecutor(n_workers, thread_name_prefix="audit") as pool:
            try:
                _drive(
                    pool,
                    settings,
                    root,
                    todo,
                    odd_dirs,
                    replica,
                    algos,
                    run.run_id,
                    ledger,
                    counters,
                    progress,
                    n_workers,
                )
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    except BaseException:
        try:
            ledger.flush()
        finally:
            _end_session(run, session, clock, counters, interrupted=True)
            run.save()
        raise
    _end_session(run, session, clock, counters, interrupted=False)
    return _finish(settings, run, report_dir or run.dir, ledger)


def _end_session(
    run: _Run, session: Session, clock: float, counters: AuditProgress, *, interrupted: bool
) -> None:
    session.finished_at = _now_text()
    session.seconds = round(time.perf_counter() - clock, 6)
    session.files, session.bytes = counters.files_done, counters.bytes_done
    session.interrupted = interrupted
    run.state["sessions"][-1] = dataclasses.asdict(session)


def _drive(
    pool: ThreadPoolExecutor,
    settings: Settings,
    root: Path,
    todo: list[_Target],
    odd_dirs: dict[str, Path],
    replica: Path | None,
    algos: tuple[str, ...],
    run_id: str,
    ledger: _Ledger,
    counters: AuditProgress,
    progress: ProgressCallback | None,
    n_workers: int,
) -> None:
    """Plan objects ahead (up to LOOKAHEAD_OBJECTS / LOOKAHEAD_FILES), hash their batches largest first
    (so a big file never runs alone at the end while other cores idle), judge each object when its last
    batch is in."""

    class _Open:
        def __init__(self, target: _Target, obj_dir: Path) -> None:
            self.target = target
            self.obj_dir = obj_dir
            self.plan: _Plan | None = None
            self.hashed: dict[str, _Hashed] = {}
            self.pending = 0
            self.files = 0

    in_flight: dict[Future[Any], tuple[str, _Open]] = {}
    ready: list[tuple[int, int, _Open, list[str]]] = []  # heap: (-bytes, seq, object, content paths)
    seq = itertools.count()
    next_target = loaded = open_objects = open_files = planning = hashing = 0

    def object_dir(t: _Target) -> Path:
        return odd_dirs.get(t.object_id) or root / object_relpath(t.object_id)

    def finalize(o: _Open) -> None:
        nonlocal open_objects, open_files
        assert o.plan is not None
        rel_obj = o.obj_dir.relative_to(root).as_posix() if o.obj_dir.is_relative_to(root) else str(o.obj_dir)
        result = _judge(o.target, o.plan, o.hashed, rel_obj)
        events: list[NewEvent] = []
        if replica is not None and result.failures:
            replica_obj = replica / o.obj_dir.relative_to(root)
            events += _repair(
                result, o.plan, o.obj_dir, replica_obj, settings.staging_dir / "audit-repair", run_id
            )
        if result.failures:
            events.insert(0, _failure_event(result, run_id))
        ledger.add(result, events)
        o.target.files = []  # the catalogue rows are no longer needed
        open_objects -= 1
        open_files -= o.files
        counters.objects_done += 1
        counters.failures += len(result.failures)
        if ledger.due():
            ledger.flush()
        if progress is not None:
            progress(counters)

    while True:
        while (
            planning < n_workers
            and next_target < len(todo)
            and open_objects < LOOKAHEAD_OBJECTS
            and (open_files < LOOKAHEAD_FILES or open_objects == 0)
        ):
            if next_target >= loaded:  # catalogue rows are read before the object is planned (see races)
                _load_catalogue(settings, todo[loaded : loaded + CATALOGUE_CHUNK])
                loaded += CATALOGUE_CHUNK
            t = todo[next_target]
            next_target += 1
            o = _Open(t, object_dir(t))
            open_objects += 1
            planning += 1
            in_flight[pool.submit(_plan_object, o.obj_dir, t)] = ("plan", o)
        while ready and hashing < 2 * n_workers:
            _neg, _seq, o, rels = heapq.heappop(ready)
            hashing += 1
            in_flight[pool.submit(_hash_batch, o.obj_dir, rels, algos)] = ("hash", o)
        if not in_flight:
            break
        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for fut in finished:
            kind, o = in_flight.pop(fut)
            if kind == "plan":
                planning -= 1
                o.plan = fut.result()
                o.files = len(o.plan.contents)
                open_files += o.files
                for rels, nbytes in _batches(o.plan.contents):
                    heapq.heappush(ready, (-nbytes, next(seq), o, rels))
                    o.pending += 1
                if o.pending == 0:
                    finalize(o)
            else:
                hashing -= 1
                batch: list[_Hashed] = fut.result()
                for h in batch:
                    o.hashed[h.rel] = h
                    if h.error is None:
                        counters.files_done += 1
                        counters.bytes_done += h.size
                o.pending -= 1
                if o.pending == 0:
                    finalize(o)
                elif progress is not None:
                    progress(counters)


def _finish(settings: Settings, run: _Run, report_dir: Path, ledger: _Ledger) -> AuditReport:
    """Report over every finished object of the run (committed lines + the ledger's pending ones), then one
    transaction: the pending catalogue updates and events, and the summary event with the report's sha256."""
    objects = files = nbytes = uncatalogued = 0
    failures: list[Failure] = []
    for line in itertools.chain(run.lines(), (json.loads(raw) for raw in ledger.lines)):
        objects += 1
        files += line["files"]
        nbytes += line["bytes"]
        uncatalogued += line.get("kind") == "object"
        failures.extend(Failure.from_dict(f) for f in line["failures"])
    sessions = [Session(**s) for s in run.state["sessions"]]
    report = AuditReport(
        run_id=run.run_id,
        scope=run.state["scope"],
        started_at=sessions[0].started_at,
        finished_at=sessions[-1].finished_at or _now_text(),
        objects=objects,
        files=files,
        bytes=nbytes,
        seconds=sum(s.seconds for s in sessions),
        failures=failures,
        sessions=sessions,
        uncatalogued_objects=uncatalogued,
    )
    digests = write_report_files(report, report_dir)
    n = len(failures)
    if n:
        detail = (
            f"ALERT: fixity audit {run.run_id} found {n} problem(s) "
            f"({', '.join(f'{k} {c}' for k, c in report.by_kind().items())}); "
            f"{report.repaired} repaired from the replica, {n - report.repaired} not; "
            f"report {report_dir / 'report.json'} sha256 {digests['report.json']}"
        )
        log.error(detail)
    else:
        detail = (
            f"fixity audit {run.run_id}: {objects} objects, {files} files, {nbytes} bytes verified; "
            f"report {report_dir / 'report.json'} sha256 {digests['report.json']}"
        )
    event = NewEvent(
        event_type=FIXITY_CHECK,
        outcome="failure" if n else "success",
        agent=AGENT,
        object_type="node",
        object_id=f"audit:{run.run_id}",
        detail=detail,
        outcome_detail={
            "run": run.run_id,
            "scope": report.scope,
            "objects": objects,
            "files": files,
            "bytes": nbytes,
            "failures": n,
            "repaired": report.repaired,
            "by_kind": report.by_kind(),
            "alert": bool(n),
            "report_dir": str(report_dir),
            "report_sha256": digests,
        },
    )
    ledger.events.append(event)
    ledger.flush()
    report.event_identifier = event.identifier
    run.state.update(
        status="finished", report_dir=str(report_dir), report_sha256=digests, event=event.identifier
    )
    run.save()
    return report


# -- replicas ----------------------------------------------------------------------------------------------


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
                    fout.flush()
                    os.fsync(fout.fileno())
                shutil.copystat(src, tmp)
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
            copied += 1
            nbytes += st.st_size
            changed = True
        if changed or not any(target_dir.iterdir()):
            _fsync_dir(target_dir)
    _fsync_dir(dest_root.parent)
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
