"""The core of the tus 1.0.0 resumable upload protocol (https://tus.io/protocols/resumable-upload), server side.

Written here rather than taken from a library (``tuspyserver`` was the candidate): the protocol core is small
(headers, offsets, metadata), and the node needs three things inside the write loop that a library's own
router and file store do not give: the staff API's authorisation (:mod:`access_portal.staff`) on every call,
the bag's SHA-256 computed as the bytes stream in (duplicate detection without a second read of a 1 GiB bag),
and ``ARCHIVE_MAX_TRANSFER_BYTES`` with the project's coded errors. Routes: :mod:`access_portal.routes.uploads`.

A chunk is written under an exclusive ``flock`` of ``<id>.lock`` taken without waiting, so a second PATCH of
the same upload at the same time (from any process of the node) is refused with 423 instead of interleaving
bytes. The offset is the partial file's size; the running SHA-256 stays in memory per process beside the
offset it covers, and is rebuilt from the file (one read) only when another process or a restart wrote last.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from archive.errors import BeyondUploadLength, TusError, UploadBusy

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration"
CHUNK_TYPE = "application/offset+octet-stream"
#: Bytes gathered from the request before one write (and hash update) in a worker thread.
WRITE_BATCH = 4 << 20

#: upload id -> (offset covered, running SHA-256) of the last write this process made
_HASHERS: dict[str, tuple[int, Any]] = {}


def check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != VERSION:
        raise TusError(variant="version")


def check_chunk_type(request: Request) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != CHUNK_TYPE:
        raise TusError(variant="content_type")


def whole_number(value: str | None, variant: str) -> int:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        raise TusError(variant=variant)
    return int(value)


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (a key alone means an empty value)."""
    found: dict[str, str] = {}
    for pair in (header or "").split(","):
        key, _, value = pair.strip().partition(" ")
        if not key:
            continue
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TusError(variant="metadata") from None
    return found


def encode_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


class Writer:
    """Appends to one partial upload under its lock; use :func:`open_writer` and always :meth:`close`."""

    def __init__(self, path: Path, upload_id: str, length: int) -> None:
        self.path = path
        self.upload_id = upload_id
        self.length = length
        self._lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise UploadBusy() from None
        try:
            self._file = open(path, "r+b")  # noqa: SIM115  (closed by close())
        except BaseException:
            os.close(self._lock)
            raise
        self.offset = self._file.seek(0, os.SEEK_END)
        cached = _HASHERS.get(upload_id)
        self._hasher = cached[1] if cached and cached[0] == self.offset else None

    def _running_hash(self) -> Any:
        if self._hasher is None:  # another process (or a restart) wrote last: hash what is on disk once
            hasher = hashlib.sha256()
            with open(self.path, "rb") as fh:
                remaining = self.offset
                while remaining and (block := fh.read(min(remaining, 1 << 20))):
                    hasher.update(block)
                    remaining -= len(block)
            self._hasher = hasher
        return self._hasher

    def write(self, data: bytes | bytearray) -> None:
        if self.offset + len(data) > self.length:
            raise BeyondUploadLength(length=self.length)
        hasher = self._running_hash()
        try:
            self._file.write(data)
        except BaseException:
            self._file.truncate(self.offset)
            raise
        hasher.update(data)
        self.offset += len(data)

    @property
    def complete(self) -> bool:
        return self.offset == self.length

    def sha256(self) -> str:
        return str(self._running_hash().hexdigest())

    def close(self) -> None:
        try:
            self._file.flush()
            if (
                self.complete
            ):  # a partial upload's offset is what reached the file; the bag is made durable once
                os.fsync(self._file.fileno())
            self._file.close()
            if self._hasher is not None and not self.complete:
                _HASHERS[self.upload_id] = (self.offset, self._hasher)
            else:
                _HASHERS.pop(self.upload_id, None)
        finally:
            os.close(self._lock)  # releases the flock


def open_writer(path: Path, upload_id: str, length: int) -> Writer:
    return Writer(path, upload_id, length)


def forget(upload_id: str) -> None:
    _HASHERS.pop(upload_id, None)


async def receive(request: Request, writer: Writer) -> bool:
    """Stream the request body into ``writer``; False when the client went away mid-way (what arrived up
    to the cut is kept, as tus expects, and the client resumes from the offset HEAD reports)."""
    buffer = bytearray()
    try:
        async for piece in request.stream():
            buffer += piece
            if len(buffer) >= WRITE_BATCH:
                await run_in_threadpool(writer.write, buffer)
                buffer = bytearray()
    except ClientDisconnect:
        if buffer:
            await run_in_threadpool(writer.write, buffer)
        return False
    if buffer:
        await run_in_threadpool(writer.write, buffer)
    return True
