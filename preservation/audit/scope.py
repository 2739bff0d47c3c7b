"""What an audit covers: the objects in scope, in audit order, with the catalogue's rows for each.

A full audit takes every record and stored transfer of the catalogue and every object found in the root
(uncatalogued ones too). An incremental one (``since``) takes the records with a file never verified or last
verified before ``since`` (or with no File rows), never-verified first, then oldest-verified; a transfer's
object comes with its first due record. The root is not walked then, so uncatalogued objects are seen by full
audits only. Catalogue rows are read just before an object is planned (a migration commits OCFL before the
catalogue, so the inventory is never older than the rows).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

from sqlalchemy import func, select

from archive import db
from archive.config import Settings
from archive.errors import UnknownArchive
from archive.models import Archive, File, Record, Transfer, TransferStatus
from archive.storage import InventoryError, object_relpath
from archive.storage.inventory import iter_object_dirs, read_id

TRANSFER_OBJECT = "urn:pearl-archive:{archive}:transfer:{transfer}"
CATALOGUE_CHUNK = 500
_TRANSFER_RE = re.compile(r"^urn:pearl-archive:([^:]+):transfer:(.+)$")
_ARCHIVE_RE = re.compile(r"^urn:pearl-archive:([^:]+):")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class CatFile(NamedTuple):
    id: int
    logical_path: str
    version: str
    sha256: str
    sha512: str
    size: int


@dataclass
class Target:
    object_id: str
    kind: str  # record / transfer / object (in the root, unknown to the catalogue)
    archive: str | None
    archival_code: str | None = None
    record_id: int | None = None
    transfer_id: str | None = None
    files: list[CatFile] = field(default_factory=list)

    @property
    def object_type(self) -> str:
        """The PREMIS object type of events about this object."""
        return {"record": "record", "transfer": "transfer"}.get(self.kind, "object")


def as_utc(value: dt.datetime) -> dt.datetime:
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
        return read_id(obj_dir)
    except InventoryError:
        return None


def _walk_root(root: Path) -> Iterator[tuple[str, Path]]:
    """(object id, directory) of every object directory under the storage root; an object whose id cannot
    be told gets ``?<relative path>`` as id (its inventory failure is reported)."""
    for here in iter_object_dirs(root):
        object_id = _decode_object_dir(root, here)
        yield (object_id or f"?{here.relative_to(root).as_posix()}"), here


def _archive_of(object_id: str) -> str | None:
    m = _ARCHIVE_RE.match(object_id)
    return m.group(1) if m else None


def scope_targets(
    settings: Settings, archive: str | None, since: dt.datetime | None
) -> tuple[list[Target], dict[str, Path]]:
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
            since_utc = as_utc(since)
            due = []
            for rid, oid, code, arch, tid, oldest, never, nfiles in s.execute(dq):
                oldest_utc = as_utc(oldest) if oldest is not None else None
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

    def transfer_target(tid: str, code: str) -> Target:
        return Target(TRANSFER_OBJECT.format(archive=code, transfer=tid), "transfer", code, transfer_id=tid)

    targets: list[Target] = []
    if since is not None:
        seen_transfers: set[str] = set()
        for rid, oid, code, arch, tid in records:
            targets.append(Target(oid, "record", arch, code, rid, tid))
            if tid in transfers and tid not in seen_transfers:
                seen_transfers.add(tid)
                targets.append(transfer_target(tid, transfers[tid]))
        return targets, odd_dirs

    by_id: dict[str, Target] = {}
    for rid, oid, code, arch, tid in records:
        by_id[oid] = Target(oid, "record", arch, code, rid, tid)
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
        by_id[object_id] = Target(
            object_id, "object", _archive_of(object_id), transfer_id=m.group(2) if m else None
        )
    targets = [by_id[k] for k in sorted(by_id)]
    return targets, odd_dirs


def load_catalogue(settings: Settings, targets: Sequence[Target]) -> None:
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
            ids[record_id].files.append(CatFile(fid, logical, version, sha256, sha512, size))
