"""What the checks look at: records with their metadata and files, whoever provides them.

At receipt the ingest pipeline builds these from the bag (before anything is stored); in preservation
:func:`from_catalogue` builds them from the catalogue and the OCFL objects (the head version's files).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.models import Archive, File, Fonds, Record
from archive.storage import OcflStore


@dataclass
class FileView:
    path: str  # as reported: the bag path at receipt, the logical path in the object later
    location: Path | None  # where the bytes are; None when the object could not say (reported by 2-5)
    size: int  # recorded size
    digests: dict[str, str] = field(default_factory=dict)  # recorded digests (sha256, sha512, …)
    puid: str | None = None
    mime: str | None = None
    format_name: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    role: str = "original"


@dataclass
class RecordView:
    archive: str
    archival_code: str
    title: str | None
    creator: str | None = None
    date_text: str | None = None
    date_start: dt.date | None = None
    date_end: dt.date | None = None
    retention: str | None = None
    security_class: str | None = None
    fonds: str | None = None
    language: str | None = None
    description: str | None = None
    keywords: str | None = None
    files: list[FileView] = field(default_factory=list)
    record_id: int | None = None
    object_id: str | None = None
    metadata_path: Path | None = None  # metadata/record.json in the object (None at receipt)
    problems: list[str] = field(default_factory=list)  # why the object could not be read, if it could not
    declared_files: int | None = None  # what the catalogue counted at ingest (None at receipt)
    declared_bytes: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.archive}/{self.archival_code}"

    @property
    def year(self) -> int | None:
        return self.date_start.year if self.date_start else None


def _head_locations(store: OcflStore, object_id: str) -> tuple[dict[str, Path], list[str]]:
    """Logical path → content file of the object's head version."""
    try:
        inventory = store.read_inventory(object_id)
    except Exception as exc:  # a missing or unreadable object is what 4-4 and 2-5 report
        return {}, [f"{type(exc).__name__}: {exc}"]
    base = f"{store.object_path(object_id)}/"
    head = inventory["versions"][inventory["head"]]["state"]
    out: dict[str, Path] = {}
    for digest, logical_paths in head.items():
        content = Path(base + inventory["manifest"][digest][0])
        for logical in logical_paths:
            out[logical] = content
    return out, []


_RECORD_COLUMNS = (
    Record.id,
    Record.archive_id,
    Record.fonds_id,
    Record.archival_code,
    Record.title,
    Record.creator,
    Record.date_text,
    Record.date_start,
    Record.date_end,
    Record.retention,
    Record.security_class,
    Record.language,
    Record.description,
    Record.keywords,
    Record.ocfl_object_id,
    Record.file_count,
    Record.byte_count,
)
_FILE_COLUMNS = (
    File.record_id,
    File.logical_path,
    File.size,
    File.sha256,
    File.sha512,
    File.puid,
    File.mime,
    File.format_name,
    File.properties,
    File.role,
)


#: How the objects' inventories are read: the builtin ``map``, or a thread pool's (in order, either way).
MapFn = Callable[[Callable[[str], tuple[dict[str, Path], list[str]]], Iterable[str]], Iterable[Any]]


def from_catalogue(
    session: Session, store: OcflStore, record_ids: Sequence[int], *, map_fn: MapFn = map
) -> Iterator[RecordView]:
    """Views of catalogued records: metadata from the catalogue, file bytes from the OCFL head version.
    Plain column reads (no ORM objects, none of the JSON columns but a file's properties): a sample of
    thousands of records is read in a fraction of a second. ``map_fn`` (a pool's ``map``) reads the objects'
    inventories concurrently; the views come in record order whichever it is."""
    archives = dict(session.execute(select(Archive.id, Archive.code)).all())
    fonds = dict(session.execute(select(Fonds.id, Fonds.code)).all())
    ids = list(record_ids)
    files: dict[int, list[Any]] = {}
    for row in session.execute(select(*_FILE_COLUMNS).where(File.record_id.in_(ids)).order_by(File.id)):
        files.setdefault(row.record_id, []).append(row)
    rows = session.execute(select(*_RECORD_COLUMNS).where(Record.id.in_(ids)).order_by(Record.id)).all()
    heads = map_fn(lambda object_id: _head_locations(store, object_id), [r.ocfl_object_id for r in rows])
    for r, (where, problems) in zip(rows, heads, strict=True):
        views = [
            FileView(
                path=f.logical_path,
                location=where.get(f.logical_path),
                size=f.size,
                digests={"sha256": f.sha256, "sha512": f.sha512},
                puid=f.puid,
                mime=f.mime,
                format_name=f.format_name,
                properties=f.properties or {},
                role=f.role,
            )
            for f in files.get(r.id, [])
        ]
        yield RecordView(
            archive=archives.get(r.archive_id, "?"),
            archival_code=r.archival_code,
            title=r.title,
            creator=r.creator,
            date_text=r.date_text,
            date_start=r.date_start,
            date_end=r.date_end,
            retention=r.retention,
            security_class=r.security_class,
            fonds=fonds.get(r.fonds_id) if r.fonds_id else None,
            language=r.language,
            description=r.description,
            keywords=r.keywords,
            files=views,
            record_id=r.id,
            object_id=r.ocfl_object_id,
            metadata_path=where.get("metadata/record.json"),
            problems=problems,
            declared_files=r.file_count,
            declared_bytes=r.byte_count,
        )
