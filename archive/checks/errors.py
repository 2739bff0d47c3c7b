"""Errors of ``archive check`` (codes CHK…, texts in ``archive/codes/checks.toml``)::

ArchiveError
├── CheckError            CHK000
├── NotFound
│   ├── UnknownCheckRun   CHK002  no run with that id
│   └── NoReceiptReport   CHK003  the transfer has no receipt report
└── UsageError
    ├── NotManualItem     CHK004  record-manual for an automatic item
    ├── BadCycle          CHK005  --cycle other than full / sample
    ├── NothingToCheck    CHK006  neither --cycle, --transfer nor --run
    └── BadCheckOption    CHK007  --fraction or --result out of range
"""

from __future__ import annotations

from archive.errors import ArchiveError, NotFound, UsageError


class CheckError(ArchiveError):
    code = "CHK000"


class UnknownCheckRun(NotFound):
    code = "CHK002"


class NoReceiptReport(NotFound):
    code = "CHK003"


class NotManualItem(UsageError):
    code = "CHK004"


class BadCycle(UsageError):
    code = "CHK005"


class NothingToCheck(UsageError):
    code = "CHK006"


class BadCheckOption(UsageError):
    code = "CHK007"
