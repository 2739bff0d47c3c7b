"""Virus scan with ClamAV (DA/T 70 item 4-1).

Production: ``clamd`` keeps its signatures loaded and ``freshclam`` keeps them current; set
``ARCHIVE_CLAMD_SOCKET`` to its Unix socket and each file is handed to it by descriptor (``zFILDES`` on a
``zIDSESSION`` connection, several files outstanding), so clamd needs no read access to the archive's
storage and no byte is copied through the socket. Without a socket, ``clamscan`` runs once over the whole list
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
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from archive.config import Settings


@dataclass
class ScanResult:
    infected: dict[Path, str] = field(default_factory=dict)  # file → signature name
    errors: dict[Path, str] = field(default_factory=dict)
    engine: str | None = None  # e.g. "ClamAV 1.4.6/27000/…"; None when no scan ran
    unavailable: str | None = None  # why no scan ran


def scan(paths: Sequence[Path], settings: Settings, sizes: Mapping[Path, int] | None = None) -> ScanResult:
    """Scan ``paths``; ``sizes`` (bytes by path, when the caller has them) spares clamscan's share-out a
    ``stat`` per file."""
    if not paths:
        return ScanResult(engine="(nothing to scan)")
    if settings.clamd_socket:
        return _clamd(paths, settings)
    return _clamscan(paths, settings, sizes or {})


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
    """One connection to clamd in ``IDSESSION`` mode. Each file goes by descriptor (``FILDES`` over the Unix
    socket): clamd reads the open file itself, so nothing is copied through the socket and clamd needs no
    access to the storage's paths. Commands are numbered from 1 in the order sent; clamd scans the ones
    outstanding at once and answers each as ``"<n>: <verdict>"`` when it is done."""

    def __init__(self, sock_path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(sock_path)
            self.sock.sendall(b"zIDSESSION\0")
        except OSError:
            self.sock.close()
            raise
        self.sent = 0
        self.buffer = b""

    def send(self, fh: BinaryIO) -> None:
        """Hand an open file over (command number ``sent``); clamd holds its own copy of the descriptor."""
        self.sent += 1
        self.sock.sendall(b"zFILDES\0")  # the command, then the descriptor with one byte of its own
        socket.send_fds(self.sock, [b"\0"], [fh.fileno()])

    def receive(self) -> tuple[int, str]:
        """The next answer: (command number, verdict)."""
        while b"\0" not in self.buffer:
            part = self.sock.recv(4096)
            if not part:
                raise ConnectionError("clamd closed the session")
            self.buffer += part
        answer, _, self.buffer = self.buffer.partition(b"\0")
        number, _, verdict = answer.decode(errors="replace").partition(": ")  # "<n>: fd[7]: OK"
        if not number.isdigit():
            raise ConnectionError(f"clamd: {answer[:200].decode(errors='replace')}")
        return int(number), verdict

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
    """The files, biggest first, over one clamd session with two commands per core outstanding, so clamd
    always has the next files in hand (its threads scan them at once) whatever this process is busy with."""
    sock = str(settings.clamd_socket)
    result = ScanResult()
    try:
        result.engine = _clamd_call(sock, b"zVERSION\0", settings.tool_timeout)
    except OSError as exc:
        result.unavailable = f"clamd at {sock}: {exc}"
        return result
    window = 2 * settings.workers
    todo = iter(sorted(paths, key=lambda p: -_size(p)))
    replies: dict[Path, str] = {}
    pending: dict[int, Path] = {}  # command number → file, in the current session
    session: _Session | None = None
    more = True
    while more or pending:
        try:
            session = session or _Session(sock, settings.tool_timeout)
            while more and len(pending) < window:
                path = next(todo, None)
                if path is None:
                    more = False
                    break
                try:
                    fh = path.open("rb")
                except OSError as exc:  # gone or unreadable: not scanned
                    replies[path] = f"ERROR {exc}"
                    continue
                with fh:
                    pending[session.sent + 1] = path
                    session.send(fh)
            if pending:
                number, verdict = session.receive()
                replies[pending.pop(number)] = verdict
        except OSError as exc:  # these files are not scanned; the next ones get a new session
            replies.update((p, f"ERROR {exc}") for p in pending.values())
            pending = {}
            if session is not None:
                session.sock.close()
            session = None
    if session is not None:
        session.close()
    for path in paths:
        signature, error = _verdict(replies[path])
        if signature is not None:
            result.infected[path] = signature
        elif error is not None:
            result.errors[path] = error
    return result


def _clamscan(paths: Sequence[Path], settings: Settings, sizes: Mapping[Path, int]) -> ScanResult:
    """clamscan over the list, split into one share per core (clamscan scans with one thread), biggest
    files dealt round so that the shares take about as long; the engine's version is asked beside them."""
    exe = shutil.which("clamscan")
    result = ScanResult()
    if exe is None:
        result.unavailable = "neither ARCHIVE_CLAMD_SOCKET nor clamscan on the PATH"
        return result
    db = ["--database=" + str(settings.clamav_db)] if settings.clamav_db else []
    # clamscan makes a scratch folder per file: on tmpfs that costs nothing; its clean-file cache is of no
    # use to a process that scans each file once
    tmp = ["--tempdir=/dev/shm"] if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else []
    by_size = sorted(paths, key=lambda p: -(sizes[p] if p in sizes else _size(p)))
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

    version = subprocess.Popen(
        [exe, "--version", *db], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        with ThreadPoolExecutor(len(shares)) as pool:
            answers = list(pool.map(one, shares))
    finally:
        engine = version.communicate()[0].strip()
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
    result.engine = engine or "clamscan"
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
