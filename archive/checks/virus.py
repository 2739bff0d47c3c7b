"""Virus scan with ClamAV (DA/T 70 item 4-1).

Production: ``clamd`` keeps its signatures loaded and ``freshclam`` keeps them current; set
``ARCHIVE_CLAMD_SOCKET`` to its Unix socket and each file is streamed to it (``zINSTREAM``), so clamd needs
no read access to the archive's storage. Without a socket, ``clamscan`` runs once over the whole list
(``--file-list``), with ``--database=ARCHIVE_CLAMAV_DB`` when set. Neither available: the scan did not
happen, and the item says so (warn), never pass.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from archive.config import Settings

CHUNK = 1 << 20


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


def _instream(sock_path: str, path: Path, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(b"zINSTREAM\0")
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                s.sendall(struct.pack(">I", len(chunk)) + chunk)
        s.sendall(struct.pack(">I", 0))
        return _read_reply(s)


def _clamd(paths: Sequence[Path], settings: Settings) -> ScanResult:
    sock = str(settings.clamd_socket)
    result = ScanResult()
    try:
        result.engine = _clamd_call(sock, b"zVERSION\0", settings.tool_timeout)
    except OSError as exc:
        result.unavailable = f"clamd at {sock}: {exc}"
        return result

    def one(path: Path) -> tuple[Path, str]:
        try:
            return path, _instream(sock, path, settings.tool_timeout)
        except OSError as exc:
            return path, f"ERROR {exc}"

    with ThreadPoolExecutor(settings.workers) as pool:
        for path, reply in pool.map(one, paths):
            # "stream: OK", "stream: Eicar-Signature FOUND", "INSTREAM size limit exceeded. ERROR"
            if reply.endswith("FOUND"):
                result.infected[path] = reply.removeprefix("stream:").strip().removesuffix("FOUND").strip()
            elif not reply.endswith("OK"):
                result.errors[path] = reply
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
    for code, stdout, stderr in answers:
        if code not in (0, 1):  # 2: no signature database, bad option, …
            result.unavailable = f"clamscan exit {code}: {(stderr or stdout).strip()[-300:]}"
            return result
        for line in stdout.splitlines():
            name, sep, verdict = line.rpartition(": ")
            if not sep or name not in by_name:
                continue
            if verdict.endswith(" FOUND"):
                result.infected[by_name[name]] = verdict.removesuffix(" FOUND")
            elif verdict != "OK":
                result.errors[by_name[name]] = verdict
    result.engine = engine or "clamscan"
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
