"""Replica errors: stable ``REP…`` codes with Chinese and English messages (``archive/codes/replicas.toml``).

Exception tree::

    ArchiveError
    ├── UsageError
    │   ├── BadReplicaTarget       an ARCHIVE_REPLICAS entry is malformed (REP001, variants)
    │   ├── NoReplicas             ARCHIVE_REPLICAS is empty (REP004)
    │   └── UnknownReplica         no configured replica by that name (REP006)
    ├── Unavailable
    │   └── ServiceUnavailable
    │       └── ReplicaUnavailable a replica cannot be reached now (REP002, exit 3)
    ├── CopyMismatch               a copy read back at the replica differs from the inventory (REP003)
    └── SourceDamaged              the primary's own file does not match its inventory (REP005)
"""

from __future__ import annotations

from typing import Any

from archive.errors import ArchiveError, ServiceUnavailable, UsageError


class BadReplicaTarget(UsageError):
    code = "REP001"


class ReplicaUnavailable(ServiceUnavailable):
    code = "REP002"
    service_name = "replica"

    def __init__(self, target: str, reason: object, **details: Any) -> None:
        super().__init__(service="replica", url=target, reason=reason, target=target, **details)


class CopyMismatch(ArchiveError):
    code = "REP003"

    def __init__(self, target: str, path: str, expected: str, actual: str) -> None:
        super().__init__(target=target, path=path, expected=expected, actual=actual)


class NoReplicas(UsageError):
    code = "REP004"


class SourceDamaged(ArchiveError):
    code = "REP005"

    def __init__(self, path: str) -> None:
        super().__init__(path=path)


class UnknownReplica(UsageError):
    code = "REP006"

    def __init__(self, name: str, known: str) -> None:
        super().__init__(name=name, known=known)
