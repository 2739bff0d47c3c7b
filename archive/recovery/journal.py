"""The catalogue journal: what the catalogue holds, carried in the OCFL storage root itself.

``<root>/extensions/pearl-catalogue-journal/`` holds append-only JSON-lines segments (``000001.jsonl``, …,
a new one past :data:`SEGMENT_BYTES`). Every catalogue change emits a PREMIS event, so the journal follows
the event log: after each commit that appended events, :func:`follow` writes, for the new events in chain
order, the current rows of everything they touched — the records (with all their files), their fonds, the
transfers, every holding archive — then the events themselves with their chain hashes, then a ``mark`` line
with the last event's id and hash; one write and one ``fsync`` per commit (a batched fsync: a transfer of
10,000 records is one append). Lines::

    {"t": "archive", "row": {...}}        {"t": "fonds", "row": {...}}      {"t": "transfer", "row": {...}}
    {"t": "record", "row": {...}, "files": [{...}, ...]}
    {"t": "event", "row": {...}}          {"t": "mark", "event_id": 123, "hash": "..."}

A later line for the same row replaces the earlier one. The database stays the authority while it lives:
a crash between its commit and the journal's append is healed by the next :func:`follow` (every command
opening the home runs one), which starts from the journal's last mark. A torn last line (a crash mid-write)
is cut off before the next append. The convention is documented for archivists in
``docs/ocfl-extension-catalogue.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import db
from archive.config import Settings
from archive.recovery.errors import JournalDamaged
from archive.recovery.rows import TABLES, encode_row
from archive.storage import _fs

EXTENSION = "pearl-catalogue-journal"
SEGMENT_BYTES = 64 * 1024 * 1024
#: Events read (and rows snapshotted) per round of :func:`follow`.
FOLLOW_BATCH = 20_000
_TAIL = 64 * 1024
_IN = 900  # ids per IN (...) list


def journal_dir(root: Path) -> Path:
    return root / "extensions" / EXTENSION


def segments(root: Path) -> list[Path]:
    folder = journal_dir(root)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".jsonl" and p.stem.isdigit())


try:  # the "fast" extra: several times quicker than json for the thousands of lines of one ingest
    import orjson

    def _dumps(body: dict[str, Any]) -> bytes:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - the plain install

    def _dumps(body: dict[str, Any]) -> bytes:
        return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    def _loads(data: bytes) -> Any:
        return json.loads(data)


def last_mark(root: Path) -> dict[str, Any] | None:
    """The newest ``mark`` line (reading back from the end of the newest segments), or None."""
    for segment in reversed(segments(root)):
        with open(segment, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            start = end
            while start > 0:
                start = max(0, start - _TAIL)
                f.seek(start)
                chunk = f.read(end - start)
                lines = chunk.split(b"\n")
                if start > 0:
                    lines = lines[1:]  # maybe cut in the middle
                for line in reversed(lines):
                    if line.startswith(b'{"event_id"'):  # keys are sorted: only a mark starts so
                        try:
                            body = json.loads(line)
                        except ValueError:
                            continue  # the torn last line of a crash
                        if body.get("t") == "mark":
                            return dict(body)
                if len(chunk) >= 4 * 1024 * 1024:
                    break
    return None


def _append(root: Path, data: bytes) -> None:
    folder = journal_dir(root)
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        _fs.fsync_dir(folder.parent)
    existing = segments(root)
    created = False
    if not existing or existing[-1].stat().st_size >= SEGMENT_BYTES:
        number = int(existing[-1].stem) + 1 if existing else 1
        target = folder / f"{number:06d}.jsonl"
        created = True
    else:
        target = existing[-1]
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a crash tore the last line: cut it off
            tail = os.pread(fd, min(size, 4 * 1024 * 1024), max(0, size - 4 * 1024 * 1024))
            os.ftruncate(fd, size - (len(tail) - tail.rfind(b"\n") - 1))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fs.fsync_dir(folder)


def _chunks(ids: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(ids), _IN):
        yield ids[i : i + _IN]


def snapshot_lines(session: Session, events: list[Any]) -> bytes:
    """The journal lines for a run of committed events (as row mappings, in chain order): the rows they
    touched, then the events, then the mark."""
    out: list[bytes] = []
    archives, fonds_t, transfers_t = TABLES["archives"], TABLES["fonds"], TABLES["transfers"]
    records_t, files_t, events_t = TABLES["records"], TABLES["files"], TABLES["events"]
    for row in session.execute(select(archives).order_by(archives.c.id)).mappings():
        out.append(_dumps({"t": "archive", "row": encode_row(archives, row)}))
    record_ids = sorted({e["record_id"] for e in events if e["record_id"] is not None})
    transfer_ids = sorted({e["transfer_id"] for e in events if e["transfer_id"] is not None})
    records: list[Any] = []
    for chunk in _chunks(record_ids):
        records.extend(session.execute(select(records_t).where(records_t.c.id.in_(chunk))).mappings())
    transfer_ids = sorted(set(transfer_ids) | {r["transfer_id"] for r in records})
    fonds_ids = sorted({r["fonds_id"] for r in records if r["fonds_id"] is not None})
    for chunk in _chunks(fonds_ids):
        for row in session.execute(select(fonds_t).where(fonds_t.c.id.in_(chunk))).mappings():
            out.append(_dumps({"t": "fonds", "row": encode_row(fonds_t, row)}))
    for chunk in _chunks(transfer_ids):
        for row in session.execute(select(transfers_t).where(transfers_t.c.id.in_(chunk))).mappings():
            out.append(_dumps({"t": "transfer", "row": encode_row(transfers_t, row)}))
    files: dict[int, list[dict[str, Any]]] = {}
    for chunk in _chunks(record_ids):
        query = select(files_t).where(files_t.c.record_id.in_(chunk)).order_by(files_t.c.id)
        for row in session.execute(query).mappings():
            files.setdefault(row["record_id"], []).append(encode_row(files_t, row))
    for r in sorted(records, key=lambda r: r["id"]):
        out.append(_dumps({"t": "record", "row": encode_row(records_t, r), "files": files.get(r["id"], [])}))
    for e in events:
        out.append(_dumps({"t": "event", "row": encode_row(events_t, e)}))
    out.append(_dumps({"t": "mark", "event_id": events[-1]["id"], "hash": events[-1]["hash"]}))
    return b"".join(out)


def follow(settings: Settings) -> int:
    """Bring the journal up to the catalogue's newest committed event; return how many events it wrote.
    Cheap when there is nothing new (the journal's last mark, one query). Writers take turns on a lock in
    the staging area, so lines stay in chain order."""
    root = settings.ocfl_root
    if not (root / "0=ocfl_1.1").exists():
        return 0
    (settings.staging_dir / "ocfl-locks").mkdir(parents=True, exist_ok=True)
    written = 0
    with _fs.locked(settings.staging_dir / "ocfl-locks" / "catalogue-journal.lock"):
        mark = last_mark(root)
        last = int(mark["event_id"]) if mark else 0
        events_t = TABLES["events"]
        with db.read_session(settings) as s:
            while True:
                query = (
                    select(events_t).where(events_t.c.id > last).order_by(events_t.c.id).limit(FOLLOW_BATCH)
                )
                events = list(s.execute(query).mappings())
                if not events:
                    break
                _append(root, snapshot_lines(s, events))
                written += len(events)
                last = events[-1]["id"]
                if len(events) < FOLLOW_BATCH:
                    break
    return written


def read_lines(root: Path) -> Iterator[dict[str, Any]]:
    """Every line of the journal, in order (streaming). A torn last line of the last segment is skipped
    (the crash it shows lost nothing committed: the next follow rewrites from the last mark); any other
    unreadable line raises :class:`JournalDamaged`."""
    all_segments = segments(root)
    for index, segment in enumerate(all_segments):
        last_segment = index == len(all_segments) - 1
        with open(segment, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith(b"\n") and last_segment:
                    return
                try:
                    body = _loads(line)
                except ValueError as exc:
                    raise JournalDamaged(segment=segment, line=number, reason=exc) from None
                yield body


__all__ = ["EXTENSION", "follow", "journal_dir", "last_mark", "read_lines", "segments", "snapshot_lines"]
