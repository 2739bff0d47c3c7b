"""Storage errors: :class:`archive.errors.ArchiveError` subclasses, each with a stable code.

Messages (Chinese and English) come from the catalogue, ``archive/codes/storage.toml``; a raise site passes
the parameters, and the catalogue variant of its situation where the class covers several
(``raise PathConflict(variant="is_directory", path=p, version=v)``). Hierarchy (catch at the level you mean)::

    ArchiveError
    └── StorageError (STO000)
        ├── ObjectExists (STO001)            an object with this id is already stored; never overwritten
        ├── InvalidLogicalPath (STO002)      a logical path breaks the OCFL / storage rules
        ├── NotAnOcflRoot (STO003)           the root is not (our kind of) OCFL storage root
        ├── ObjectNotFound (STO004)          no object with this id
        ├── InvalidDigest (STO005)           a digest is malformed, missing or unsupported
        ├── ContentMismatch (STO006)         written content disagrees with the declaration
        ├── PathConflict (STO007)            a logical path clashes in the same version
        ├── VersionConflict (STO008)         the object changed since staging
        ├── StagingError (STO009)            staging misconfigured, or a builder misused
        └── InventoryError (STO010)          an inventory or its sidecar is unreadable or inconsistent
"""

from __future__ import annotations

from typing import Any

from archive.errors import ArchiveError

__all__ = [
    "ContentMismatch",
    "InvalidDigest",
    "InvalidLogicalPath",
    "InventoryError",
    "NotAnOcflRoot",
    "ObjectExists",
    "ObjectNotFound",
    "PathConflict",
    "StagingError",
    "StorageError",
    "VersionConflict",
]


class StorageError(ArchiveError):
    """Base of every storage error."""

    code = "STO000"


class ObjectExists(StorageError):
    code = "STO001"


class InvalidLogicalPath(StorageError):
    code = "STO002"

    def __init__(self, path: str, *, variant: str | None = None, **details: Any) -> None:
        super().__init__(variant=variant, path=path, **details)
        self.path = path


class NotAnOcflRoot(StorageError):
    code = "STO003"


class ObjectNotFound(StorageError):
    code = "STO004"


class InvalidDigest(StorageError):
    code = "STO005"


class ContentMismatch(StorageError):
    code = "STO006"


class PathConflict(StorageError):
    code = "STO007"


class VersionConflict(StorageError):
    code = "STO008"


class StagingError(StorageError):
    code = "STO009"


class InventoryError(StorageError):
    code = "STO010"
