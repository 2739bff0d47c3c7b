"""Storage errors, each with a stable code so callers, logs and reports can refer to it.

Hierarchy (catch at the level you mean)::

    StorageError (STO000)
    ├── ObjectExists (STO001)            an object with this id is already stored; never overwritten
    ├── InvalidLogicalPath (STO002)      a logical path breaks the OCFL / storage rules
    ├── NotAnOcflRoot (STO003)           the root directory is not (our kind of) OCFL storage root
    ├── ObjectNotFound (STO004)          no object with this id
    ├── InvalidDigest (STO005)           a digest is malformed, missing or of an unsupported algorithm
    ├── ContentMismatch (STO006)         written content disagrees with what the caller declared
    ├── PathConflict (STO007)            a logical path clashes with another one in the same version
    ├── VersionConflict (STO008)         the object changed (or has an uncommitted version) since staging
    ├── StagingError (STO009)            staging area misconfigured, or a builder used after commit/abort
    └── InventoryError (STO010)          an inventory or its sidecar is unreadable or inconsistent
"""

from __future__ import annotations

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


class StorageError(Exception):
    """Base of every storage error; ``code`` is stable, ``message`` is for people."""

    code = "STO000"

    def __init__(self, message: str) -> None:
        super().__init__(f"[{self.code}] {message}")
        self.message = message


class ObjectExists(StorageError):
    code = "STO001"


class InvalidLogicalPath(StorageError):
    code = "STO002"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"invalid logical path {path!r}: {reason}")
        self.path = path
        self.reason = reason


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
