"""Whether an inventory read from a replica may be trusted to repair the primary (or rebuild from).

One function, so that the signed inventories (the node's signature over each version's inventory digest,
with its RFC 3161 timestamp) only have to be checked here when they land: until then an inventory is
trusted when it matches its sidecar, parses, names the object, and agrees with the catalogue's own digests
(checked by the caller, who has the catalogue rows).
"""

from __future__ import annotations

from typing import Any

from archive.storage.inventory import parse, sidecar_matches


def trusted_inventory(data: bytes, sidecar: bytes, *, object_id: str) -> dict[str, Any] | None:
    """The parsed inventory if ``data`` is trustworthy for ``object_id``; None if not.

    Seam for signed inventories: verify the signature (and timestamp) stored beside the inventory here.
    """
    if not sidecar_matches(data, sidecar):
        return None
    inventory = parse(data)
    if inventory is None or inventory.get("id") != object_id:
        return None
    return inventory
