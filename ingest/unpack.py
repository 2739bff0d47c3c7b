"""Safe unpacking of a transfer (a BagIt bag as a directory, ``.zip`` or ``.tar[.gz|.bz2|.xz]``).

Choices made here:

* **Kind by content.** :func:`detect_kind` reads magic bytes (``PK`` for ZIP; gzip/bzip2/xz streams whose
  first decompressed block is a tar header; a plain tar header checksum), never the file name alone.
* **Check everything first, then write.** Every member is inspected before a byte is written (ZIP central
  directory; for tar a first pass over the headers, stopped early once a limit is passed), so a refusal lists
  *all* problems found. Only a clean archive is extracted.
* **Headers can lie.** While extracting, real bytes are counted against ``max_bytes``, ``max_ratio`` and each
  member's declared size; passing any of them aborts at once.
* **Refusal leaves nothing.** On any error ``dest`` is removed if this call created it, or emptied if it
  already existed (it must be empty to start with).
* **Paths.** Backslashes are treated as folder separators (Windows zip tools write them); then absolute paths,
  drive letters, UNC names, ``..`` components, control characters and names that clash (duplicates, or a file
  that is also a folder) are refused.
* **Links and special files.** *All* symbolic and hard link members are refused, whatever their target: a bag
  never needs one, and refusing them all is simpler and safer than judging targets. Device, FIFO and other
  special members are refused too.
* **ZIP name encoding.** With the UTF-8 flag (0x800) names are UTF-8. Without it, :mod:`zipfile` decoded them
  as cp437; they are re-encoded to the original bytes and decoded as strict UTF-8, else GB18030 (Chinese
  Windows tools), else kept as cp437. :attr:`Unpacked.name_encodings` counts which was used; GB18030 adds
  a warning.
* **Written safely.** Files are created exclusively (``O_EXCL|O_NOFOLLOW``) with mode 0644, folders 0755;
  modes from the archive (setuid, exec) are ignored. Modification times are kept. No fsync: the ingest copies
  the files into storage afterwards.
* **Ratio** is the total unpacked size over the archive's size on disk (whole archive, not per member).
* A directory transfer is not copied: :func:`unpack` only checks it against the same size and member limits
  (:func:`check_directory`: real file sizes, links not followed) and finds its bag root (``dest`` is left
  untouched).
* When looking for the bag root, macOS/Windows litter at the top (``__MACOSX``, ``.DS_Store``, ``Thumbs.db``)
  is ignored.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import re
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from archive.errors import DiskFull, is_disk_full
from ingest.problems import Problem, errors

if TYPE_CHECKING:
    from archive.config import Settings

Kind = Literal["dir", "zip", "tar"]

_CHUNK = 1 << 20
_UTF8_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
_LITTER = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
_DRIVE = re.compile(r"^[A-Za-z]:")
_CREATE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Exceptions that mean "this archive is damaged", from zipfile, tarfile and the decompressors under them.
_CORRUPT = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    gzip.BadGzipFile,
    NotImplementedError,  # unsupported zip compression method
    ValueError,
    RuntimeError,  # zipfile: encrypted member, bad password
)


@dataclass
class Unpacked:
    """What :func:`unpack` made of a transfer."""

    bag_root: Path | None
    problems: list[Problem] = field(default_factory=list)
    kind: Kind | None = None
    members: int = 0
    bytes_written: int = 0
    name_encodings: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.bag_root is not None and not errors(self.problems)


class _Abort(Exception):
    """Stop extracting; the problem says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class _Member:
    """One archive member, checked and ready to extract."""

    parts: tuple[str, ...]
    is_dir: bool
    size: int
    mtime: float | None
    open: Callable[[], IO[bytes]]


# -------------------- detection


