"""OCFL 1.1 storage root: one object per archival record, written atomically, never rewritten in place.

Storage root::

    <root>/0=ocfl_1.1                     namaste declaration
    <root>/ocfl_layout.json               {"extension": "0003-hash-and-id-n-tuple-storage-layout", ...}
    <root>/extensions/0003-hash-and-id-n-tuple-storage-layout/config.json
                                          sha256, tupleSize 3, numberOfTuples 3 (see ``layout.py``)
    <root>/7c1/3a9/0bd/urn%3apearl-archive%3aGZ%3a.../     one OCFL object
        0=ocfl_object_1.1
        inventory.json, inventory.json.sha512       always byte-identical to the head version's
        v1/inventory.json, v1/inventory.json.sha512, v1/content/<logical path>
        v2/...                                      one more version per format migration

Inventories use sha512 as the content digest (the spec's recommendation) and carry a ``fixity`` block with
sha256 for every content file, so an auditor can re-check any file with ``sha256sum``. Extra fixity
algorithms (md5, sha1, blake2b-*) are recorded when the store is configured for them or the caller passes
them. sm3 (GB/T 32905) is written only when the caller asks for it: OCFL allows any algorithm in ``fixity``,
but ocfl-py 2.1 reports it as E056b and cannot re-hash it, so such a root validates only with
``validate_root(..., lax_digests=True, check_digests=False)``; better keep sm3 in the catalogue.

Content is deduplicated within an object: one sha512, one content file; a new version stores only content
that no earlier version holds (its state points at the earlier content paths).

Atomicity. ``staging_dir`` must be on the same file system as the root and outside it. Each builder owns a
transaction directory ``<staging>/ocfl-txn-<uuid>/`` (holding an ``flock`` on its ``.lock`` for its lifetime):

* v1: the whole object is built there, every file and directory fsynced, then moved into place with one
  ``os.rename`` — of the object directory, or of its highest missing n-tuple parent with the object already
  inside, so no empty directory is ever left behind. A rename never replaces a non-empty directory, so an
  existing object is never overwritten → ``ObjectExists``.
* vN+1: only the new version directory is built (with its own inventory + sidecar), fsynced, renamed into
  the object, and then the root ``inventory.json`` and its sidecar are replaced, each by writing a temporary
  file in the transaction directory, fsync, rename. Version commits take a per-object lock
  (``<staging>/ocfl-locks/``) so two writers cannot interleave.

Crash recovery (``recover()`` at start-up, or ``recover_object(id)`` for one object): a version directory
newer than the root inventory's head (crash after renaming ``vN+1`` in, before the root inventory changed)
is removed — the object is back at its old state; a root inventory that is already the new head's but whose
sidecar is still the old one is completed from the head version's sidecar — the object is at its new state.
``recover()`` also removes stale transaction directories (their lock is free: the builder's process died),
trash left by an interrupted removal, and empty n-tuple directories left by an interrupted ``remove_object``.
A crashed v1 commit leaves nothing at all in the root, only a transaction directory in the staging area.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from archive.digests import ALGORITHMS as DIGESTS
from archive.digests import OCFL_FIXITY_ALGORITHMS, MultiHasher, hash_file
from archive.storage import _fs
from archive.storage.errors import (
    ContentMismatch,
    InvalidDigest,
    InventoryError,
    NotAnOcflRoot,
    ObjectExists,
    ObjectNotFound,
    PathConflict,
    StagingError,
    StorageError,
    VersionConflict,
)
from archive.storage.inventory import (
    INVENTORY,
    OBJECT_NAMASTE,
    SIDECAR,
    fixity_by_path,
    inventory_bytes,
    iter_object_dirs,
    read_checked,
    read_id,
    sidecar_bytes,
    sidecar_matches,
    version_number,
)
from archive.storage.layout import (
    LAYOUT_CONFIG,
    LAYOUT_DESCRIPTION,
    LAYOUT_EXTENSION,
    object_relpath,
    validate_logical_path,
)

__all__ = ["ContentFile", "ObjectBuilder", "OcflStore", "Sealer", "StagingBatch"]

#: Called with (object id, version, that version's ``inventory.json`` bytes) as each version is committed;
#: returns the files to place in the object's ``extensions/`` area (path relative to the object → bytes).
#: A new object carries them from its first rename; a new version gets them right after it becomes the head.
Sealer = Callable[[str, str, bytes], Mapping[str, bytes]]

SPEC_VERSION = "1.1"
ROOT_NAMASTE = "0=ocfl_1.1"
INVENTORY_TYPE = "https://ocfl.io/1.1/spec/#inventory"
DIGEST_ALGORITHM = "sha512"
CONTENT_DIRECTORY = "content"

# Fixity algorithms we record, with the length of their hex digest: what OCFL 1.1 and extension 0001
# define (and ocfl-py can verify), and sm3 (GB/T 32905) on request, see above.
FIXITY_ALGORITHMS: dict[str, int] = {a: DIGESTS[a].hex_length for a in OCFL_FIXITY_ALGORITHMS}
REQUIRED_FIXITY = ("sha256",)

_TXN_PREFIX = "ocfl-txn-"
_TRASH_PREFIX = "trash-"
_LOCKS_DIR = "ocfl-locks"
_COMMIT_ATTEMPTS = 5


class ContentFile(NamedTuple):
    """One logical file of one version, with where its bytes are and what they must hash to."""

    version: str
    logical_path: str
    path: Path
    sha512: str
    fixity: dict[str, str]


def _check_digest(algorithm: str, value: str) -> str:
    length = FIXITY_ALGORITHMS.get(algorithm)
    if length is None:
        raise InvalidDigest(variant="algorithm", algorithm=algorithm)
    if not isinstance(value, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value):
        raise InvalidDigest(variant="hex", algorithm=algorithm, value=value, length=length)
    return value.lower()


def _txn_root(txn_dir: Path, staging_dir: Path) -> Path:
    """The transaction directory directly under staging that holds ``txn_dir`` (itself, or its batch)."""
    return staging_dir / txn_dir.relative_to(staging_dir).parts[0]


def _format_created(created: datetime | None) -> str:
    when = created or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ObjectBuilder:
    """The next version of one object, being staged. Get one from ``OcflStore.begin_object`` or
    ``begin_version``; finish with ``OcflStore.commit`` or ``OcflStore.abort``.

    The new version's state starts as the head's state (empty for v1). Adding a logical path whose bytes
    the object already holds (same sha512) stores nothing new: the state points at the existing content.
    """

    def __init__(
        self,
        store: OcflStore,
        object_id: str,
        txn_dir: Path,
        lock_fd: int | None,
        prior: dict[str, Any] | None,
        chain_dir: Path | None = None,
    ) -> None:
        self.object_id = object_id
        self._store = store
        self._txn_dir = txn_dir
        self._chain_dir = chain_dir or txn_dir / "chain"
        self._lock_fd: int | None = lock_fd
        self._prior = prior
        head_number = version_number(prior["head"]) if prior else 0
        assert head_number is not None
        self.version = f"v{head_number + 1}"
        if prior is None:
            # In a batch the transaction directory is the object being built (and leaves with it); alone, the
            # object is built in it beside the chain of missing n-tuple directories it moves in with.
            self._object_stage: Path | None = txn_dir if chain_dir else txn_dir / "object"
            self.version_dir = self._object_stage / self.version
        else:
            self._object_stage = None
            self.version_dir = txn_dir / self.version
        self._content_dir = self.version_dir / CONTENT_DIRECTORY
        if chain_dir is None:
            self._content_dir.mkdir(parents=True)
        else:  # txn_dir is new: two mkdirs, not pathlib's failed attempt first
            self.version_dir.mkdir()
            self._content_dir.mkdir()
        self._dirs_made: set[Path] = {self._content_dir}  # folders under content/ known to exist
        # digest -> content paths; content path -> {algorithm: value}; logical path -> digest
        self._manifest: dict[str, list[str]] = {}
        self._fixity: dict[str, dict[str, str]] = {}
        self._state: dict[str, str] = {}
        if prior is not None:
            self._manifest = {d: list(paths) for d, paths in prior["manifest"].items()}
            self._fixity = fixity_by_path(prior)
            for digest, paths in prior["versions"][prior["head"]]["state"].items():
                for p in paths:
                    self._state[p] = digest
        self._dirs: Counter[str] = Counter()  # directory prefixes of the logical paths in the state
        for p in self._state:
            self._count_dirs(p, +1)
        self._new_content: dict[str, str] = {}  # digest -> content path, for content new in this version
        self._added: set[str] = set()  # logical paths added in this version
        self.closed = False

    # -- what callers use -------------------------------------------------------------------------------

    @property
    def state(self) -> dict[str, str]:
        """The new version's state so far: logical path → sha512."""
        return dict(self._state)

    def content_path(self, logical_path: str) -> Path:
        """Where the caller writes the bytes of a new logical path itself (parents created); then call
        ``add_written``. Migrations write their outputs this way; an ingest reserves all its paths at once
        with :meth:`content_paths`."""
        return self.content_paths([logical_path])[logical_path]

    def content_paths(self, logical_paths: Iterable[str]) -> dict[str, Path]:
        """Where the caller writes the bytes of each new logical path itself (logical path → path; parents
        created); then call ``add_written`` for each.

        Each folder is created and listed once instead of every name being looked up: an ingest reserves
        its thousands of paths before its copying threads start, so no lookup waits on a folder lock the
        copying threads hold while creating files (measured: seconds per 10,000 files on ext4)."""
        self._check_open()
        targets: dict[str, Path] = {}
        for logical_path in logical_paths:
            validate_logical_path(logical_path)
            if logical_path in self._added or logical_path in targets:
                raise PathConflict(variant="added", path=logical_path, version=self.version)
            self._check_state_conflict(logical_path)
            targets[logical_path] = self._content_dir / logical_path
        by_folder: dict[Path, list[str]] = {}
        for logical_path, target in targets.items():
            by_folder.setdefault(target.parent, []).append(logical_path)
        for folder, members in by_folder.items():
            try:
                fresh = self._make_folder(folder)
            except (FileExistsError, NotADirectoryError):
                raise PathConflict(variant="parent_is_file", path=members[0], version=self.version) from None
            if fresh:  # created just now: nothing in it to clash with
                continue
            present = set(os.listdir(folder))
            taken = next((m for m in members if targets[m].name in present), None)
            if taken is not None:
                raise PathConflict(variant="content_taken", path=taken, version=self.version)
        return targets

    def _prune(self, folder: Path) -> None:
        """Remove ``folder`` and its parents under content/ while empty (and forget which folders exist)."""
        _fs.prune_empty_dirs(folder, self._content_dir)
        self._dirs_made = {self._content_dir}

    def _make_folder(self, folder: Path) -> bool:
        """Create ``folder`` (under the content directory) and its missing parents, top down, one mkdir each;
        True if ``folder`` itself was created now (so it is empty)."""
        if folder in self._dirs_made:
            return False
        missing = []
        d = folder
        while d not in self._dirs_made:
            missing.append(d)
            d = d.parent
        fresh = False
        for d in reversed(missing):
            try:
                d.mkdir()
                fresh = True
            except FileExistsError:
                if not d.is_dir():
                    raise
                fresh = False
            self._dirs_made.add(d)
        return fresh

    def add_written(
        self,
        logical_path: str,
        *,
        sha512: str,
        size: int,
        fixity: Mapping[str, str] | None = None,
    ) -> None:
        """Register a file the caller wrote at ``content_path(logical_path)``. ``fixity`` must hold sha256;
        the size is checked, the digests are trusted (the caller computed them while writing)."""
        self._check_open()
        validate_logical_path(logical_path)
        target = self._content_dir / logical_path
        try:
            found: os.stat_result | None = os.stat(target, follow_symlinks=False)
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            raise ContentMismatch(variant="nothing_written", path=logical_path, version=self.version)
        actual = found.st_size
        if actual != size:
            raise ContentMismatch(variant="size", path=logical_path, size=size, actual=actual)
        digests = {a: _check_digest(a, v) for a, v in (fixity or {}).items()}
        for required in REQUIRED_FIXITY:
            if required not in digests:
                raise InvalidDigest(variant="fixity_required", path=logical_path, algorithm=required)
        self._register(logical_path, _check_digest(DIGEST_ALGORITHM, sha512), digests, target)

    def add_bytes(self, logical_path: str, data: bytes) -> None:
        """Add a small file (metadata.json, premis.json…) from memory; hashed here."""
        target = self.content_path(logical_path)
        hasher = MultiHasher((DIGEST_ALGORITHM, *self._store.fixity_algorithms))
        hasher.update(data)
        _fs.write_staged(target, data)
        self._register_hashed(logical_path, hasher.hexdigests(), target)

    def add_file(self, logical_path: str, source: Path) -> None:
        """Copy ``source`` in as ``logical_path``, hashing while copying (migrations use this)."""
        target = self.content_path(logical_path)
        _size, digests = hash_file(source, (DIGEST_ALGORITHM, *self._store.fixity_algorithms), copy_to=target)
        self._register_hashed(logical_path, digests, target)

    def remove(self, logical_path: str) -> None:
        """Drop a logical path from the new version's state; earlier versions keep their content."""
        self._check_open()
        if logical_path not in self._state:
            raise PathConflict(variant="not_in_state", path=logical_path, version=self.version)
        digest = self._state.pop(logical_path)
        self._count_dirs(logical_path, -1)
        self._added.discard(logical_path)
        if digest in self._new_content and digest not in self._state.values():
            content = self._new_content.pop(digest)
            del self._manifest[digest]
            self._fixity.pop(content, None)
            staged = self.version_dir.parent / content
            staged.unlink()
            self._prune(staged.parent)

    # -- internals --------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise StagingError(variant="closed", object_id=self.object_id, version=self.version)

    def _count_dirs(self, logical_path: str, delta: int) -> None:
        parts = logical_path.split("/")
        for i in range(1, len(parts)):
            key = "/".join(parts[:i])
            self._dirs[key] += delta
            if self._dirs[key] <= 0:
                del self._dirs[key]

    def _check_state_conflict(self, logical_path: str) -> None:
        if self._dirs.get(logical_path):
            raise PathConflict(variant="is_directory", path=logical_path, version=self.version)
        parts = logical_path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self._state:
                raise PathConflict(variant="inside_file", path=logical_path, prefix=prefix)

    def _register_hashed(self, logical_path: str, digests: dict[str, str], target: Path) -> None:
        sha512 = digests.pop(DIGEST_ALGORITHM)
        self._register(logical_path, sha512, digests, target)

    def _register(self, logical_path: str, sha512: str, fixity: dict[str, str], staged: Path) -> None:
        fixity.pop(DIGEST_ALGORITHM, None)  # already the manifest digest
        if sha512 in self._manifest:
            known = self._fixity.setdefault(self._manifest[sha512][0], {})
            for algorithm, value in fixity.items():
                if algorithm in known and known[algorithm] != value:
                    staged.unlink()
                    self._prune(staged.parent)
                    raise ContentMismatch(variant="fixity", path=logical_path, algorithm=algorithm)
            for algorithm, value in fixity.items():  # a new algorithm's value is worth keeping
                known.setdefault(algorithm, value)
            staged.unlink()
            self._prune(staged.parent)
        else:
            content = f"{self.version}/{CONTENT_DIRECTORY}/{logical_path}"
            self._manifest[sha512] = [content]
            self._fixity[content] = fixity
            self._new_content[sha512] = content
        if logical_path in self._state:  # replacing an inherited path in a new version
            self._count_dirs(logical_path, -1)
        self._state[logical_path] = sha512
        self._count_dirs(logical_path, +1)
        self._added.add(logical_path)

    def _inventory(self, created: str, message: str, user: dict[str, str]) -> dict[str, Any]:
        fixity: dict[str, dict[str, list[str]]] = {}
        for content, values in sorted(self._fixity.items()):
            for algorithm, value in values.items():
                fixity.setdefault(algorithm, {}).setdefault(value, []).append(content)
        state: dict[str, list[str]] = {}
        for logical, digest in sorted(self._state.items()):
            state.setdefault(digest, []).append(logical)
        versions = dict(self._prior["versions"]) if self._prior else {}
        versions[self.version] = {"created": created, "message": message, "user": user, "state": state}
        return {
            "id": self.object_id,
            "type": INVENTORY_TYPE,
            "digestAlgorithm": DIGEST_ALGORITHM,
            "head": self.version,
            "contentDirectory": CONTENT_DIRECTORY,
            "manifest": {d: sorted(p) for d, p in sorted(self._manifest.items())},
            "versions": versions,
            "fixity": {a: dict(sorted(b.items())) for a, b in sorted(fixity.items())},
        }

    def _check_no_strays(self) -> None:
        expected = set(self._new_content.values())
        for dirpath, dirs, files in os.walk(self._content_dir, topdown=False):
            if not files and not dirs and Path(dirpath) != self._content_dir:
                self._prune(Path(dirpath))  # e.g. a content_path() never used
            for name in files:
                rel = Path(dirpath, name).relative_to(self.version_dir.parent).as_posix()
                if rel not in expected:
                    raise StagingError(variant="stray", path=rel)
        if not expected:  # OCFL: no content directory for a version without new content
            shutil.rmtree(self._content_dir)

    def _close(self) -> None:
        self.closed = True
        shutil.rmtree(self._txn_dir, ignore_errors=True)
        if self._lock_fd is not None:
            _fs.release_lock(self._lock_fd)
            self._lock_fd = None


