"""``archive backup db OUT`` and ``archive restore db IN``: the catalogue database, for a quicker recovery
than a rebuild from storage.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot while the node
runs (readers and writers go on; pages changed meanwhile are copied again). PostgreSQL: ``pg_dump`` in its
custom format (a consistent snapshot too), restored with ``pg_restore``. The password travels in
``PGPASSWORD``, never on a command line. A restore refuses a catalogue that already holds tables
(:class:`HomeNotEmpty`) and a file of the other kind or of no kind (:class:`BadBackup`).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from archive import db
from archive.config import Settings
from archive.recovery.errors import BackupFailed, BadBackup, HomeNotEmpty

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"
#: Pages copied per step of the SQLite online backup (other connections may write between steps).
PAGES_PER_STEP = 4096


def _sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.db_url).database
    assert database is not None
    return Path(database)


def _pg_command(settings: Settings, tool: str, *args: str) -> tuple[list[str], dict[str, str]]:
    url = make_url(settings.db_url)
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return [tool, *args, f"--dbname={conninfo}"], env


def _run(command: list[str], env: dict[str, str], timeout: float) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BackupFailed(tool=command[0], reason="not installed (Debian: postgresql-client)") from None
    except subprocess.TimeoutExpired:
        raise BackupFailed(tool=command[0], reason=f"took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        raise BackupFailed(tool=command[0], reason=done.stderr.strip()[-2000:])


def backup_db(settings: Settings, out: Path, *, timeout: float = 24 * 3600) -> dict[str, Any]:
    """Write a consistent copy of the catalogue database to ``out`` (written beside it, then renamed)."""
    out = out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if settings.db_url.startswith("sqlite"):
        kind = "sqlite"
        source = sqlite3.connect(_sqlite_path(settings), timeout=db.SQLITE_BUSY_MS / 1000)
        try:
            partial.unlink(missing_ok=True)
            target = sqlite3.connect(partial)
            try:
                source.backup(target, pages=PAGES_PER_STEP)
            finally:
                target.close()
        finally:
            source.close()
    else:
        kind = "postgresql"
        command, env = _pg_command(settings, "pg_dump", "--format=custom", f"--file={partial}")
        _run(command, env, timeout)
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, out)
    return {"ok": True, "kind": kind, "file": str(out), "bytes": out.stat().st_size}


def restore_db(settings: Settings, source: Path, *, timeout: float = 24 * 3600) -> dict[str, Any]:
    """Put a backup made by :func:`backup_db` back as the catalogue of ``settings`` (which must be empty:
    a lost database, or a new server); the schema is then brought up to date as ``archive init`` does."""
    source = source.expanduser().resolve()
    try:
        with open(source, "rb") as f:
            magic = f.read(16)
    except OSError as exc:
        raise BadBackup(path=source, reason=exc) from None
    sqlite_home = settings.db_url.startswith("sqlite")
    if sqlite_home and magic != SQLITE_MAGIC:
        raise BadBackup(path=source, reason="not an SQLite database (the catalogue is SQLite)")
    if not sqlite_home and not magic.startswith(PG_MAGIC):
        raise BadBackup(path=source, reason="not a pg_dump custom-format file (the catalogue is PostgreSQL)")
    if sqlite_home:
        target = _sqlite_path(settings)
        if target.exists() and target.stat().st_size > 0:
            raise HomeNotEmpty(path=target, found="catalogue.sqlite3")
        target.parent.mkdir(parents=True, exist_ok=True)
        db.dispose_engines()
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst, pages=PAGES_PER_STEP)
            finally:
                dst.close()
        finally:
            src.close()
    else:
        if inspect(db.get_engine(settings)).get_table_names():
            raise HomeNotEmpty(path=make_url(settings.db_url).render_as_string(), found="tables")
        command, env = _pg_command(settings, "pg_restore", "--no-owner", "--exit-on-error", str(source))
        _run(command, env, timeout)
        db.dispose_engines()
    from archive.home import init_home

    init_home(settings)
    return {"ok": True, "kind": "sqlite" if sqlite_home else "postgresql", "file": str(source)}