def _looks_like_tar_header(block: bytes) -> bool:
    if len(block) < tarfile.BLOCKSIZE:
        return False
    if block[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(block[: tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _compression(head: bytes) -> str | None:
    """The compression of a stream from its first bytes, if any of gzip, bzip2 or xz."""
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def _first_decompressed_block(path: Path, compression: str) -> bytes:
    if compression == "gz":
        with gzip.open(path, "rb") as g:
            return g.read(tarfile.BLOCKSIZE)
    if compression == "bz2":
        with bz2.open(path, "rb") as b:
            return b.read(tarfile.BLOCKSIZE)
    with lzma.open(path, "rb") as x:
        return x.read(tarfile.BLOCKSIZE)


def detect_kind(path: Path) -> Kind | None:
    """``"dir"``, ``"zip"`` or ``"tar"`` (plain or compressed) judged by content; ``None`` otherwise.

    A compressed stream that cannot even be decompressed far enough to see a tar header still counts as
    ``"tar"`` so that :func:`unpack` reports it as damaged rather than as an unknown kind.
    """
    if path.is_dir():
        return "dir"
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            head = f.read(tarfile.BLOCKSIZE)
    except OSError:
        return None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    compression = _compression(head)
    if compression is not None:
        try:
            block = _first_decompressed_block(path, compression)
        except (*_CORRUPT, OSError):
            return "tar"
        return "tar" if _looks_like_tar_header(block) else None
    if _looks_like_tar_header(head):
        return "tar"
    return None


# -------------------- names


def _split_name(name: str) -> tuple[tuple[str, ...], str | None]:
    """Split a member name into safe path components, or give the reason it is unsafe."""
    if _CONTROL.search(name):
        return (), "control character in name"
    unified = name.replace("\\", "/")
    if unified.startswith("/"):
        return (), "absolute path"
    if _DRIVE.match(unified):
        return (), "drive letter"
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if ".." in parts:
        return (), "parent folder (..)"
    if not parts:
        return (), "empty name"
    return parts, None


def _zip_name(info: zipfile.ZipInfo) -> tuple[str, str]:
    """The member's real name and the encoding it was decoded with."""
    if info.flag_bits & _UTF8_FLAG:
        return info.filename, "utf-8"
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:  # zipfile was given another metadata_encoding; trust it
        return info.filename, "given"
    if raw.isascii():
        return info.filename, "ascii"
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return info.filename, "cp437"


def _tar_name(name: str) -> str:
    """tarfile decodes names as UTF-8 with surrogate escapes; undecodable bytes get a GB18030 try."""
    if any("\udc80" <= ch <= "\udcff" for ch in name):
        raw = name.encode("utf-8", "surrogateescape")
        with contextlib.suppress(UnicodeDecodeError):
            return raw.decode("gb18030")
    return name


class _Names:
    """Refuses duplicate names and names that are both a file and a folder."""

    def __init__(self) -> None:
        self.files: set[tuple[str, ...]] = set()
        self.dirs: set[tuple[str, ...]] = set()

    def add(self, parts: tuple[str, ...], is_dir: bool) -> str | None:
        parents = [parts[:i] for i in range(1, len(parts))]
        if any(p in self.files for p in parents):
            return "a parent folder is also a file"
        if is_dir:
            if parts in self.files:
                return "folder has the name of a file"
            if parts in self.dirs:
                return "duplicate folder"
        else:
            if parts in self.files:
                return "duplicate name"
            if parts in self.dirs:
                return "file has the name of a folder"
            self.files.add(parts)
        self.dirs.update(parents)
        if is_dir:
            self.dirs.add(parts)
        return None


# -------------------- scanning


@dataclass
class _Scan:
    members: list[_Member] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    declared: int = 0
    count: int = 0
    encodings: Counter[str] = field(default_factory=Counter)


def _check_totals(scan: _Scan, archive_size: int, max_bytes: int, max_ratio: float, max_members: int) -> None:
    if scan.count > max_members:
        scan.problems.append(Problem("UNP008", params={"count": scan.count, "limit": max_members}))
    if scan.declared > max_bytes:
        scan.problems.append(
            Problem("UNP009", params={"size": scan.declared, "limit": max_bytes, "stage": "declared"})
        )
    ratio = scan.declared / max(archive_size, 1)
    if ratio > max_ratio:
        scan.problems.append(
            Problem("UNP010", params={"ratio": f"{ratio:.0f}", "limit": max_ratio, "stage": "declared"})
        )


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _scan_zip(zf: zipfile.ZipFile, scan: _Scan) -> None:
    names = _Names()
    offsets: dict[int, str] = {}
    for info in zf.infolist():
        scan.count += 1
        name, encoding = _zip_name(info)
        scan.encodings[encoding] += 1
        mode = info.external_attr >> 16 if info.create_system == 3 else 0  # Unix mode only from Unix tools
        is_dir = info.is_dir() or stat.S_ISDIR(mode)
        parts, unsafe = _split_name(name)
        if unsafe:
            scan.problems.append(Problem("UNP004", path=name, params={"reason": unsafe}))
            continue
        if stat.S_ISLNK(mode):
            target = "?"
            with contextlib.suppress(*_CORRUPT, OSError):
                target = zf.read(info)[:200].decode("utf-8", "replace") if info.file_size < 4096 else "?"
            scan.problems.append(Problem("UNP005", path=name, params={"kind": "symlink", "target": target}))
            continue
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            scan.problems.append(Problem("UNP006", path=name, params={"kind": _special_kind(mode)}))
            continue
        clash = names.add(parts, is_dir)
        if clash:
            scan.problems.append(Problem("UNP007", path=name, params={"reason": clash}))
            continue
        if info.flag_bits & _ENCRYPTED_FLAG:
            scan.problems.append(Problem("UNP012", path=name))
            continue
        if not is_dir:
            if info.header_offset in offsets:
                scan.problems.append(
                    Problem("UNP016", path=name, params={"other": offsets[info.header_offset]})
                )
                continue
            offsets[info.header_offset] = name
        scan.declared += 0 if is_dir else info.file_size
        scan.members.append(_Member(parts, is_dir, info.file_size, _zip_mtime(info), _bind(zf.open, info)))


def _bind(fn: Callable[..., IO[bytes]], *args: object) -> Callable[[], IO[bytes]]:
    return lambda: fn(*args)


def _special_kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return f"type {stat.S_IFMT(mode):o}"


def _tar_special(info: tarfile.TarInfo) -> str:
    if info.ischr():
        return "character device"
    if info.isblk():
        return "block device"
    if info.isfifo():
        return "FIFO"
    return f"tar type {info.type!r}"


def _open_tar_member(tf: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    stream = tf.extractfile(info)
    if stream is None:
        raise tarfile.ReadError(f"cannot read {info.name}")
    return stream


def _scan_tar(
    tf: tarfile.TarFile, scan: _Scan, plain_size: int | None, max_bytes: int, max_members: int
) -> None:
    """One pass over the headers; stops early once a size or count limit is passed (bombs)."""
    names = _Names()
    while True:
        info = tf.next()
        if info is None:
            break
        scan.count += 1
        name = _tar_name(info.name)
        parts, unsafe = _split_name(name)
        if unsafe:
            scan.problems.append(Problem("UNP004", path=name, params={"reason": unsafe}))
        elif info.issym() or info.islnk():
            kind = "symlink" if info.issym() else "hardlink"
            target = _tar_name(info.linkname)
            scan.problems.append(Problem("UNP005", path=name, params={"kind": kind, "target": target}))
        elif not (info.isreg() or info.isdir()):
            scan.problems.append(Problem("UNP006", path=name, params={"kind": _tar_special(info)}))
        elif clash := names.add(parts, info.isdir()):
            scan.problems.append(Problem("UNP007", path=name, params={"reason": clash}))
        else:
            if info.isreg():
                scan.declared += info.size
                if plain_size is not None and info.offset_data + info.size > plain_size:
                    raise tarfile.ReadError(f"unexpected end of data in {name}")
            scan.members.append(
                _Member(parts, info.isdir(), info.size, float(info.mtime), _bind(_open_tar_member, tf, info))
            )
        if scan.count > max_members or scan.declared > max_bytes:
            break  # enough is known to refuse; do not decompress the rest of a bomb


# -------------------- writing


@dataclass
class _Budget:
    max_bytes: int
    max_ratio: float
    archive_size: int
    written: int = 0

    def add(self, n: int) -> None:
        self.written += n
        if self.written > self.max_bytes:
            raise _Abort(
                Problem(
                    "UNP009",
                    params={"size": self.written, "limit": self.max_bytes, "stage": "while extracting"},
                )
            )
        ratio = self.written / max(self.archive_size, 1)
        if ratio > self.max_ratio:
            raise _Abort(
                Problem(
                    "UNP010",
                    params={"ratio": f"{ratio:.0f}", "limit": self.max_ratio, "stage": "while extracting"},
                )
            )


def _extract(members: list[_Member], dest: Path, budget: _Budget) -> None:
    dir_times: list[tuple[Path, float]] = []
    for m in members:
        target = dest.joinpath(*m.parts)
        if m.is_dir:
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            if m.mtime is not None:
                dir_times.append((target, m.mtime))
            continue
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        got = 0
        with m.open() as src, os.fdopen(os.open(target, _CREATE_FLAGS, 0o644), "wb") as out:
            while chunk := src.read(_CHUNK):
                got += len(chunk)
                if got > m.size:
                    raise _Abort(Problem("UNP011", path="/".join(m.parts), params={"declared": m.size}))
                budget.add(len(chunk))
                out.write(chunk)
        if got != m.size:
            raise tarfile.ReadError(f"{'/'.join(m.parts)}: {got} of {m.size} bytes present")
        if m.mtime is not None:
            with contextlib.suppress(OSError, OverflowError, ValueError):
                os.utime(target, (m.mtime, m.mtime))
    for path, mtime in sorted(dir_times, key=lambda d: len(d[0].parts), reverse=True):
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(path, (mtime, mtime))


def _clear(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# -------------------- public


def find_bag_root(folder: Path) -> tuple[Path | None, list[Problem]]:
    """``folder`` if it holds bagit.txt, else its single top-level folder holding bagit.txt."""
    if (folder / "bagit.txt").is_file():
        return folder, []
    entries = sorted(e for e in folder.iterdir() if e.name not in _LITTER)
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "bagit.txt").is_file():
        return entries[0], []
    found = ", ".join(e.name + ("/" if e.is_dir() else "") for e in entries[:10]) or "-"
    if len(entries) > 10:
        found += ", …"
    return None, [Problem("UNP013", params={"found": found})]


def check_directory(root: Path, *, max_bytes: int, max_members: int) -> list[Problem]:
    """The transfer limits for a bag handed over as a directory: its files' total size (UNP009) and number of
    entries (UNP008), counted without following links; the walk stops as soon as a limit is passed."""
    size = count = 0
    stack = [str(root)]
    while stack and size <= max_bytes and count <= max_members:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    size += entry.stat(follow_symlinks=False).st_size
    problems = []
    if count > max_members:
        problems.append(
            Problem("UNP008", params={"count": f"{count}+" if stack else count, "limit": max_members})
        )
    if size > max_bytes:
        problems.append(
            Problem(
                "UNP009",
                params={"size": f"{size}+" if stack else size, "limit": max_bytes, "stage": "directory"},
            )
        )
    return problems


def check_directory_transfer(root: Path, settings: Settings) -> list[Problem]:
    """:func:`check_directory` with the node's transfer limits."""
    return check_directory(
        root, max_bytes=settings.transfer_byte_limit(), max_members=settings.max_transfer_files
    )


@contextlib.contextmanager
def _open_archive(source: Path, kind: Kind) -> Iterator[zipfile.ZipFile | tarfile.TarFile]:
    if kind == "zip":
        with zipfile.ZipFile(source) as zf:
            yield zf
    else:
        with tarfile.open(source, "r:*") as tf:
            yield tf


def unpack(source: Path, dest: Path, *, max_bytes: int, max_ratio: float, max_members: int) -> Unpacked:
    """Unpack ``source`` into ``dest`` (created if missing, else must be empty) and find the bag root.

    Never raises for a bad archive: every problem found is in :attr:`Unpacked.problems`. On refusal nothing is
    left in ``dest``.
    """
    source, dest = Path(source), Path(dest)
    kind = detect_kind(source)
    result = Unpacked(bag_root=None, kind=kind)
    if kind is None:
        result.problems.append(Problem("UNP001", path=str(source)))
        return result
    if kind == "dir":
        result.problems = check_directory(source, max_bytes=max_bytes, max_members=max_members)
        if errors(result.problems):
            return result
        result.bag_root, result.problems = find_bag_root(source)
        return result
    created = not dest.exists()
    if not created and (not dest.is_dir() or any(dest.iterdir())):
        result.problems.append(Problem("UNP002", params={"dest": str(dest)}))
        return result

    archive_size = source.stat().st_size
    scan = _Scan()
    try:
        with _open_archive(source, kind) as archive:
            if isinstance(archive, zipfile.ZipFile):
                _scan_zip(archive, scan)
            else:
                plain = archive_size if _compression(_head(source)) is None else None
                _scan_tar(archive, scan, plain, max_bytes, max_members)
            _check_totals(scan, archive_size, max_bytes, max_ratio, max_members)
            result.members = scan.count
            result.name_encodings = scan.encodings
            result.problems.extend(scan.problems)
            if scan.encodings.get("gb18030"):
                result.problems.append(
                    Problem("UNP015", params={"count": scan.encodings["gb18030"], "encoding": "GB18030"})
                )
            if errors(result.problems):
                return result
            dest.mkdir(parents=True, exist_ok=True)
            budget = _Budget(max_bytes, max_ratio, archive_size)
            _extract(scan.members, dest, budget)
            result.bytes_written = budget.written
    except _Abort as abort:
        result.problems.append(abort.problem)
    except _CORRUPT as exc:
        result.problems.append(Problem("UNP003", path=source.name, params={"error": _describe(exc)}))
    except OSError as exc:
        if is_disk_full(exc):  # our disk, not the transfer, is at fault: an error, not a rejection
            raise DiskFull(path=dest, reason=exc) from exc
        result.problems.append(Problem("UNP014", params={"error": _describe(exc)}))

    if not errors(result.problems):
        result.bag_root, bag_problems = find_bag_root(dest)
        result.problems.extend(bag_problems)
    if errors(result.problems):
        result.bag_root = None
        if dest.exists():
            _clear(dest, created)
    return result


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(8)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def unpack_transfer(source: Path, dest: Path, settings: Settings) -> Unpacked:
    """:func:`unpack` with the node's transfer limits (size, compression ratio, member count)."""
    return unpack(
        source,
        dest,
        max_bytes=settings.transfer_byte_limit(),
        max_ratio=settings.max_compression_ratio,
        max_members=settings.max_transfer_files,
    )
