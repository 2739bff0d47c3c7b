"""The ground floor every other package stands on.

* :mod:`archive.config` — ``Settings`` (env prefix ``ARCHIVE_``) and :func:`get_settings`
* :mod:`archive.models`, :mod:`archive.db` — the catalogue (SQLAlchemy 2 + Alembic; SQLite or PostgreSQL)
* :mod:`archive.storage` — the OCFL 1.1 storage root
* :mod:`archive.access` — who may see what (Archives Law art. 27); :func:`archive.access.is_public`
* :mod:`archive.events` — PREMIS events in a hash-chained, append-only log
* :mod:`archive.journal`, :mod:`archive.home` — crash-safe transfers and recovery
* :mod:`archive.services` — catalogue operations; :mod:`archive.cli` — the ``archive`` command
* :mod:`archive.errors` — the one error tree (``ArchiveError``), every error with a stable code;
  :mod:`archive.codes` — the catalogue of codes and zh/en messages for every package (``archive/codes/*.toml``)

Nothing here imports ``ingest``, ``preservation``, ``search`` or ``access_portal``.
"""
