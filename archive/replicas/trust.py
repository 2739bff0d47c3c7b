"""Whether an inventory read from a replica may be trusted to repair the primary (or rebuild from).

One place decides. An inventory is trusted when it matches its sidecar, parses, names the object, and the
version seal stored beside it IN THE SAME COPY vouches for it (:func:`archive.sealing.seal_vouches_for`: a
valid signature over the sha512 of exactly these bytes, by one of this node's keys). A root inventory is
vouched for by its head version's seal. The caller also checks it against the catalogue's own digests (it has
the catalogue rows): a consistent rewrite of an inventory and its sidecar passes those, only the signature
tells.

A version without a seal (a home older than the signed versions, or a copy made before they were sealed) is
trusted on the digests alone as before — but only if the primary holds no seal for that version either
(``unsealed_ok``): a seal removed from a replica cannot be used to slip a rewritten inventory past the check.
Such a trust is reported (:attr:`Trusted.sealed` is False; the repair says so in its detail and event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.config import Settings
from archive.replicas.target import Target
from archive.sealing.seals import seal_relpath
from archive.sealing.verify import seal_vouches_for
from archive.storage.inventory import INVENTORY, SIDECAR, parse, sidecar_matches


@dataclass(frozen=True)
class Trusted:
    inventory: dict[str, Any]
    data: bytes  # the inventory's bytes, as checked: write these, never a second read
    sidecar: bytes
    version: str  # the version whose seal vouched (the head, for a root inventory)
    sealed: bool  # False: no seal in this copy nor at the primary; trusted on its digests alone


def trusted_inventory(
    settings: Settings,
    data: bytes,
    sidecar: bytes,
    seal: bytes | None,
    *,
    object_id: str,
    version: str | None = None,
    unsealed_ok: bool = False,
    trusted_keys: set[str] | None = None,
) -> Trusted | None:
    """``data`` as a :class:`Trusted` inventory of ``object_id`` if it may be trusted; None if not.

    ``seal``: the bytes of the seal of ``version`` (for a root inventory, ``version`` None: its head's)
    read from the same copy as ``data``, or None if that copy has none; ``unsealed_ok``: whether a version
    without a seal may be trusted on its digests alone (the primary has no seal for it either)."""
    if not sidecar_matches(data, sidecar):
        return None
    inventory = parse(data)
    if inventory is None or inventory.get("id") != object_id:
        return None
    version = version or str(inventory.get("head", ""))
    if seal is None:
        return Trusted(inventory, data, sidecar, version, sealed=False) if unsealed_ok else None
    try:
        about = json.loads(seal)
        named = about.get("object") == object_id and about.get("version") == version
    except (ValueError, AttributeError):
        return None
    if not named or not seal_vouches_for(settings, seal, data, trusted=trusted_keys):
        return None
    return Trusted(inventory, data, sidecar, version, sealed=True)


def read_trusted_inventory(
    settings: Settings,
    copy: Target,
    object_key: str,
    *,
    object_id: str,
    version: str | None = None,
    primary_dir: Path | None = None,
) -> Trusted | None:
    """Read an inventory (``version``'s, or the root one) with its sidecar and its seal from ``copy`` — all
    three from the same copy, file system or S3 — and decide with :func:`trusted_inventory`. ``object_key``:
    the object's folder relative to the storage root; ``primary_dir``: the object's folder at the primary,
    whose seals decide whether an unsealed version may be trusted (None: it may). FileNotFoundError if the
    copy has no such inventory or sidecar."""
    base = f"{object_key}/{version}/" if version else f"{object_key}/"
    data = copy.read_bytes(base + INVENTORY)
    sidecar = copy.read_bytes(base + SIDECAR)
    which = version
    if which is None:
        parsed = parse(data)
        which = str(parsed.get("head", "")) if parsed else ""
    try:
        seal: bytes | None = copy.read_bytes(f"{object_key}/{seal_relpath(which)}") if which else None
    except FileNotFoundError:
        seal = None
    unsealed_ok = primary_dir is None or not (primary_dir / seal_relpath(which)).is_file()
    return trusted_inventory(
        settings, data, sidecar, seal, object_id=object_id, version=which, unsealed_ok=unsealed_ok
    )
