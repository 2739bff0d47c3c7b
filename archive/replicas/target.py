"""Replica targets: where copies of the OCFL storage root live, parsed from ``ARCHIVE_REPLICAS`` in one place.

    for target in targets(settings):          # FsTarget('/mnt/offsite/ocfl'), S3Target('s3://bucket/ocfl')
        target.put_file("0=ocfl_1.1", path, ("sha512", digest))    # written, read back, verified, then visible
        target.list("ab1/…")                  # {relative path: size}
        target.hash("ab1/…/inventory.json", "sha512")

Every target holds the same relative paths as the storage root (a file-system replica is itself an OCFL
root that ``archive audit`` and a rebuild can read). A write is whole or absent: a file-system target writes
a temporary file beside the final one, fsyncs it, reads it back and hashes it, and only then renames it
into place; an S3 target sends the file with its ``Content-MD5`` (the server refuses a body that arrives
different) and then accepts the object only if its ``ETag`` — the MD5 of what the server stored, for a
single-part upload — is the same MD5. A big file goes in parts, each checked the same way, and the
completed object's ``ETag`` must be the MD5 of those parts' MD5s (the server computes it from the parts it
holds). No HEAD or GET follows: the PUT's answer already is the server's own digest of the bytes it stored,
and a read back would only have it recompute the same MD5. The digest of the bytes sent is checked against
the inventory while they are read, once, so a rotten primary file is never sent. The uploads themselves
go through :mod:`archive.replicas.s3put` (the SDK's signer and credentials without its per-call cost, half
the client CPU of a replication); listing, reading and the multipart set-up through the SDK's client.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from functools import cached_property
from http.client import HTTPException
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from archive.digests import CHUNK, MultiHasher, hash_bytes, hash_file
from archive.replicas.errors import BadReplicaTarget, CopyMismatch, ReplicaUnavailable, SourceDamaged
from archive.replicas.s3put import SignedPuts, endpoint_problem
from archive.storage import fsync_dir, sync_filesystem

if TYPE_CHECKING:
    from archive.config import Settings

#: Temporary files a file-system target writes beside the final ones; never counted as content.
TMP_PREFIX = ".replica-"
TMP_SUFFIX = ".tmp"
#: An S3 target sends files bigger than this as a multipart upload, in parts of this size.
PART_SIZE = 16 * 1024 * 1024


def _hash_stream(stream: IO[bytes], algorithms: tuple[str, ...]) -> tuple[int, dict[str, str]]:
    hashers = {a: hashlib.new(a) for a in algorithms}
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        for h in hashers.values():
            h.update(chunk)
    return size, {a: h.hexdigest() for a, h in hashers.items()}


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return cast("Callable[[int, int, int, int], int]", fn)


_SYNC_FILE_RANGE = _sync_file_range()
_START_WRITEBACK = 2  # SYNC_FILE_RANGE_WRITE: start writing the dirty pages out, do not wait


def _copy(src: Path | str, dest: Path | str, durable: bool) -> None:
    """Copy ``src`` to the new file ``dest`` in the kernel (``copy_file_range``, as ``cp`` does; a plain
    read/write loop where the file systems refuse it), then start writing it to the disk at once
    (``sync_file_range``), so the disk works while the next files are copied and the flush that makes the
    batch durable finds little left to write; ``durable``: also fsync it now."""
    fd_in = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            try:
                while os.copy_file_range(fd_in, fd_out, 1 << 30):
                    pass
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                os.lseek(fd_in, 0, os.SEEK_SET)
                os.lseek(fd_out, 0, os.SEEK_SET)
                os.ftruncate(fd_out, 0)
                while chunk := os.read(fd_in, CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd_out, view) :]
            if _SYNC_FILE_RANGE is not None:
                _SYNC_FILE_RANGE(fd_out, 0, 0, _START_WRITEBACK)  # a hint: its failure changes nothing
            if durable:
                os.fsync(fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


class Target(ABC):
    """One replica: a place holding the storage root's relative paths. ``name`` is the entry as configured."""

    name: str

    @abstractmethod
    def put_file(
        self, key: str, src: Path, expect: tuple[str, str] | None = None, *, durable: bool = True
    ) -> None:
        """Copy ``src`` to ``key`` whole or not at all; ``expect`` = (algorithm, hex digest) the bytes must
        have (:class:`SourceDamaged` if the source's do not, :class:`CopyMismatch` if the target's do not).
        ``durable=False`` leaves making it durable to the next :meth:`flush` (one for a batch of files)."""

    def flush(self) -> None:
        """Make every write so far durable (a file system's ``syncfs``; an S3 PUT is durable when answered)."""
        return None  # an S3 PUT is durable once answered; a file system overrides this

    def sweep_partial(self, prefix: str) -> int:
        """Remove the half-written temporary files a killed copy left under ``prefix`` (only while no other
        copy can run: the drain holds the home's replication lock); returns how many. An S3 PUT leaves none."""
        return 0

    @abstractmethod
    def list(self, prefix: str = "") -> dict[str, int]:
        """Every file under ``prefix`` (a relative folder, '' for all): relative path → size."""

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """The stored bytes of ``key`` (``FileNotFoundError`` when absent)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""

    @property
    def local_root(self) -> Path | None:
        """The folder of a file-system replica (an OCFL root a rebuild or audit can read directly)."""
        return None

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def hash(self, key: str, algorithm: str) -> str | None:
        """The digest of the stored ``key``, read back in full; None when it is absent."""
        try:
            with self.open(key) as f:
                return _hash_stream(f, (algorithm,))[1][algorithm]
        except FileNotFoundError:
            return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class FsTarget(Target):
    """A replica on a mounted file system (an off-site volume, another disk)."""

    def __init__(self, root: Path, name: str | None = None) -> None:
        self.root = root
        self.name = name or str(root)
        self._top = os.path.normpath(root)
        self._dirs: set[str] = set()  # folders known to exist (string paths: this runs once per file)

    @property
    def local_root(self) -> Path:
        return self.root

    def _path(self, key: str) -> Path:
        return self.root / key

    def flush(self) -> None:
        if self.root.is_dir():
            sync_filesystem(self.root)

    def sweep_partial(self, prefix: str) -> int:
        removed = 0
        for dirpath, _dirs, files in os.walk(self._path(prefix)):
            for name in files:
                if name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX):
                    (Path(dirpath) / name).unlink(missing_ok=True)
                    removed += 1
        return removed

    def _ensure_dir(self, folder: str) -> None:
        """Make ``folder`` and its missing parents, top down: one ``mkdir`` per new folder (a recursive
        ``mkdir -p`` from the bottom tries each missing level twice and every existing one once more)."""
        missing: list[str] = []
        here = folder
        while here not in self._dirs and here != self._top:
            missing.append(here)
            parent = os.path.dirname(here)
            if parent == here:
                break
            here = parent
        if here == self._top and here not in self._dirs:
            os.makedirs(here, exist_ok=True)  # the replica's own folder, and its parents if need be
            self._dirs.add(here)
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
            self._dirs.add(d)

    def put_file(
        self, key: str, src: Path, expect: tuple[str, str] | None = None, *, durable: bool = True
    ) -> None:
        dest = os.path.join(self._top, key)
        folder = os.path.dirname(dest)
        if folder not in self._dirs:
            try:
                self._ensure_dir(folder)
            except OSError as exc:
                raise ReplicaUnavailable(self.name, exc) from exc
        tmp = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}{TMP_SUFFIX}")
        try:
            try:
                _copy(src, tmp, durable)
            except FileNotFoundError:
                if not src.is_file():
                    raise
                self._forget(folder)  # removed since we made it
                self._ensure_dir(folder)
                _copy(src, tmp, durable)
            if expect is not None:
                algorithm, want = expect
                got = hash_file(tmp, (algorithm,))[1][algorithm]  # read back: what the replica holds
                if got != want:
                    # the copy differs: was it the source?
                    if hash_file(src, (algorithm,))[1][algorithm] != want:
                        raise SourceDamaged(key)
                    raise CopyMismatch(self.name, key, want, got)
            os.replace(tmp, dest)
            tmp = ""  # renamed into place: nothing left to remove
            if durable:
                fsync_dir(Path(folder))
        except OSError as exc:
            self._forget(folder)
            if exc.errno in (errno.ENOSPC, errno.EIO, errno.EROFS, errno.ENOENT, errno.EACCES):
                raise ReplicaUnavailable(self.name, exc) from exc
            raise
        finally:
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _forget(self, folder: str) -> None:
        """``folder`` may have been removed behind our back: check it and its parents again next time."""
        while folder in self._dirs:
            self._dirs.discard(folder)
            folder = os.path.dirname(folder)

    def list(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix) if prefix else self.root
        found: dict[str, int] = {}
        for dirpath, _dirs, files in os.walk(base):
            here = Path(dirpath)
            for name in files:
                p = here / name
                try:
                    found[p.relative_to(self.root).as_posix()] = p.stat().st_size
                except FileNotFoundError:
                    continue
        return found

    def open(self, key: str) -> IO[bytes]:
        return open(self._path(key), "rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Target(Target):
    """A replica in an S3-compatible bucket (SeaweedFS, Ceph radosgw, MinIO, AWS…): ``s3://bucket/prefix``."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str,
        region: str,
        name: str,
        *,
        connections: int = 16,
        part_size: int = PART_SIZE,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.name = name
        self.connections = connections  # the copying threads share one client and its connection pool
        self.part_size = part_size  # files bigger than this go in parts of this size

    @cached_property
    def _session(self) -> Any:
        import boto3

        return boto3.session.Session()

    @cached_property
    def client(self) -> Any:
        """The SDK's client, for everything but the uploads (listing, reading, deleting, multipart set-up)."""
        from botocore.config import Config

        return self._session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(
                # We send Content-MD5 ourselves and check the ETag; no extra trailing checksum the
                # server might not know.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
                max_pool_connections=self.connections,
                # The parameters are built here, never from input: checking their types on every call is
                # per-PUT work that can find nothing.
                parameter_validation=False,
            ),
        )

    @cached_property
    def _puts(self) -> SignedPuts:
        """The uploads: the same signature and credentials as the client's, without its per-call cost."""
        credentials = self._session.get_credentials()
        if credentials is None:
            raise ReplicaUnavailable(
                self.name, "no S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
            )
        return SignedPuts(self.endpoint_url, self.region, credentials)

    def _put(
        self, key: str, body: bytes, headers: dict[str, str], query: dict[str, str] | None = None
    ) -> str:
        """PUT ``body`` as ``key``; the ``ETag`` the server answers (the MD5 of what it stored)."""
        try:
            answer = self._puts.put(self.bucket, self._key(key), body, headers, query)
        except (OSError, HTTPException) as exc:
            raise ReplicaUnavailable(self.name, exc) from exc
        if answer.status // 100 == 2:
            return answer.etag
        if answer.code == "BadDigest":
            raise CopyMismatch(self.name, key, "Content-MD5", answer.code)
        raise ReplicaUnavailable(self.name, f"{answer.code}: {answer.message}")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(kwargs.get("Key", "")) from exc
            if code == "BadDigest":
                raise CopyMismatch(self.name, kwargs.get("Key", ""), "Content-MD5", code) from exc
            raise ReplicaUnavailable(self.name, f"{code}: {exc}") from exc
        except BotoCoreError as exc:
            raise ReplicaUnavailable(self.name, exc) from exc

    def put_file(
        self, key: str, src: Path, expect: tuple[str, str] | None = None, *, durable: bool = True
    ) -> None:
        size = src.stat().st_size
        if size > self.part_size:
            self._put_parts(key, src, expect)
            return
        data = src.read_bytes()  # read once: hashed here, signed and sent by the client from memory
        algorithms = ("md5", expect[0]) if expect else ("md5",)
        got = hash_bytes(data, algorithms)
        if expect is not None and got[expect[0]] != expect[1]:
            raise SourceDamaged(key)
        md5 = got["md5"]
        headers = {"Content-MD5": base64.b64encode(bytes.fromhex(md5)).decode()}
        if expect is not None:
            headers[f"x-amz-meta-{expect[0]}"] = expect[1]
        etag = self._put(key, data, headers)
        if etag != md5:
            raise CopyMismatch(self.name, key, md5, etag or "no ETag")

    def _put_parts(self, key: str, src: Path, expect: tuple[str, str] | None) -> None:
        """A big file as a multipart upload: each part sent with its ``Content-MD5`` and accepted only if its
        ``ETag`` is that MD5; the object appears only when the upload is completed — after every part is
        in and the whole file's digest matched ``expect`` — and is accepted only if its ``ETag`` is the MD5
        of the parts' MD5s with their count, which the server computes from the parts it holds. Anything
        failing aborts the upload: nothing of it is left visible."""
        whole = MultiHasher((expect[0],)) if expect else None
        started = self._call(
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=self._key(key),
            Metadata={expect[0]: expect[1]} if expect else {},
        )
        upload = started["UploadId"]
        parts: list[dict[str, Any]] = []
        md5s: list[bytes] = []
        try:
            with open(src, "rb") as f:
                while chunk := f.read(self.part_size):
                    if whole is not None:
                        whole.update(chunk)
                    md5 = hashlib.md5(chunk).digest()
                    number = len(parts) + 1
                    etag = self._put(
                        key,
                        chunk,
                        {"Content-MD5": base64.b64encode(md5).decode()},
                        {"partNumber": str(number), "uploadId": upload},
                    )
                    if etag != md5.hex():
                        raise CopyMismatch(self.name, f"{key} (part {number})", md5.hex(), etag)
                    parts.append({"ETag": f'"{etag}"', "PartNumber": number})
                    md5s.append(md5)
            if whole is not None and expect is not None and whole.hexdigests()[expect[0]] != expect[1]:
                raise SourceDamaged(key)
            answer = self._call(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload)
            raise
        want = f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(parts)}"
        etag = str(answer.get("ETag", "")).strip('"')
        if etag != want:
            raise CopyMismatch(self.name, key, want, etag or "no ETag")

    def list(self, prefix: str = "") -> dict[str, int]:
        base = self._key(prefix.strip("/")) if prefix else self.prefix
        found: dict[str, int] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        skip = len(self.prefix) + 1 if self.prefix else 0
        pages: Iterator[dict[str, Any]] = self._call(
            paginator.paginate, Bucket=self.bucket, Prefix=(base + "/") if base else ""
        )
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"][skip:]] = int(item["Size"])
        except (BotoCoreError, ClientError) as exc:
            raise ReplicaUnavailable(self.name, exc) from exc
        return found

    def open(self, key: str) -> IO[bytes]:
        answer = self._call(self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        body: IO[bytes] = answer["Body"]
        return body

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (the first sync does this)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._call(self.client.create_bucket, Bucket=self.bucket)
        except Exception as exc:
            raise ReplicaUnavailable(self.name, exc) from exc


def parse_target(entry: str, settings: Settings) -> Target:
    """One ``ARCHIVE_REPLICAS`` entry as a target; :class:`BadReplicaTarget` (REP001) names what is wrong."""
    if "://" in entry:
        scheme, _, rest = entry.partition("://")
        if scheme.lower() != "s3":
            raise BadReplicaTarget(variant="scheme", entry=entry)
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise BadReplicaTarget(variant="no_bucket", entry=entry)
        if not settings.s3_endpoint_url:
            raise BadReplicaTarget(variant="no_endpoint", entry=entry)
        problem = endpoint_problem(settings.s3_endpoint_url)
        if problem is not None:
            raise BadReplicaTarget(variant=problem[0], entry=entry, address=problem[1])
        return S3Target(
            bucket,
            prefix,
            settings.s3_endpoint_url,
            settings.s3_region,
            entry,
            connections=max(16, settings.replication_workers + 2),
        )
    path = Path(entry).expanduser()
    if not path.is_absolute():
        raise BadReplicaTarget(variant="relative", entry=entry)
    path = Path(os.path.normpath(path))
    root = settings.ocfl_root.absolute()
    if path == root or root in path.parents or path in root.parents:
        raise BadReplicaTarget(variant="inside_root", entry=entry, root=root)
    return FsTarget(path, entry)


def targets(settings: Settings) -> list[Target]:
    """Every configured replica: the ``ARCHIVE_REPLICAS`` entries, then ``ARCHIVE_REPLICA_ROOT`` (its older
    one-replica form) if set and not already listed. Empty when none is configured."""
    found = [parse_target(entry, settings) for entry in settings.replicas]
    if settings.replica_root is not None:
        legacy = parse_target(str(Path(settings.replica_root).absolute()), settings)
        if not any(t.local_root == legacy.local_root for t in found):
            found.append(legacy)
    return found
