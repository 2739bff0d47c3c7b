"""The run directory and the ledger: what makes an audit resumable and its bookkeeping cheap.

A run lives in ``$ARCHIVE_HOME/audits/<run-id>/``: ``run.json`` (scope, status, sessions) and
``progress.jsonl`` (one line per finished object with its counts and failures, appended and fsynced after the
catalogue transaction that records it). A resumed run continues the newest unfinished run with the same scope
(archive, since, algorithms): finished objects are not read again, and the final report folds every line.
The run directory is ``flock``ed while a process works on it; the unit of resumption is the object.

The ledger batches finished objects: ``File.last_fixity_at`` for the files verified (or repaired) and the
objects' events are committed at most every :data:`FLUSH_SECONDS` or :data:`FLUSH_FILES` files, and at the
end — a handful of fsyncs and transactions per run, not one per object.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import update

from archive import db
from archive.config import Settings
from archive.events import NewEvent, append_events
from archive.models import File, utcnow
from archive.storage import acquire_lock, fsync_file, release_lock, replace_atomically
from preservation.audit.judge import ObjectResult
from preservation.audit.scope import CATALOGUE_CHUNK

FLUSH_SECONDS = 5.0
FLUSH_FILES = 20_000


def now_text() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RunDir:
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
    def open(cls, audits: Path, scope: dict[str, Any], resume: bool) -> tuple[RunDir, bool]:
        audits.mkdir(parents=True, exist_ok=True)
        if resume:
            for d in sorted((p for p in audits.iterdir() if p.is_dir()), reverse=True):
                try:
                    state = json.loads((d / "run.json").read_bytes())
                except (OSError, ValueError):
                    continue
                if state.get("status") != "running" or state.get("scope") != scope:
                    continue
                fd = acquire_lock(d / ".lock", blocking=False)
                if fd is not None:
                    return cls(d, state, fd), True
        run_id = f"{utcnow():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        d = audits / run_id
        d.mkdir()
        fd = acquire_lock(d / ".lock", blocking=False)
        assert fd is not None
        return cls(d, {"run_id": run_id, "scope": scope, "status": "running", "sessions": []}, fd), False

    def save(self) -> None:
        replace_atomically(
            self.dir / "run.json",
            (json.dumps(self.state, ensure_ascii=False, indent=2) + "\n").encode("utf-8"),
            self.dir,
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
        fsync_file(self.progress_path)

    def close(self) -> None:
        release_lock(self.lock_fd)


class Ledger:
    """Finished objects waiting to be committed: catalogue updates + events first, then progress lines."""

    def __init__(self, settings: Settings, run: RunDir) -> None:
        self.settings = settings
        self.run = run
        self.ok_ids: list[int] = []
        self.events: list[NewEvent] = []
        self.lines: list[str] = []
        self.files = 0
        self.last = time.monotonic()

    def add(self, result: ObjectResult, events: list[NewEvent]) -> None:
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
