"""Small durable-file-system helpers: fsync files and directories, atomic replace, advisory locks."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return cast("Callable[[int], int]", libc.syncfs)
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


#: Trees with at most this many entries are fsynced entry by entry; bigger ones with one ``syncfs``.
SMALL_TREE = 64


def _entries_if_small(top: Path, limit: int) -> tuple[list[str], list[str]] | None:
    """(files, directories children first) below ``top`` if there are at most ``limit`` entries, else None."""
    files: list[str] = []
    dirs: list[str] = []
    stack = [str(top)]
    while stack:
        d = stack.pop()
        dirs.append(d)
        with os.scandir(d) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    files.append(entry.path)
                if len(files) + len(dirs) + len(stack) > limit:
                    return None
    return files, dirs[::-1]


def fsync_tree(top: Path) -> None:
    """Make every file and directory below ``top`` durable.

    A small tree (a migration's new version: the output, an inventory, its sidecar) gets an fsync per file
    and directory, children before parents: that waits only for its own data. A big one (an ingest's
    thousands of staged files) gets Linux's ``syncfs`` on the file system holding it — one call instead of
    thousands of fsyncs, at the price of also waiting for whatever else is dirty on that file system, which
    a big tree outweighs. Without ``syncfs`` (or if it fails) every entry is fsynced."""
    small = _entries_if_small(top, SMALL_TREE)
    if small is None and _SYNCFS is not None:
        fd = os.open(top, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    if small is None:
        small = ([], [])
        for dirpath, _dirs, names in os.walk(top, topdown=False):
            small[0].extend(os.path.join(dirpath, n) for n in names)
            small[1].append(dirpath)
    files, dirs = small
    for f in files:
        fsync_file(Path(f))
    for d in dirs:
        fsync_dir(Path(d))


def sync_filesystem(path: Path) -> None:
    """Make everything written to the file system holding ``path`` durable: one ``syncfs`` (a file-system
    replica flushes a whole batch of copied versions this way), else ``sync``."""
    if _SYNCFS is not None:
        fd = os.open(path, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


def fsync_dirs(paths: Iterable[Path]) -> None:
    """Make the entries of many directories durable: an fsync each for a few, one ``syncfs`` for many (the
    folders a batch of new objects was renamed into)."""
    unique = list(dict.fromkeys(paths))
    if len(unique) > SMALL_TREE and _SYNCFS is not None:
        fd = os.open(unique[0], os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for d in unique:
        fsync_dir(d)


def start_writeback(top: Path) -> None:
    """Begin writing the dirty data of the file system holding ``top`` to disk, in a background thread, and
    return at once. A hint, not a guarantee: a big ingest's copies reach the disk while the CPU is still busy
    identifying formats, so the :func:`fsync_tree` of its commit (which alone makes them durable) finds
    little left to wait for. Nothing happens without ``syncfs``."""
    if _SYNCFS is None:
        return

    def run() -> None:
        try:
            fd = os.open(top, os.O_RDONLY)
        except OSError:
            return
        try:
            _SYNCFS(fd)  # ctypes lets the GIL go for the call
        finally:
            os.close(fd)

    threading.Thread(target=run, name="writeback", daemon=True).start()


def write_staged(path: Path, data: bytes) -> None:
    """Write a new file inside a staged tree, without an fsync of its own: the tree's :func:`fsync_tree`,
    which every commit runs before it publishes anything, makes it durable (an fsync here too would only
    wait twice — ~40 ms each on a disk busy writing back an ingest)."""
    with open(path, "xb") as fh:
        fh.write(data)


def write_durable(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (the caller fsyncs the directory or the tree)."""
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def replace_atomically(dest: Path, data: bytes, tmp_dir: Path) -> None:
    """Replace ``dest`` with ``data`` in one rename; the temporary file lives in ``tmp_dir`` (same file
    system), so no stray temporary file can ever appear next to ``dest``."""
    tmp = tmp_dir / f".tmp-{uuid.uuid4().hex}"
    write_durable(tmp, data)
    try:
        os.rename(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def prune_empty_dirs(start: Path, stop: Path) -> None:
    """Remove ``start`` and its ancestors while they are empty, never ``stop`` or above."""
    d = start
    while d != stop and stop in d.parents:
        try:
            d.rmdir()
        except OSError:  # not empty (or already gone by a concurrent prune)
            if d.exists():
                break
        d = d.parent
    with contextlib.suppress(OSError):
        fsync_dir(d)


def remove_tree(path: Path, trash_dir: Path) -> None:
    """Make ``path`` vanish atomically (rename into ``trash_dir``), then delete it at leisure."""
    trash = trash_dir / f"trash-{uuid.uuid4().hex}"
    os.rename(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash)


def acquire_lock(lock_file: Path, *, blocking: bool = True) -> int | None:
    """Take an exclusive ``flock`` on ``lock_file``; return its descriptor, or None if non-blocking and held.

    flock locks belong to the open file description, so two builders in one process exclude each other too,
    and the kernel drops the lock when a crashed process dies.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_new(lock_file: Path) -> int | None:
    """Create ``lock_file`` in an existing folder and lock it; None if the folder or the file vanished before
    the lock was held (a sweeper removed them), so the caller can start again elsewhere."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        linked = os.fstat(fd).st_nlink > 0 and os.stat(lock_file).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        linked = False
    except BaseException:
        os.close(fd)
        raise
    if not linked:
        os.close(fd)
        return None
    return fd


def release_lock(fd: int) -> None:
    os.close(fd)


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    fd = acquire_lock(lock_file)
    assert fd is not None
    try:
        yield
    finally:
        release_lock(fd)
