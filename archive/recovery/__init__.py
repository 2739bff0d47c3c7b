"""Recovery: the catalogue carried in the storage root, rebuilt from it alone, database backups, drills.

- :mod:`archive.recovery.journal`  the catalogue journal in ``<root>/extensions/pearl-catalogue-journal/``
- :mod:`archive.recovery.rebuild`  a new catalogue from a storage root (or a file-system replica) alone
- :mod:`archive.recovery.rows`     rows as JSON and the deterministic dump that proves a rebuild identical
- :mod:`archive.recovery.backup`   ``archive backup db`` / ``archive restore db``
- :mod:`archive.recovery.drill`    ``archive drill``: restore a sample, verify, rebuild its rows, compare
"""
