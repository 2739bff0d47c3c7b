"""Where things live: object id → object directory, and which logical paths an object may hold.

Storage hierarchy: OCFL community extension ``0003-hash-and-id-n-tuple-storage-layout`` with
``digestAlgorithm`` sha256, ``tupleSize`` 3, ``numberOfTuples`` 3. The id is hashed (UTF-8, sha256, lower-case
hex), the first nine hex digits give three directory levels, and the object directory itself is the
percent-encoded id (every UTF-8 byte outside ``[A-Za-z0-9_-]`` becomes ``%xx``, lower-case hex; if that is
longer than 100 characters it is cut to 100 and ``-<full digest>`` is appended). Chosen over 0004 because the
object directory still tells a person which record it holds, and because ocfl-py 2.1 (our independent
validator) refuses a root that declares 0004 (E071, unsupported layout).

Logical paths (the caller normalises, we validate and refuse): non-empty ``/``-separated UTF-8, no leading
``/``, no empty, ``.`` or ``..`` segments (so no trailing ``/`` either), no backslash, no control characters,
NFC-normalised, each segment at most 255 bytes in UTF-8 (the file-system limit, since content paths are
``vN/content/<logical path>``). Chinese text and spaces are fine.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

from archive.storage.errors import InvalidLogicalPath

__all__ = [
    "LAYOUT_CONFIG",
    "LAYOUT_DESCRIPTION",
    "LAYOUT_EXTENSION",
    "object_relpath",
    "validate_logical_path",
]

LAYOUT_EXTENSION = "0003-hash-and-id-n-tuple-storage-layout"
LAYOUT_DESCRIPTION = (
    "Extension 0003: Hashed Truncated N-tuple Trees with Object ID Encapsulating Directory "
    "for OCFL Storage Hierarchies"
)
LAYOUT_CONFIG: dict[str, str | int] = {
    "extensionName": LAYOUT_EXTENSION,
    "digestAlgorithm": "sha256",
    "tupleSize": 3,
    "numberOfTuples": 3,
}

_TUPLE_SIZE = 3
_NUMBER_OF_TUPLES = 3
_MAX_ENCAPSULATION = 100
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_MAX_SEGMENT_BYTES = 255


def object_relpath(object_id: str) -> PurePosixPath:
    """Path of the object directory relative to the storage root (extension 0003)."""
    if not object_id:
        raise ValueError("object id must not be empty")
    raw = object_id.encode("utf-8")
    digest = hashlib.sha256(raw).hexdigest()
    tuples = [digest[i * _TUPLE_SIZE : (i + 1) * _TUPLE_SIZE] for i in range(_NUMBER_OF_TUPLES)]
    encoded = "".join(chr(b) if b in _SAFE else f"%{b:02x}" for b in raw)
    if len(encoded) > _MAX_ENCAPSULATION:
        encoded = f"{encoded[:_MAX_ENCAPSULATION]}-{digest}"
    return PurePosixPath(*tuples, encoded)


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def validate_logical_path(path: str) -> str:
    """Return ``path`` unchanged if it is an acceptable logical path, else raise InvalidLogicalPath."""
    if not isinstance(path, str) or not path:
        raise InvalidLogicalPath(str(path), variant="empty")
    if path.startswith("/"):
        raise InvalidLogicalPath(path, variant="absolute")
    if "\\" in path:
        raise InvalidLogicalPath(path, variant="backslash")
    if _CONTROL.search(path):
        raise InvalidLogicalPath(path, variant="control")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidLogicalPath(path, variant="surrogate") from None
    if not unicodedata.is_normalized("NFC", path):
        raise InvalidLogicalPath(path, variant="nfc")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidLogicalPath(path, variant="segment", segment=segment)
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            raise InvalidLogicalPath(path, variant="segment_length", limit=_MAX_SEGMENT_BYTES)
    return path
