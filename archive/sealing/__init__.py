"""Signed, timestamped evidence: every committed OCFL version sealed, the event chain anchored.

    store_for(settings)                     # its sealer signs each version's inventory digest at commit
    enqueue(session, take_sealed(store))    # in the catalogue transaction: the timestamp outbox
    sync(settings)                          # archive seals sync: signature events, RFC 3161 tokens
    status(settings)                        # archive seals status: versions without a token, oldest age
    anchor_chain(settings) / check_anchor   # the event chain's head, signed, outside the database
    verify_record(settings, "GZ/CODE")      # archive verify: fixity, signature, token of every version
    seal_vouches_for(settings, seal, inv)   # a version's seal signed exactly these inventory bytes, our key
    renew_evidence(settings)                # Merkle root over all versions' evidence, timestamped

Extension formats: ``docs/ocfl-extension-seals.md``; algorithms, TSA and trust store: ``docs/signatures.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.sealing.anchors import anchor_chain, check_anchor
    from archive.sealing.evidence import renew_evidence
    from archive.sealing.outbox import enqueue, status, sync
    from archive.sealing.seals import VersionSealer, take_sealed
    from archive.sealing.verify import seal_vouches_for, verify_object, verify_object_at, verify_record

_HOME = {
    "anchor_chain": "anchors",
    "check_anchor": "anchors",
    "renew_evidence": "evidence",
    "enqueue": "outbox",
    "status": "outbox",
    "sync": "outbox",
    "VersionSealer": "seals",
    "take_sealed": "seals",
    "seal_vouches_for": "verify",
    "verify_object": "verify",
    "verify_object_at": "verify",
    "verify_record": "verify",
}
__all__ = [
    "VersionSealer",
    "anchor_chain",
    "check_anchor",
    "enqueue",
    "renew_evidence",
    "seal_vouches_for",
    "status",
    "sync",
    "take_sealed",
    "verify_object",
    "verify_object_at",
    "verify_record",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"archive.sealing.{_HOME[name]}"), name)
    raise AttributeError(name)
