"""Evidence errors: stable ``EVD…`` codes (catalogue: ``archive/codes/evidence.toml``).

Exception tree::

    ArchiveError
    ├── UsageError
    │   ├── OutputExists       the package's file already exists; never overwritten (EVD001)
    │   └── BadTarget          the target is neither ARCHIVE/CODE nor a known sub-action (EVD002)
    └── NotFound
        ├── UnknownRun         no 四性检测 run with that id (EVD003)
        └── ObjectMissing      the record's OCFL object is not in the storage root (EVD004)
"""

from __future__ import annotations

from archive.errors import NotFound, UsageError


class OutputExists(UsageError):
    code = "EVD001"


class BadTarget(UsageError):
    code = "EVD002"


class UnknownRun(NotFound):
    code = "EVD003"


class ObjectMissing(NotFound):
    code = "EVD004"
