"""Stream files once, computing several digests at the same time, on every core, in bounded memory.

Each file is read exactly once, in chunks, into a buffer the worker reuses; every chunk is fed to every
requested hashlib algorithm and, if the job asks for it, written to a destination file. Copies are not
fsynced one by one: their consumer (the OCFL commit) makes the whole staged tree durable with one
``syncfs`` before it moves anything into the storage root, which costs one flush instead of one per file. Files are spread over a fixed pool of worker threads (hashlib releases the GIL
while it hashes a buffer larger than 2 KiB). A large file is additionally split *by algorithm*: helper
threads hash the same chunks for the other algorithms, so that even a bag with one 100 GB file keeps
every core busy when it has more than one manifest.

Memory is bounded regardless of how many files there are: at most ``2 × workers`` batches of jobs are in
flight, results are yielded as they complete, and every buffer is reused.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive.digests import ALGORITHMS as _TABLE
from archive.digests import MANIFEST_ALGORITHMS, MultiHasher, new_hasher, stream, write_all
from archive.errors import DiskFull, is_disk_full

__all__ = ["ALGORITHMS", "HashJob", "HashResult", "Progress", "hash_file", "hash_files"]

#: Algorithms a bag manifest may use (the table is :mod:`archive.digests`).
ALGORITHMS: tuple[str, ...] = MANIFEST_ALGORITHMS

#: Rough cost per byte of each algorithm; only the ratios matter, for splitting the algorithms of a large
#: file into groups of equal work.
_COST = {name: a.cost for name, a in _TABLE.items()}

CHUNK = 1 << 20  # small files: one read into a 1 MiB buffer
LARGE_CHUNK = 1 << 20  # large files: 1 MiB chunks shared by the algorithm threads (5 per file in flight)
LARGE_FILE = 32 << 20  # from this size on a file's algorithms are spread over several threads
BATCH_FILES = 32  # small files are handed to a worker this many at a time (fewer thread hand-offs) ...
BATCH_BYTES = 4 << 20  # ... or fewer, once their known sizes add up to this

Progress = Callable[[int, int], None]
"""``progress(files_done, bytes_done)``; always called from the thread iterating :func:`hash_files`."""

_O_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
)


@dataclass(frozen=True)
class HashJob:
    """One file to read; ``destination``, if given, receives a byte-identical copy (parents created).

    ``source`` may be a plain ``str``: a bag of 100,000 files would otherwise spend a second of the hashing
    threads' GIL time building ``Path`` objects. ``key`` is the caller's name for the job (e.g. its bag path).
    """

    source: str | Path
    destination: Path | None = None
    size: int | None = None  # expected size, if known: lets small files travel to the workers in batches
    key: str = ""


@dataclass(frozen=True)
class HashResult:
    job: HashJob
    size: int = 0
    digests: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the OSError text when the file could not be read (or the copy not written)

    @property
    def path(self) -> Path:
        return Path(self.job.source)

    @property
    def ok(self) -> bool:
        return self.error is None


def _check_algorithms(algorithms: Sequence[str]) -> tuple[str, ...]:
    algs = tuple(dict.fromkeys(a.lower() for a in algorithms))
    for a in algs:
        new_hasher(a)  # ValueError early for an algorithm this OpenSSL lacks
    return algs


def _groups(algorithms: Sequence[str], n: int) -> list[list[int]]:
    """Split algorithm indices into ``n`` groups of roughly equal cost (largest first, greedy)."""
    groups: list[list[int]] = [[] for _ in range(n)]
    load = [0.0] * n
    for i in sorted(range(len(algorithms)), key=lambda i: -_COST.get(algorithms[i], 2.0)):
        g = load.index(min(load))
        groups[g].append(i)
        load[g] += _COST.get(algorithms[i], 2.0)
    return [g for g in groups if g]


class _Worker:
    """State one worker thread reuses from file to file: its read buffer and its byte counter."""

    def __init__(self, algorithms: tuple[str, ...], split: int) -> None:
        self.algorithms = algorithms
        self.split = split
        self.base = MultiHasher(algorithms)
        self.buffer = bytearray(CHUNK)
        self.bytes_done = 0  # written by this worker's thread only; read by the consumer for progress

    def run(self, job: HashJob) -> HashResult:
        try:
            fd = os.open(job.source, _O_FLAGS)
        except OSError as exc:
            return HashResult(job, error=f"{exc.strerror or exc} ({job.source})")
        out = -1
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return HashResult(job, error=f"not a regular file ({job.source})")
            if job.destination is not None:
                out = _create(job.destination)
            hasher = self.base.copy()
            if st.st_size >= LARGE_FILE and self.split > 1 and len(hasher.hashers) > 1:
                size = self._large(fd, out, hasher.hashers, st.st_size)
            else:
                size = stream(fd, hasher, self.buffer, out=out, progress=self._count)
            return HashResult(job, size, hasher.hexdigests())
        except OSError as exc:
            if job.destination is not None and is_disk_full(exc):  # our disk, not the transfer, is at fault
                raise DiskFull(path=job.destination, reason=exc) from exc
            return HashResult(job, error=f"{exc.strerror or exc} ({exc.filename or job.source})")
        finally:
            os.close(fd)
            if out >= 0:
                os.close(out)

    def _count(self, n: int) -> None:
        self.bytes_done += n

    def _large(self, fd: int, out: int, hashers: list[Any], size_hint: int) -> int:
        """Read once; the calling thread hashes the first group of algorithms, helper threads the others."""
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        groups = _groups(self.algorithms, min(self.split, len(hashers)))
        nbuf = 2 * len(groups) + 1
        buffers = [bytearray(LARGE_CHUNK) for _ in range(nbuf)]
        free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(nbuf):
            free.put(i)
        pending = [0] * nbuf
        lock = threading.Lock()

        def release(i: int) -> None:
            with lock:
                pending[i] -= 1
                last = pending[i] == 0
            if last:
                free.put(i)

        def helper(inbox: queue.SimpleQueue[tuple[int, int] | None], mine: list[Any]) -> None:
            while (item := inbox.get()) is not None:
                i, n = item
                chunk = memoryview(buffers[i])[:n]
                for h in mine:
                    h.update(chunk)
                release(i)

        inboxes: list[queue.SimpleQueue[tuple[int, int] | None]] = []
        threads = []
        for g in groups[1:]:
            inbox: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
            t = threading.Thread(target=helper, args=(inbox, [hashers[i] for i in g]), daemon=True)
            t.start()
            inboxes.append(inbox)
            threads.append(t)
        own = [hashers[i] for i in groups[0]]
        total = 0
        try:
            while True:
                i = free.get()
                n = os.readv(fd, [buffers[i]])
                if n == 0:
                    break
                chunk = memoryview(buffers[i])[:n]
                pending[i] = len(groups)
                for inbox in inboxes:
                    inbox.put((i, n))
                if out >= 0:
                    write_all(out, chunk)
                for h in own:
                    h.update(chunk)
                release(i)
                total += n
                self.bytes_done += n
        finally:
            for inbox in inboxes:
                inbox.put(None)
            for t in threads:
                t.join()
        return total


def _create(path: Path) -> int:
    """Open a new file for writing, creating its folders only if they are missing (usually they are not:
    one system call per file). O_EXCL: two names one file system folds together (case) never share a copy."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o644)


