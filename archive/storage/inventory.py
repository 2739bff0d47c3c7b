"""Reading OCFL inventories and their sidecars: the one reader the store and the fixity audit share.

:func:`read_checked` is what the store uses (raises :class:`InventoryError` on any doubt);
:func:`read_file` + :func:`parse` are for a reader that reports what is wrong instead of stopping at the first
problem (the audit): the bytes, the sidecar's value and the actual sha512, and a structural check.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from archive.storage.errors import InventoryError

__all__ = [
    "INVENTORY",
    "OBJECT_NAMASTE",
    "SIDECAR",
    "InventoryFile",
    "fixity_by_path",
    "inventory_bytes",
    "iter_object_dirs",
    "parse",
    "read_checked",
    "read_file",
    "read_id",
    "sidecar_bytes",
    "sidecar_digest",
    "sidecar_matches",
    "version_number",
]

OBJECT_NAMASTE = "0=ocfl_object_1.1"
INVENTORY = "inventory.json"
SIDECAR = "inventory.json.sha512"

VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")


def version_number(name: str) -> int | None:
    """``3`` for ``"v3"``; None for anything that is not a version directory name."""
    m = VERSION_RE.match(name)
    return int(m.group(1)) if m else None


def inventory_bytes(inventory: Mapping[str, Any]) -> bytes:
    return (json.dumps(inventory, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def sidecar_bytes(data: bytes) -> bytes:
    return f"{hashlib.sha512(data).hexdigest()}  {INVENTORY}\n".encode("ascii")


def sidecar_digest(sidecar: bytes) -> str | None:
    """The digest a sidecar records (lower case), or None if it is not ``<digest>  inventory.json``."""
    parts = sidecar.decode("ascii", "replace").split()
    return parts[0].lower() if len(parts) == 2 and parts[1] == INVENTORY else None


def sidecar_matches(data: bytes, sidecar: bytes) -> bool:
    return sidecar_digest(sidecar) == hashlib.sha512(data).hexdigest()


class InventoryFile(NamedTuple):
    data: bytes
    expected: str | None  # the sidecar's sha512; None if the sidecar is missing, unreadable or malformed
    actual: str  # the sha512 of ``data``

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def read_file(directory: Path) -> InventoryFile:
    """``directory/inventory.json`` and what its sidecar says; OSError if the inventory cannot be read."""
    data = (directory / INVENTORY).read_bytes()
    try:
        expected = sidecar_digest((directory / SIDECAR).read_bytes())
    except OSError:
        expected = None
    return InventoryFile(data, expected, hashlib.sha512(data).hexdigest())


def parse(data: bytes) -> dict[str, Any] | None:
    """The inventory if ``data`` is JSON with a ``head`` among its ``versions`` and a ``manifest``; else None."""
    try:
        inv = json.loads(data)
    except ValueError:
        return None
    if not (
        isinstance(inv, dict)
        and isinstance(inv.get("head"), str)
        and isinstance(inv.get("manifest"), dict)
        and isinstance(inv.get("versions"), dict)
        and inv.get("head") in inv["versions"]
    ):
        return None
    return inv


def read_checked(directory: Path, object_id: str | None = None) -> dict[str, Any]:
    """The inventory in ``directory``, checked against its sidecar (and naming ``object_id`` if given)."""
    try:
        data = (directory / INVENTORY).read_bytes()
        sidecar = (directory / SIDECAR).read_bytes()
    except OSError as exc:
        raise InventoryError(path=directory, reason=exc) from None
    if not sidecar_matches(data, sidecar):
        raise InventoryError(variant="sidecar", path=directory / INVENTORY)
    try:
        inventory: dict[str, Any] = json.loads(data)
    except ValueError as exc:
        raise InventoryError(variant="json", path=directory / INVENTORY, reason=exc) from None
    if object_id is not None and inventory.get("id") != object_id:
        raise InventoryError(
            variant="other_object", path=directory, found=inventory.get("id"), object_id=object_id
        )
    return inventory


def read_id(directory: Path) -> str:
    """The object id the inventory in ``directory`` names. The sidecar is not checked: an object's id never
    changes between versions, so a half-replaced inventory still names it."""
    try:
        object_id = json.loads((directory / INVENTORY).read_bytes())["id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InventoryError(path=directory, reason=exc) from None
    if not isinstance(object_id, str):
        raise InventoryError(variant="no_id", path=directory)
    return object_id


def fixity_by_path(inventory: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Content path → {algorithm: value} from the inventory's ``fixity`` block."""
    by_path: dict[str, dict[str, str]] = {}
    for algorithm, block in inventory.get("fixity", {}).items():
        for value, paths in block.items():
            for p in paths:
                by_path.setdefault(p, {})[algorithm] = value
    return by_path


def iter_object_dirs(root: Path) -> Iterator[Path]:
    """Every directory holding an object declaration below the storage root, in sorted order (not below
    ``extensions/``, not inside an object)."""
    top = str(root)
    for dirpath, dirs, files in os.walk(top):
        if dirpath == top:
            dirs[:] = sorted(d for d in dirs if d != "extensions")
            continue
        if OBJECT_NAMASTE in files:
            dirs[:] = []
            yield Path(dirpath)
        else:
            dirs.sort()
