"""Errors of signed, timestamped versions (codes ``SIG…``, catalogue ``archive/codes/sealing.toml``).

Exception tree::

    ArchiveError
    ├── UsageError
    │   ├── KeyUnusable          the signing key cannot be read or made (SIG001)
    │   ├── NoTsa                ARCHIVE_TSA_URL is not set (SIG005)
    │   └── BadTrustStore        ARCHIVE_TSA_TRUST cannot be read (SIG006)
    ├── Unavailable
    │   └── TsaUnavailable       the TSA cannot be reached; the outbox keeps the request (SIG002, exit 3)
    ├── TsaRejected              the TSA answered, but not with a token for our digest (SIG003)
    └── VerificationFailed       ``archive verify`` found problems (SIG004; each problem SIG010–SIG018)
"""

from __future__ import annotations

from typing import Any

from archive.errors import ArchiveError, Unavailable, UsageError


class KeyUnusable(UsageError):
    code = "SIG001"


class TsaUnavailable(Unavailable):
    code = "SIG002"


class TsaRejected(ArchiveError):
    code = "SIG003"


class VerificationFailed(ArchiveError):
    code = "SIG004"

    def __init__(self, ref: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(ref=ref, count=len(problems))
        self.problems = problems


class NoTsa(UsageError):
    code = "SIG005"


class BadTrustStore(UsageError):
    code = "SIG006"
