"""Evidence errors: stable ``EVD…`` codes (catalogue: ``archive/codes/evidence.toml``).

Exception tree::

    ArchiveError
    ├── UsageError
    │   ├── OutputExists       the package's file already exists; never overwritten (EVD001)
    │   └── BadTarget          the target is neither ARCHIVE/CODE nor a known sub-action (EVD002)
    └── NotFound               (an unknown check run is archive.checks' UnknownCheckRun, CHK002)
        ├── ObjectMissing      the record's OCFL object is not in the storage root (EVD004)
        └── UnknownAuditRun    no fixity audit run with that id (EVD005)
"""

from __future__ import annotations

from archive.errors import NotFound, UsageError


class OutputExists(UsageError):
    code = "EVD001"


class BadTarget(UsageError):
    code = "EVD002"


class ObjectMissing(NotFound):
    code = "EVD004"


class UnknownAuditRun(NotFound):
    code = "EVD005"
