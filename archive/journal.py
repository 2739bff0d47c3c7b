"""Crash safety for transfers: a journal file per transfer in progress, and recovery from dead ones.

Ingest is all-or-nothing. A transfer first opens a journal (``$ARCHIVE_HOME/journal/<transfer>.json``) and
holds an exclusive ``flock`` on it for as long as it runs. Before it moves finished OCFL objects from staging
into the storage root it lists their ids in the journal (fsynced); the catalogue transaction then commits the
records, and only after that commit is the journal removed.

If the process dies anywhere on the way, the lock is released by the kernel. :func:`recover` (run at the start
of every command that opens ``ARCHIVE_HOME``) takes each unlocked journal, and unless the catalogue says that
transfer was stored, removes every object it lists from the storage root, removes its staging space and marks
the transfer ``interrupted``. So after a crash neither the storage root nor the catalogue holds anything of
the transfer, and the next ingest works.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from archive.storage._fs import fsync_dir


@dataclass
class Journal:
    path: Path
    handle: IO[str]
    transfer_id: str

    def record_objects(self, object_ids: list[str]) -> None:
        """Say, durably, which objects are about to appear in the storage root."""
        self._write({"objects": object_ids})

    def _write(self, extra: dict[str, Any]) -> None:
        body = {"transfer_id": self.transfer_id, "pid": os.getpid(), "host": socket.gethostname(), **extra}
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps(body, ensure_ascii=False))
        self.handle.flush()
        os.fsync(self.handle.fileno())


@contextlib.contextmanager
def open_journal(journal_dir: Path, transfer_id: str) -> Iterator[Journal]:
    """Hold a journal for the transfer. It is removed only when the block ends normally; after an exception
    or a kill it stays, unlocked, and the next :func:`recover` rolls the transfer back."""
    journal_dir.mkdir(parents=True, exist_ok=True)
    path = journal_dir / f"{transfer_id}.json"
    handle = open(path, "w+", encoding="utf-8")  # noqa: SIM115 - held for the whole transfer
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        journal = Journal(path, handle, transfer_id)
        journal._write({"objects": []})
        fsync_dir(journal_dir)
        yield journal
        path.unlink(missing_ok=True)
    finally:
        handle.close()


@dataclass
class Abandoned:
    transfer_id: str
    objects: list[str]


def recover(
    journal_dir: Path,
    staging_dir: Path,
    *,
    was_stored: Callable[[str], bool],
    remove_object: Callable[[str], None],
    mark_interrupted: Callable[[str], None],
) -> list[Abandoned]:
    """Roll back every transfer whose process died; returns what was rolled back."""
    rolled: list[Abandoned] = []
    if not journal_dir.is_dir():
        return rolled
    for path in sorted(journal_dir.glob("*.json")):
        try:
            handle = open(path, "r+", encoding="utf-8")  # noqa: SIM115
        except FileNotFoundError:
            continue
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process holds it
            if not path.exists():
                continue  # finished and removed while we waited
            try:
                body = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                body = {}
            transfer_id = body.get("transfer_id") or path.stem
            objects = list(body.get("objects") or [])
            if not was_stored(transfer_id):
                for object_id in objects:
                    remove_object(object_id)
                mark_interrupted(transfer_id)
                rolled.append(Abandoned(transfer_id, objects))
            shutil.rmtree(staging_dir / transfer_id, ignore_errors=True)
            path.unlink(missing_ok=True)
    return rolled