def hash_files(
    jobs: Iterable[HashJob | Path],
    algorithms: Sequence[str],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Generator[HashResult, None, None]:
    """Hash (and optionally copy) every job's file; yield one :class:`HashResult` per job, as each completes.

    ``workers`` threads (default ``os.cpu_count()``) read files in parallel; large files also spread their
    algorithms over helper threads. An unreadable file yields a result with ``error`` set; nothing is raised
    for I/O errors. ``progress(files_done, bytes_done)`` is called from the iterating thread after each file
    and about twice a second while a long file is being read. Closing the iterator early stops the workers
    after the files they are reading.
    """
    algs = _check_algorithms(algorithms)
    n = max(1, workers if workers is not None else (os.cpu_count() or 1))
    split = os.cpu_count() or 1
    todo: queue.SimpleQueue[list[HashJob] | None] = queue.SimpleQueue()
    done: queue.SimpleQueue[list[HashResult] | Exception] = queue.SimpleQueue()
    states = [_Worker(algs, split) for _ in range(n)]

    def work(state: _Worker) -> None:
        while (batch := todo.get()) is not None:
            try:
                done.put([state.run(job) for job in batch])
            except Exception as exc:  # a bug, not an I/O error: re-raised in the consumer, never a deadlock
                done.put(exc)

    def next_batch() -> list[HashJob]:
        batch: list[HashJob] = []
        size = 0
        for item in source:
            job = item if isinstance(item, HashJob) else HashJob(Path(item))
            batch.append(job)
            size += job.size if job.size is not None else BATCH_BYTES
            if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                break
        return batch

    threads = [
        threading.Thread(target=work, args=(s,), daemon=True, name=f"hash-{i}") for i, s in enumerate(states)
    ]
    for t in threads:
        t.start()
    files_done = 0
    in_flight = 0
    source = iter(jobs)
    exhausted = False
    try:
        while True:
            while not exhausted and in_flight < 2 * n:
                batch = next_batch()
                if not batch:
                    exhausted = True
                    break
                todo.put(batch)
                in_flight += 1
            if in_flight == 0:
                return
            while True:
                try:
                    results = done.get(timeout=0.5 if progress else None)
                    break
                except queue.Empty:
                    if progress is not None:
                        progress(files_done, sum(s.bytes_done for s in states))
            in_flight -= 1
            if isinstance(results, Exception):
                raise results
            for result in results:
                files_done += 1
                if progress is not None:
                    progress(files_done, sum(s.bytes_done for s in states))
                yield result
    finally:
        while True:  # closed early: drop the jobs no worker has started
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            todo.put(None)
        for t in threads:
            t.join()


def hash_file(path: Path, algorithms: Sequence[str], *, destination: Path | None = None) -> HashResult:
    """Hash one file in the calling thread (large files still use helper threads per algorithm group)."""
    return _Worker(_check_algorithms(algorithms), os.cpu_count() or 1).run(HashJob(path, destination))
