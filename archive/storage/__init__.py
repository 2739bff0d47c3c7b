"""OCFL 1.1 storage: one object per archival record, atomic writes, independent validation.

    store = OcflStore(settings.ocfl_root, settings.staging_dir); store.init()
    b = store.begin_object("urn:pearl-archive:GZ:GZ001-WS·2020-Y-0001")
    b.add_bytes("metadata.json", data)   # or: write to b.content_path(p), then b.add_written(p, ...)
    store.commit(b, message="ingest", user_name="ingest 0.1")   # -> "v1"
    ok, messages = validate_root(store.root)

Layout, digests, atomicity and crash recovery are described in ``archive.storage.ocfl``; the id → path
mapping and the logical-path rules in ``archive.storage.layout``; error codes in ``archive.storage.errors``.
The durable-file helpers (fsync of files, directories and trees; atomic replace; ``flock``) are the
project's only ones: every package uses these.
"""

from archive.storage._fs import (
    acquire_lock,
    fsync_dir,
    fsync_file,
    fsync_tree,
    release_lock,
    replace_atomically,
    sync_filesystem,
    write_durable,
)
from archive.storage.errors import (
    ContentMismatch,
    InvalidDigest,
    InvalidLogicalPath,
    InventoryError,
    NotAnOcflRoot,
    ObjectExists,
    ObjectNotFound,
    PathConflict,
    StagingError,
    StorageError,
    VersionConflict,
)
from archive.storage.layout import object_relpath, validate_logical_path
from archive.storage.ocfl import ContentFile, ObjectBuilder, OcflStore, StagingBatch
from archive.storage.validation import validate_root

__all__ = [  # noqa: RUF022 - the storage API, then the durable-file helpers every package uses
    "ContentFile",
    "ContentMismatch",
    "InvalidDigest",
    "InvalidLogicalPath",
    "InventoryError",
    "NotAnOcflRoot",
    "ObjectBuilder",
    "ObjectExists",
    "ObjectNotFound",
    "OcflStore",
    "PathConflict",
    "StagingBatch",
    "StagingError",
    "StorageError",
    "VersionConflict",
    "object_relpath",
    "validate_logical_path",
    "validate_root",
    "acquire_lock",
    "fsync_dir",
    "fsync_file",
    "fsync_tree",
    "release_lock",
    "replace_atomically",
    "sync_filesystem",
    "write_durable",
]
