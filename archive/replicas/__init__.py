"""Replicas: copies of the OCFL storage root on other file systems and S3-compatible object stores.

    targets(settings)                  # the ARCHIVE_REPLICAS entries as FsTarget / S3Target (list/read/write)
    enqueue(session, [{"object_id": oid, "version": "v2", "bytes": n}])   # in the cataloguing transaction
    sync(settings)                     # archive replicas sync: copy what is pending, whole, verified
    status(settings)                   # archive replicas status: versions/bytes behind, RPO now

Replica audits and repairs from a replica run with the fixity audits (``archive audit --replicas``, in
:mod:`preservation.audit`). Errors are ``REP…`` (:mod:`archive.replicas.errors`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.replicas.drain import ReplicaSync, copy_version, sync
    from archive.replicas.errors import (
        BadReplicaTarget,
        CopyMismatch,
        NoReplicas,
        ReplicaUnavailable,
        SourceDamaged,
        UnknownReplica,
    )
    from archive.replicas.outbox import enqueue, outbox_rows
    from archive.replicas.report import ReplicaStatus, status
    from archive.replicas.target import FsTarget, S3Target, Target, targets

# Loaded on first use, as archive.federation does: every `archive` command imports this package's CLI module,
# and SQLAlchemy and boto3 behind these names would otherwise be paid by commands that never replicate.
_HOME = {
    **dict.fromkeys(
        (
            "BadReplicaTarget",
            "CopyMismatch",
            "NoReplicas",
            "ReplicaUnavailable",
            "SourceDamaged",
            "UnknownReplica",
        ),
        "errors",
    ),
    "enqueue": "outbox",
    "outbox_rows": "outbox",
    "ReplicaStatus": "report",
    "status": "report",
    "ReplicaSync": "drain",
    "copy_version": "drain",
    "sync": "drain",
    "FsTarget": "target",
    "S3Target": "target",
    "Target": "target",
    "targets": "target",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BadReplicaTarget",
    "CopyMismatch",
    "FsTarget",
    "NoReplicas",
    "ReplicaStatus",
    "ReplicaSync",
    "ReplicaUnavailable",
    "S3Target",
    "SourceDamaged",
    "Target",
    "UnknownReplica",
    "copy_version",
    "enqueue",
    "outbox_rows",
    "status",
    "sync",
    "targets",
]
