"""One-pass file digests for the preservation workers (fixity audits, migration outputs).

Each thread reads into one reused buffer of :data:`CHUNK` bytes (``readinto`` and ``hashlib`` release the
GIL, so threads hash in parallel); every requested algorithm sees each chunk, so a file is read once however
many digests it needs. 256 KiB stays in the CPU's L2 cache and measured about 15 % less CPU per byte than
1 MiB reads, on par with ``hashlib.file_digest`` (see ``preservation.audit``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CHUNK", "hash_file", "read_buffer"]

CHUNK = 256 * 1024

_local = threading.local()


def read_buffer() -> bytearray:
    """This thread's reused read buffer of :data:`CHUNK` bytes."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(CHUNK)
    return buf


def hash_file(path: Path, algorithms: Sequence[str] = ("sha512",)) -> tuple[int, dict[str, str]]:
    """Size and hex digests (one per algorithm) of one file, read once into this thread's buffer."""
    buf = read_buffer()
    view = memoryview(buf)
    hashers = [hashlib.new(a) for a in algorithms]
    size = 0
    with open(path, "rb", buffering=0) as fh:
        if len(hashers) == 1:
            update = hashers[0].update
            while n := fh.readinto(buf):
                update(view if n == CHUNK else view[:n])
                size += n
        else:
            while n := fh.readinto(buf):
                chunk = view if n == CHUNK else view[:n]
                for h in hashers:
                    h.update(chunk)
                size += n
    return size, {a: h.hexdigest() for a, h in zip(algorithms, hashers, strict=True)}
