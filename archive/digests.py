"""Digest algorithms: the one table of what the archive computes, and one way to hash a file.

:data:`ALGORITHMS` names every algorithm a bag manifest, the catalogue or an OCFL fixity block may use, with
its hex length. sm3 (GB/T 32905) comes from OpenSSL through ``hashlib.new``; where OpenSSL lacks it,
:func:`available` says so and callers refuse it (bag validation reports the manifest as unsupported).

:class:`MultiHasher` feeds every requested algorithm from one read; :func:`stream` is the read loop (one
reused buffer, an optional byte-identical copy); :func:`hash_file` hashes one file with a per-thread buffer.
The ingest's threaded hasher (:mod:`ingest.hashing`) and the audits, migrations and storage all use these.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ALGORITHMS",
    "BASE_DIGESTS",
    "CHUNK",
    "MANIFEST_ALGORITHMS",
    "OCFL_FIXITY_ALGORITHMS",
    "Algorithm",
    "MultiHasher",
    "available",
    "hash_bytes",
    "hash_file",
    "hex_length",
    "new_hasher",
    "stream",
]


@dataclass(frozen=True)
class Algorithm:
    name: str  # the name BagIt manifests and OCFL fixity blocks use
    hex_length: int
    cost: float  # rough ns per byte on one x86-64 core with SHA-NI; only ratios matter (ingest splits by it)
    manifest: bool  # allowed in a bag manifest (RFC 8493 uses hashlib names; sm3 is GB/T 32905)
    ocfl_fixity: bool  # allowed in an OCFL fixity block (OCFL 1.1 and extension 0001, plus sm3 on request)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("md5", 32, 1.8, manifest=True, ocfl_fixity=True),
        Algorithm("sha1", 40, 0.7, manifest=True, ocfl_fixity=True),
        Algorithm("sha224", 56, 0.8, manifest=True, ocfl_fixity=False),
        Algorithm("sha256", 64, 0.8, manifest=True, ocfl_fixity=True),
        Algorithm("sha384", 96, 1.9, manifest=True, ocfl_fixity=False),
        Algorithm("sha512", 128, 1.8, manifest=True, ocfl_fixity=True),
        Algorithm("sm3", 64, 5.0, manifest=True, ocfl_fixity=True),
        Algorithm("blake2b-160", 40, 1.2, manifest=False, ocfl_fixity=True),
        Algorithm("blake2b-256", 64, 1.2, manifest=False, ocfl_fixity=True),
        Algorithm("blake2b-384", 96, 1.2, manifest=False, ocfl_fixity=True),
        Algorithm("blake2b-512", 128, 1.2, manifest=False, ocfl_fixity=True),
    )
}

#: Digests always recorded in the catalogue for every stored file.
BASE_DIGESTS: tuple[str, ...] = ("sha256", "sha512")
#: Algorithms a bag manifest may use.
MANIFEST_ALGORITHMS: tuple[str, ...] = tuple(a.name for a in ALGORITHMS.values() if a.manifest)
#: Algorithms an OCFL inventory's fixity block may record.
OCFL_FIXITY_ALGORITHMS: tuple[str, ...] = tuple(a.name for a in ALGORITHMS.values() if a.ocfl_fixity)

#: Read size of :func:`hash_file`: 256 KiB stays in the CPU's L2 cache (less CPU per byte than 1 MiB reads).
CHUNK = 256 * 1024


def hex_length(name: str) -> int | None:
    """The length of ``name``'s hex digest, or None for an algorithm not in the table."""
    found = ALGORITHMS.get(name)
    return found.hex_length if found else None


def new_hasher(name: str) -> Any:
    """A fresh hashlib object for ``name`` (ValueError if this Python/OpenSSL cannot compute it)."""
    if name.startswith("blake2b-"):
        return hashlib.blake2b(digest_size=int(name.removeprefix("blake2b-")) // 8)
    return hashlib.new(name)


def available(name: str) -> bool:
    """Whether ``name`` is in the table and this Python/OpenSSL can compute it (sm3 needs OpenSSL's)."""
    if name not in ALGORITHMS:
        return False
    try:
        new_hasher(name)
    except ValueError:
        return False
    return True


class MultiHasher:
    """Several digests of one byte stream: each chunk is fed to every algorithm, so bytes are read once."""

    __slots__ = ("algorithms", "hashers")

    def __init__(self, algorithms: Iterable[str], hashers: list[Any] | None = None) -> None:
        self.algorithms = tuple(algorithms)
        self.hashers = hashers if hashers is not None else [new_hasher(a) for a in self.algorithms]

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        for h in self.hashers:
            h.update(chunk)

    def copy(self) -> MultiHasher:
        return MultiHasher(self.algorithms, [h.copy() for h in self.hashers])

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in zip(self.algorithms, self.hashers, strict=True)}


def stream(
    fd: int,
    hasher: MultiHasher,
    buffer: bytearray,
    *,
    out: int = -1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Read ``fd`` to its end into ``buffer`` (reused), feed every chunk to ``hasher`` and, if ``out`` is an
    open descriptor, write it there too; ``progress(n)`` after each chunk. Returns the number of bytes.

    ``readv`` and ``hashlib`` release the GIL, so several threads stream in parallel."""
    view = memoryview(buffer)
    full = len(buffer)
    hashers = hasher.hashers
    total = 0
    while n := os.readv(fd, [buffer]):
        chunk = view if n == full else view[:n]
        for h in hashers:
            h.update(chunk)
        if out >= 0:
            write_all(out, chunk)
        total += n
        if progress is not None:
            progress(n)
    return total


def write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


_local = threading.local()


def _thread_buffer() -> bytearray:
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(CHUNK)
    return buf


def hash_file(
    path: str | Path, algorithms: Sequence[str] = ("sha512",), *, copy_to: Path | None = None
) -> tuple[int, dict[str, str]]:
    """Size and hex digests (one per algorithm) of one file, read once into this thread's buffer; with
    ``copy_to``, the bytes are also written to that new file (created exclusively; not fsynced: the caller
    makes it durable when it needs to, often with the whole tree it belongs to)."""
    hasher = MultiHasher(algorithms)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if copy_to is None:
            size = stream(fd, hasher, _thread_buffer())
        else:
            out = os.open(copy_to, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                size = stream(fd, hasher, _thread_buffer(), out=out)
            finally:
                os.close(out)
    finally:
        os.close(fd)
    return size, hasher.hexdigests()


def hash_bytes(data: bytes, algorithms: Sequence[str]) -> dict[str, str]:
    """Hex digests of ``data`` (small files built in memory: inventories, metadata)."""
    hasher = MultiHasher(algorithms)
    hasher.update(data)
    return hasher.hexdigests()