class StagingBatch:
    """One transaction directory and one lock shared by many builders (see ``OcflStore.begin_batch``): an
    ingest stages an object per record, and one descriptor per object would hit the open-file limit."""

    def __init__(self, store: OcflStore, path: Path, lock_fd: int) -> None:
        self.path = path
        self._store = store
        self._lock_fd: int | None = lock_fd
        self._count = 0

    def begin_object(self, object_id: str) -> ObjectBuilder:
        """Stage v1 of a new object in this batch (as ``OcflStore.begin_object``)."""
        if self._lock_fd is None:
            raise StagingError(variant="batch_closed")
        self._count += 1
        return self._store._begin_object(
            object_id, self.path / f"o{self._count}", self.path / f"c{self._count}"
        )

    def close(self) -> None:
        """Remove the batch's staging (builders not committed are aborted with it) and release its lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            _fs.release_lock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> StagingBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OcflStore:
    """An OCFL 1.1 storage root with a staging area on the same file system."""

    def __init__(
        self,
        root: Path,
        staging_dir: Path,
        *,
        fixity_algorithms: Iterable[str] = ("sha256",),
        sealer: Sealer | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.sealer = sealer
        self.staging_dir = Path(staging_dir).absolute()
        self.fixity_algorithms = tuple(dict.fromkeys((*REQUIRED_FIXITY, *fixity_algorithms)))
        for algorithm in self.fixity_algorithms:
            if algorithm not in FIXITY_ALGORITHMS or algorithm == DIGEST_ALGORITHM:
                raise InvalidDigest(variant="fixity_algorithm", algorithm=algorithm)
        self._verified = False

    # -- the root ---------------------------------------------------------------------------------------

    def init(self) -> None:
        """Create the storage root if absent (idempotent); verify it if present."""
        self._prepare_staging()
        if (self.root / ROOT_NAMASTE).exists():
            self._verify_root()
            return
        root_files = {
            ROOT_NAMASTE: b"ocfl_1.1\n",
            "ocfl_layout.json": inventory_bytes(
                {"extension": LAYOUT_EXTENSION, "description": LAYOUT_DESCRIPTION}
            ),
            f"extensions/{LAYOUT_EXTENSION}/config.json": inventory_bytes(LAYOUT_CONFIG),
        }
        if self.root.exists():
            leftovers = set(os.listdir(self.root)) - {"ocfl_layout.json", "extensions"}
            if leftovers:
                raise NotAnOcflRoot(variant="foreign", root=self.root)
            # an empty directory (a mount point), or an init that crashed half-way: finish it, namaste last
            for rel, data in root_files.items():
                (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                _fs.replace_atomically(self.root / rel, data, self.staging_dir)
            _fs.fsync_dir(self.root / "extensions")
        else:
            txn, fd = self._new_txn()
            build = txn / "root"
            for rel, data in root_files.items():
                (build / rel).parent.mkdir(parents=True, exist_ok=True)
                _fs.write_staged(build / rel, data)
            _fs.fsync_tree(build)
            try:
                os.rename(build, self.root)
            finally:
                shutil.rmtree(txn, ignore_errors=True)
                _fs.release_lock(fd)
            _fs.fsync_dir(self.root.parent)
        self._verify_root()

    def _prepare_staging(self) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        root_real = Path(os.path.realpath(self.root))
        staging_real = Path(os.path.realpath(self.staging_dir))
        if (
            staging_real == root_real
            or root_real in staging_real.parents
            or staging_real in root_real.parents
        ):
            raise StagingError(variant="inside_root", staging=self.staging_dir, root=self.root)
        anchor = self.root if self.root.exists() else self.root.parent
        if os.stat(anchor).st_dev != os.stat(self.staging_dir).st_dev:
            raise StagingError(variant="other_device", staging=self.staging_dir, root=self.root)

    def _verify_root(self) -> None:
        namaste = self.root / ROOT_NAMASTE
        try:
            declared = namaste.read_text("utf-8")
            layout = json.loads((self.root / "ocfl_layout.json").read_text("utf-8"))
            config = json.loads(
                (self.root / "extensions" / LAYOUT_EXTENSION / "config.json").read_text("utf-8")
            )
        except (OSError, ValueError) as exc:
            raise NotAnOcflRoot(variant="unusable", root=self.root, reason=exc) from None
        if declared != "ocfl_1.1\n":
            raise NotAnOcflRoot(variant="namaste", path=namaste)
        if not isinstance(layout, dict) or layout.get("extension") != LAYOUT_EXTENSION:
            raise NotAnOcflRoot(variant="layout", root=self.root, layout=layout, expected=LAYOUT_EXTENSION)
        if not isinstance(config, dict) or any(config.get(k) != v for k, v in LAYOUT_CONFIG.items()):
            raise NotAnOcflRoot(
                variant="layout_config", root=self.root, config=config, expected=LAYOUT_CONFIG
            )
        self._verified = True

    def _ready(self) -> None:
        if not self._verified:
            if not (self.root / ROOT_NAMASTE).exists():
                raise NotAnOcflRoot(variant="missing", root=self.root)
            self._prepare_staging()
            self._verify_root()

    # -- objects ----------------------------------------------------------------------------------------

    def object_path(self, object_id: str) -> Path:
        return self.root / object_relpath(object_id)

    def exists(self, object_id: str) -> bool:
        self._ready()
        return (self.object_path(object_id) / OBJECT_NAMASTE).is_file()

    def read_inventory(self, object_id: str) -> dict[str, Any]:
        """The object's root inventory, checked against its sidecar."""
        self._ready()
        path = self.object_path(object_id)
        if not (path / OBJECT_NAMASTE).is_file():
            raise ObjectNotFound(object_id=object_id)
        try:
            return self._read_inventory_at(path, object_id)
        except InventoryError:
            # maybe a version commit is between replacing inventory.json and its sidecar: wait for it
            with _fs.locked(self._object_lock(object_id)):
                return self._read_inventory_at(path, object_id)

    def _read_inventory_at(self, directory: Path, object_id: str | None = None) -> dict[str, Any]:
        return read_checked(directory, object_id)

    def iter_objects(self) -> Iterator[str]:
        """Ids of every committed object (directories without an object declaration are skipped)."""
        self._ready()
        for here in iter_object_dirs(self.root):
            yield read_id(here)

    def content_files(self, object_id: str) -> Iterator[ContentFile]:
        """Every (version, logical path) of the object with its content file, sha512 and fixity values.
        A content file shared by several paths or versions is listed once per path and version."""
        inventory = self.read_inventory(object_id)
        base = self.object_path(object_id)
        by_path = fixity_by_path(inventory)
        for version in sorted(inventory["versions"], key=lambda v: version_number(v) or 0):
            for digest, logical_paths in inventory["versions"][version]["state"].items():
                content = inventory["manifest"][digest][0]
                for logical in logical_paths:
                    yield ContentFile(
                        version, logical, base / content, digest, dict(by_path.get(content, {}))
                    )

    # -- writing ----------------------------------------------------------------------------------------

    def begin_object(self, object_id: str) -> ObjectBuilder:
        """Stage v1 of a new object. Raises ObjectExists if the id is taken (checked again at commit)."""
        return self._begin_object(object_id, None, None)

    def begin_batch(self) -> StagingBatch:
        """A staging transaction for many new objects, holding one lock descriptor whatever their number:
        ``batch.begin_object(id)`` for each, then :meth:`commit_many`; ``batch.close()`` at the end removes
        whatever is left. A crashed batch is swept by :meth:`recover` like any transaction directory."""
        self._ready()
        txn, fd = self._new_txn()
        return StagingBatch(self, txn, fd)

    def _new_txn(self) -> tuple[Path, int]:
        """A new transaction directory with its lock held. Its ``.lock`` is its first entry, so a directory
        without one is dead or being removed (see :meth:`_txn_is_stale`); should recovery sweep the new
        directory before its lock is taken, the lock file is gone and another name is tried."""
        for _ in range(_COMMIT_ATTEMPTS):
            txn = self.staging_dir / f"{_TXN_PREFIX}{uuid.uuid4().hex}"
            txn.mkdir()
            fd = _fs.lock_new(txn / ".lock")
            if fd is not None:
                return txn, fd
        raise StagingError(variant="no_txn_dir", staging=self.staging_dir)

    def _begin_object(self, object_id: str, txn: Path | None, chain: Path | None) -> ObjectBuilder:
        self._ready()
        if not object_id or not isinstance(object_id, str):
            raise StorageError(variant="object_id")
        if self.object_path(object_id).exists():
            raise ObjectExists(object_id=object_id)
        if txn is None:
            return self._new_builder(object_id, None)
        txn.mkdir()
        try:
            return ObjectBuilder(self, object_id, txn, None, None, chain)
        except BaseException:
            shutil.rmtree(txn, ignore_errors=True)
            raise

    def begin_version(self, object_id: str) -> ObjectBuilder:
        """Stage the next version of an existing object; its state starts as the head's."""
        return self._new_builder(object_id, self.read_inventory(object_id))

    def _new_builder(self, object_id: str, prior: dict[str, Any] | None) -> ObjectBuilder:
        txn, fd = self._new_txn()
        try:
            return ObjectBuilder(self, object_id, txn, fd, prior)
        except BaseException:
            _fs.release_lock(fd)
            shutil.rmtree(txn, ignore_errors=True)
            raise

    def start_writeback(self) -> None:
        """Start writing staged content to disk in the background (see :func:`_fs.start_writeback`); call
        it when a big batch of files has been staged and there is other work to do before committing."""
        _fs.start_writeback(self.staging_dir)

    def abort(self, builder: ObjectBuilder) -> None:
        """Throw the staged version away; the root is untouched. Safe to call twice."""
        if not builder.closed:
            builder._close()

    def commit(
        self,
        builder: ObjectBuilder,
        *,
        message: str,
        user_name: str,
        user_address: str | None = None,
        created: datetime | None = None,
    ) -> str:
        """Move the staged version into the root atomically; return its name ("v1", "v2"…).
        ``user_address`` should be a URI (``mailto:…``). The builder is closed either way: after an error
        (ObjectExists, VersionConflict…) its staging is gone and the root is as before."""
        builder._check_open()
        self._ready()
        try:
            return self._commit(builder, message, user_name, user_address, created)
        finally:
            builder._close()

    def commit_many(
        self,
        builders: Sequence[ObjectBuilder],
        *,
        message: str,
        user_name: str,
        created: datetime | None = None,
    ) -> Iterator[ObjectBuilder]:
        """Commit v1 of many new objects; yield each builder once its object is in the root.

        The same guarantees as :meth:`commit` for each object, with the durable writes shared: every object
        is staged in its final shape first, then one :func:`_fs.fsync_tree` per staging directory makes them
        all durable *before* any is published (one ``syncfs`` for a big batch instead of an fsync per file),
        and the directories they were renamed into are synced before this generator finishes. On an error (``ObjectExists``…) the
        generator stops: the objects already yielded stay in the root (the caller undoes them), the rest are
        closed. Every builder is closed when the generator ends."""
        todo = list(builders)
        try:
            self._ready()
            when = _format_created(created)
            user = {"name": user_name}
            planned: set[Path] = set()  # directories that exist, or that an earlier object of ours creates
            # builder, what is renamed (the object, or the top of its chain), where to, where it was built
            staged: list[tuple[ObjectBuilder, Path, Path, Path]] = []
            for builder in todo:
                builder._check_open()
                if builder._object_stage is None:
                    raise StagingError(variant="not_new", object_id=builder.object_id)
                builder._check_no_strays()
                inv_bytes = inventory_bytes(builder._inventory(when, message, user))
                sidecar = sidecar_bytes(inv_bytes)
                stage = builder._object_stage
                _fs.write_staged(builder.version_dir / INVENTORY, inv_bytes)
                _fs.write_staged(builder.version_dir / SIDECAR, sidecar)
                _fs.write_staged(stage / OBJECT_NAMASTE, b"ocfl_object_1.1\n")
                _fs.write_staged(stage / INVENTORY, inv_bytes)
                _fs.write_staged(stage / SIDECAR, sidecar)
                self._stage_seal(builder, inv_bytes, stage)
                target = self.object_path(builder.object_id)
                top = target
                while top.parent != self.root and top.parent not in planned and not top.parent.exists():
                    top = top.parent
                planned.update(target.parents)
                if top != target:  # the missing n-tuple directories move in with the object, as one rename
                    chain_top = builder._chain_dir
                    staged_target = chain_top.joinpath(*target.relative_to(top).parts)
                    d = chain_top
                    d.mkdir()
                    for part in target.relative_to(top).parts[:-1]:
                        d = d / part
                        d.mkdir()
                    os.rename(stage, staged_target)
                    builder._object_stage = staged_target
                    staged.append((builder, chain_top, top, stage))
                else:
                    staged.append((builder, stage, top, stage))
            for txn in dict.fromkeys(_txn_root(b._txn_dir, self.staging_dir) for b in todo):
                _fs.fsync_tree(txn)  # everything durable before anything is published
            parents: list[Path] = []
            for builder, moved, top, built in staged:
                try:
                    os.rename(moved, top)
                except OSError:  # a parent appeared or vanished meanwhile (a concurrent commit, a prune)
                    assert builder._object_stage is not None
                    if builder._object_stage != built:
                        os.rename(builder._object_stage, built)
                        shutil.rmtree(builder._chain_dir)
                        builder._object_stage = built
                    self._commit_new_object(builder)
                    builder._close()
                    yield builder
                    continue
                parents.append(top.parent)
                builder._close()
                yield builder
            _fs.fsync_dirs(parents)
        finally:
            for builder in todo:
                if not builder.closed:
                    builder._close()

    def _commit(
        self,
        builder: ObjectBuilder,
        message: str,
        user_name: str,
        user_address: str | None,
        created: datetime | None,
    ) -> str:
        builder._check_no_strays()
        user = {"name": user_name}
        if user_address is not None:
            user["address"] = user_address
        inventory = builder._inventory(_format_created(created), message, user)
        inv_bytes = inventory_bytes(inventory)
        sidecar = sidecar_bytes(inv_bytes)
        # staged files: each commit path runs fsync_tree over them before publishing
        _fs.write_staged(builder.version_dir / INVENTORY, inv_bytes)
        _fs.write_staged(builder.version_dir / SIDECAR, sidecar)
        if builder._object_stage is not None:
            stage = builder._object_stage
            _fs.write_staged(stage / OBJECT_NAMASTE, b"ocfl_object_1.1\n")
            _fs.write_staged(stage / INVENTORY, inv_bytes)
            _fs.write_staged(stage / SIDECAR, sidecar)
            self._stage_seal(builder, inv_bytes, stage)
            self._commit_new_object(builder)
        else:
            self._commit_new_version(builder, inv_bytes, sidecar)
        return builder.version

    def _commit_new_object(self, builder: ObjectBuilder) -> None:
        stage = builder._object_stage
        assert stage is not None
        target = self.object_path(builder.object_id)
        chain = builder._chain_dir
        for attempt in range(_COMMIT_ATTEMPTS):
            # The missing n-tuple directories travel with the object in the same rename, so a crash can
            # never leave empty directories (which validators reject) in the root.
            top = target
            while top.parent != self.root and not top.parent.exists():
                top = top.parent
            staged_target = chain / target.relative_to(top.parent)
            staged_target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stage, staged_target)
            _fs.fsync_tree(chain)
            try:
                os.rename(chain / top.name, top)
            except OSError as exc:
                os.rename(staged_target, stage)
                shutil.rmtree(chain)
                if top == target and target.exists():
                    raise ObjectExists(object_id=builder.object_id) from exc
                if attempt == _COMMIT_ATTEMPTS - 1:
                    raise
                continue  # a parent appeared or vanished meanwhile (concurrent commit or prune): retry
            _fs.fsync_dir(top.parent)
            return

    def _commit_new_version(self, builder: ObjectBuilder, inv_bytes: bytes, sidecar: bytes) -> None:
        assert builder._prior is not None
        _fs.fsync_tree(builder.version_dir)
        obj = self.object_path(builder.object_id)
        with _fs.locked(self._object_lock(builder.object_id)):
            current = self._read_inventory_at(obj, builder.object_id)  # not read_inventory: lock held
            if current["head"] != builder._prior["head"]:
                raise VersionConflict(
                    variant="moved",
                    object_id=builder.object_id,
                    before=builder._prior["head"],
                    after=current["head"],
                )
            target = obj / builder.version
            if target.exists():
                raise VersionConflict(variant="not_head", path=target)
            os.rename(builder.version_dir, target)
            _fs.fsync_dir(obj)
            # the object now holds the new version; the root inventory makes it the head
            _fs.replace_atomically(obj / INVENTORY, inv_bytes, builder._txn_dir)
            _fs.replace_atomically(obj / SIDECAR, sidecar, builder._txn_dir)
            if self.sealer is not None:
                for rel, data in self.sealer(builder.object_id, builder.version, inv_bytes).items():
                    dest = obj / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    _fs.replace_atomically(dest, data, builder._txn_dir)

    def _stage_seal(self, builder: ObjectBuilder, inv_bytes: bytes, stage: Path) -> None:
        """Put the sealer's files for a new object's v1 into its staged tree (made durable with it)."""
        if self.sealer is None:
            return
        for rel, data in self.sealer(builder.object_id, builder.version, inv_bytes).items():
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _fs.write_staged(dest, data)

    def remove_object(self, object_id: str) -> None:
        """Delete an object entirely. Only for undoing a transfer that failed before it was catalogued:
        committed records are never deleted in normal operation."""
        self._ready()
        path = self.object_path(object_id)
        with _fs.locked(self._object_lock(object_id)):
            if not path.exists():
                raise ObjectNotFound(object_id=object_id)
            _fs.remove_tree(path, self.staging_dir)
            _fs.prune_empty_dirs(path.parent, self.root)

    # -- recovery ---------------------------------------------------------------------------------------

    def _object_lock(self, object_id: str) -> Path:
        return self.staging_dir / _LOCKS_DIR / f"{hashlib.sha256(object_id.encode('utf-8')).hexdigest()}.lock"

    def recover_object(self, object_id: str) -> list[str]:
        """Bring one object back to a committed state after a crash; return what was done (empty if
        nothing was needed)."""
        self._ready()
        obj = self.object_path(object_id)
        if not obj.exists():
            raise ObjectNotFound(object_id=object_id)
        with _fs.locked(self._object_lock(object_id)):
            return self._recover_at(obj)

    def _recover_at(self, obj: Path) -> list[str]:
        actions: list[str] = []
        try:
            inv_bytes = (obj / INVENTORY).read_bytes()
            sidecar = (obj / SIDECAR).read_bytes()
            head = json.loads(inv_bytes)["head"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InventoryError(path=obj, reason=exc) from None
        if not sidecar_matches(inv_bytes, sidecar):
            # crash between replacing inventory.json and its sidecar: the new head is complete, finish it
            head_dir = obj / head
            if (head_dir / INVENTORY).is_file() and (head_dir / INVENTORY).read_bytes() == inv_bytes:
                _fs.replace_atomically(obj / SIDECAR, (head_dir / SIDECAR).read_bytes(), self.staging_dir)
                actions.append(f"{obj.name}: completed root inventory sidecar for {head}")
            else:
                raise InventoryError(variant="root_sidecar", path=obj / INVENTORY)
        head_number = version_number(head) or 0
        for entry in sorted(os.listdir(obj)):
            number = version_number(entry)
            if number is not None and number > head_number:
                _fs.remove_tree(obj / entry, self.staging_dir)
                actions.append(f"{obj.name}: removed uncommitted version {entry} (head is {head})")
        return actions

    def recover(self) -> list[str]:
        """Crash recovery for the whole root (run at start-up): stale staging, trash, empty directories,
        uncommitted versions. Safe beside live writers: it skips transactions whose lock is held."""
        self._ready()
        actions = self.sweep_staging()
        empty: list[Path] = []
        for dirpath, dirs, files in os.walk(self.root):
            here = Path(dirpath)
            if here == self.root:
                dirs[:] = [d for d in dirs if d != "extensions"]
            elif OBJECT_NAMASTE in files:
                dirs[:] = []
                object_id = str(json.loads((here / INVENTORY).read_bytes())["id"])
                with _fs.locked(self._object_lock(object_id)):
                    actions.extend(self._recover_at(here))
            elif not files and not dirs:
                empty.append(here)
        for d in empty:
            _fs.prune_empty_dirs(d, self.root)
            actions.append(f"removed empty directory {d.relative_to(self.root)}")
        return actions

    def sweep_staging(self) -> list[str]:
        """Remove what dead writers left in staging: transaction directories whose lock is free or that
        have no lock (empty ones included), and trash of interrupted removals. Cheap (one listing of the
        staging folder), so every command that opens the home runs it; live writers are left alone."""
        actions: list[str] = []
        if not self.staging_dir.is_dir():
            return actions
        for entry in sorted(os.listdir(self.staging_dir)):
            path = self.staging_dir / entry
            if entry.startswith(_TRASH_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
                actions.append(f"removed leftover trash {entry}")
            elif entry.startswith(_TXN_PREFIX) and self._remove_if_stale(path):
                actions.append(f"removed stale staging {entry}")
        return actions

    @staticmethod
    def _remove_if_stale(txn: Path) -> bool:
        """Remove a transaction directory if no live writer holds it. A writer creates ``.lock`` first and
        holds its lock until the directory is gone, so: no ``.lock`` and empty → ``rmdir`` (which fails if a
        writer has just created its lock; a writer whose directory vanished tries another); no ``.lock`` but
        something in it → a writer died while removing it; ``.lock`` unlocked → its writer died."""
        lock = txn / ".lock"
        if not lock.exists():
            try:
                txn.rmdir()
                return True
            except FileNotFoundError:
                return False
            except OSError:  # not empty
                if lock.exists():
                    return False
                shutil.rmtree(txn, ignore_errors=True)
                return True
        fd = _fs.acquire_lock(lock, blocking=False)
        if fd is None:
            return False
        try:
            shutil.rmtree(txn, ignore_errors=True)
        finally:
            _fs.release_lock(fd)
        return True
