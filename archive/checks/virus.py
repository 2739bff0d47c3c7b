"""Virus scan with ClamAV (DA/T 70 item 4-1).

Production: ``clamd`` keeps its signatures loaded and ``freshclam`` keeps them current; set
``ARCHIVE_CLAMD_SOCKET`` to its Unix socket and each file is handed to it by descriptor (``zFILDES`` on a
pool of ``zIDSESSION`` connections), so clamd needs no read access to the archive's storage and no byte is
copied through the socket. Without a socket, ``clamscan`` runs once over the whole list
(``--file-list``), with ``--database=ARCHIVE_CLAMAV_DB`` when set. Neither available: the scan did not
happen, and the item says so (warn), never pass.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from archive.config import Settings


@dataclass
class ScanResult:
    infected: dict[Path, str] = field(default_factory=dict)  # file → signature name
    errors: dict[Path, str] = field(default_factory=dict)
    engine: str | None = None  # e.g. "ClamAV 1.4.6/27000/…"; None when no scan ran
    unavailable: str | None = None  # why no scan ran


def scan(paths: Sequence[Path], settings: Settings) -> ScanResult:
    if not paths:
        return ScanResult(engine="(nothing to scan)")
    if settings.clamd_socket:
        return _clamd(paths, settings)
    return _clamscan(paths, settings)


def _clamd_call(sock_path: str, command: bytes, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(command)
        return _read_reply(s)


def _read_reply(s: socket.socket) -> str:
    reply = b""
    while not reply.endswith(b"\0"):
        part = s.recv(4096)
        if not part:
            break
        reply += part
    return reply.rstrip(b"\0").decode(errors="replace")


class _Session:
    """One connection to clamd in ``IDSESSION`` mode: many files, one command at a time, each answer
    ``"<n>: <verdict>"``. Each file goes by descriptor (``FILDES``, over the Unix socket): clamd reads the
    open file itself, so nothing is copied through the socket and clamd needs no access to the storage's
    paths."""

    def __init__(self, sock_path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(sock_path)
            self.sock.sendall(b"zIDSESSION\0")
        except OSError:
            self.sock.close()
            raise
        self.buffer = b""

    def scan(self, path: Path) -> str:
        with path.open("rb") as fh:
            self.sock.sendall(b"zFILDES\0")  # the command, then the descriptor with one byte of its own
            socket.send_fds(self.sock, [b"\0"], [fh.fileno()])
            return self._reply()

    def _reply(self) -> str:
        while b"\0" not in self.buffer:
            part = self.sock.recv(4096)
            if not part:
                raise ConnectionError("clamd closed the session")
            self.buffer += part
        answer, _, self.buffer = self.buffer.partition(b"\0")
        _, _, verdict = answer.decode(errors="replace").partition(": ")  # "<n>: fd[7]: OK"
        return verdict

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"zEND\0")
        self.sock.close()


def _verdict(reply: str) -> tuple[str | None, str | None]:
    """(signature, None) for an infected file, (None, error) for a file not scanned, (None, None) if clean.
    Replies: ``fd[7]: OK``, ``fd[7]: Eicar-Signature FOUND``, ``fd[7]: Can't open file or directory ERROR``."""
    if reply.endswith(" FOUND"):
        return reply.removesuffix(" FOUND").rpartition(": ")[2].strip(), None
    if reply.endswith(": OK"):
        return None, None
    return None, reply


def _clamd(paths: Sequence[Path], settings: Settings) -> ScanResult:
    """The files over a pool of ``ARCHIVE_HASH_WORKERS`` clamd sessions (one per core by default), the
    biggest first, so clamd scans that many files at once."""
    sock = str(settings.clamd_socket)
    result = ScanResult()
    try:
        result.engine = _clamd_call(sock, b"zVERSION\0", settings.tool_timeout)
    except OSError as exc:
        result.unavailable = f"clamd at {sock}: {exc}"
        return result
    queue = iter(sorted(paths, key=lambda p: -_size(p)))
    lock = threading.Lock()
    replies: dict[Path, str] = {}

    def worker() -> None:
        session: _Session | None = None
        try:
            while True:
                with lock:
                    path = next(queue, None)
                if path is None:
                    return
                try:
                    session = session or _Session(sock, settings.tool_timeout)
                    replies[path] = session.scan(path)
                except OSError as exc:  # this file is not scanned; the next one gets a new session
                    replies[path] = f"ERROR {exc}"
                    if session is not None:
                        session.sock.close()
                    session = None
        finally:
            if session is not None:
                session.close()

    with ThreadPoolExecutor(settings.workers, thread_name_prefix="clamd") as pool:
        for done in [pool.submit(worker) for _ in range(min(settings.workers, len(paths)))]:
            done.result()
    for path in paths:
        signature, error = _verdict(replies[path])
        if signature is not None:
            result.infected[path] = signature
        elif error is not None:
            result.errors[path] = error
    return result


def _clamscan(paths: Sequence[Path], settings: Settings) -> ScanResult:
    """clamscan over the list, split into one share per core (clamscan scans with one thread), biggest
    files dealt round so that the shares take about as long."""
    exe = shutil.which("clamscan")
    result = ScanResult()
    if exe is None:
        result.unavailable = "neither ARCHIVE_CLAMD_SOCKET nor clamscan on the PATH"
        return result
    db = ["--database=" + str(settings.clamav_db)] if settings.clamav_db else []
    # clamscan makes a scratch folder per file: on tmpfs that costs nothing; its clean-file cache is of no
    # use to a process that scans each file once
    tmp = ["--tempdir=/dev/shm"] if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else []
    by_size = sorted(paths, key=lambda p: -_size(p))
    shares = [by_size[i :: settings.workers] for i in range(settings.workers)]
    shares = [share for share in shares if share]

    def one(share: list[Path]) -> tuple[int, str, str]:
        with tempfile.NamedTemporaryFile("w", suffix=".lst", encoding="utf-8", delete=False) as lst:
            lst.write("".join(f"{p}\n" for p in share))
        try:
            proc = subprocess.run(
                [exe, "--no-summary", "--stdout", "--disable-cache", *tmp, *db, f"--file-list={lst.name}"],
                capture_output=True,
                text=True,
                timeout=max(settings.tool_timeout, 10 * len(share)),
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 2, "", "clamscan timed out"
        finally:
            os.unlink(lst.name)
        return proc.returncode, proc.stdout, proc.stderr

    with ThreadPoolExecutor(len(shares)) as pool:
        answers = list(pool.map(one, shares))
    by_name = {str(p): p for p in paths}
    answered: set[str] = set()
    for code, stdout, stderr in answers:
        if code not in (0, 1):  # 2: no signature database, bad option, …
            result.unavailable = f"clamscan exit {code}: {(stderr or stdout).strip()[-300:]}"
            return result
        for line in stdout.splitlines():
            name, sep, verdict = line.removeprefix("WARNING: ").rpartition(": ")
            if not sep or name not in by_name:
                continue
            if verdict.endswith(" FOUND"):
                result.infected[by_name[name]] = verdict.removesuffix(" FOUND")
            elif verdict != "OK":
                result.errors[by_name[name]] = verdict
            answered.add(name)
    for name, path in by_name.items():  # e.g. a file gone before its turn: not scanned, never clean
        if name not in answered:
            result.errors[path] = "no verdict from clamscan"
    version = subprocess.run([exe, "--version", *db], capture_output=True, text=True, check=False)
    result.engine = version.stdout.strip() or "clamscan"
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
