"""Recovery errors (codes RBD, texts in ``archive/codes/rebuild.toml``)::

ArchiveError
└── RecoveryError (RBD000)
    ├── HomeNotEmpty (RBD001)        a rebuild or restore would write over an existing catalogue
    ├── NoCatalogueJournal (RBD002)  the storage root carries no catalogue journal to rebuild from
    ├── JournalDamaged (RBD003)      a journal line cannot be read (not the torn last line of a crash)
    ├── BackupFailed (RBD004)        a database backup or restore could not be made (exit 3)
    ├── BadBackup (RBD005)           the file given to restore is not a backup of ours
    └── RecoveryUsage (RBD006)       a recovery command asked for something that cannot be (exit 2)
"""

from __future__ import annotations

from archive.errors import EXIT_UNAVAILABLE, EXIT_USAGE, ArchiveError


class RecoveryError(ArchiveError):
    code = "RBD000"


class HomeNotEmpty(RecoveryError):
    code = "RBD001"


class NoCatalogueJournal(RecoveryError):
    code = "RBD002"


class JournalDamaged(RecoveryError):
    code = "RBD003"


class BackupFailed(RecoveryError):
    code = "RBD004"
    exit_code = EXIT_UNAVAILABLE


class BadBackup(RecoveryError):
    code = "RBD005"


class RecoveryUsage(RecoveryError):
    code = "RBD006"
    exit_code = EXIT_USAGE
