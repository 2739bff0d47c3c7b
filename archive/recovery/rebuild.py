"""Rebuild the catalogue from an OCFL storage root (or a file-system replica of one) alone.

The root's catalogue journal (:mod:`archive.recovery.journal`) is read once, line by line, and its rows are
written into a new home's empty catalogue in batches, a later line for the same row replacing the earlier
one — streaming, so memory stays bounded whatever the size of the root. Row ids are kept: events keep their
places in the hash chain, so ``archive events verify`` checks the rebuilt chain exactly as it checked the
old one. The bag fingerprints are re-derived from the stored transfers; the chain head from the last event.
The public search index is rebuilt afterwards by the caller (``archive rebuild``, in ``search/cli.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite

from archive import db
from archive.config import Settings
from archive.recovery.errors import HomeNotEmpty, NoCatalogueJournal
from archive.recovery.journal import EXTENSION, read_lines, segments
from archive.recovery.rows import TABLES, decode_row

#: Journal lines written per database round trip.
BATCH = 5000
_KINDS = {
    "archive": "archives",
    "fonds": "fonds",
    "transfer": "transfers",
    "record": "records",
    "event": "events",
}
_ORDER = ("archives", "fonds", "transfers", "records", "files", "events")


@dataclass
class RebuildReport:
    source: str
    home: str
    rows: dict[str, int] = field(default_factory=dict)
    lines: int = 0
    seconds: float = 0.0
    indexed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "source": self.source,
            "home": self.home,
            "rows": self.rows,
            "journal_lines": self.lines,
            "seconds": round(self.seconds, 3),
            "indexed": self.indexed,
        }


def settings_for_new_home(settings: Settings, into: Path, storage: Path | None) -> Settings:
    """The settings of the home a rebuild writes: ``into`` with its own SQLite catalogue, reading the given
    storage root (default: the current home's) in place; search and worker settings stay as configured."""
    root = (storage or settings.ocfl_root).expanduser().resolve()
    values = settings.model_dump()
    values.update(home=into.expanduser().resolve(), storage_root=root, database_url=None)
    return type(settings)(**values)  # not model_copy: the derived paths are cached on the instance


def check_empty_home(target: Settings) -> None:
    home = target.home_dir
    if home.exists():
        found = sorted(p.name for p in home.iterdir())
        if found:
            raise HomeNotEmpty(path=home, found=", ".join(found[:5]))
    if target.database_url is not None and inspect(db.get_engine(target)).get_table_names():
        raise HomeNotEmpty(path=target.database_url, found="tables")


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    keys = {c.name for c in table.primary_key.columns}
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=sorted(keys), set_=updates), rows)


class _Writer:
    """Pending rows per table (by primary key, the last line winning), written in foreign-key order."""

    def __init__(self, conn: Connection, report: RebuildReport) -> None:
        self.conn = conn
        self.report = report
        self.pending: dict[str, dict[Any, dict[str, Any]]] = {name: {} for name in _ORDER}
        self.count = 0

    def add(self, table: str, data: dict[str, Any]) -> None:
        row = decode_row(TABLES[table], data)
        self.pending[table][row["id"]] = row
        self.count += 1
        if self.count >= BATCH:
            self.flush()

    def flush(self) -> None:
        with self.conn.begin():
            for name in _ORDER:
                rows = self.pending[name]
                if rows:
                    _upsert(self.conn, TABLES[name], [rows[k] for k in sorted(rows)])
                    self.report.rows[name] = self.report.rows.get(name, 0) + len(rows)
                    rows.clear()
        self.count = 0


def rebuild_catalogue(
    target: Settings,
    *,
    lines: Iterable[dict[str, Any]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """Create the home ``target`` and fill its catalogue from ``target.ocfl_root``'s journal (or from the
    given ``lines``, a drill's selection). Refuses a home that already holds anything (:class:`HomeNotEmpty`)."""
    from archive.home import init_home

    started = time.perf_counter()
    root = target.ocfl_root
    if lines is None:
        if not segments(root):
            raise NoCatalogueJournal(root=root, extension=EXTENSION)
        lines = read_lines(root)
    check_empty_home(target)
    init_home(target)
    report = RebuildReport(str(root), str(target.home_dir))
    with db.get_engine(target).connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # no fsync per batch: a rebuild that dies is started again into a new home
            conn.connection.driver_connection.execute("PRAGMA synchronous = OFF")  # type: ignore[union-attr]
        writer = _Writer(conn, report)
        for n, line in enumerate(lines, 1):
            kind = line.get("t")
            if kind == "record":
                writer.add("records", line["row"])
                for f in line.get("files", []):
                    writer.add("files", f)
            elif kind in _KINDS:
                writer.add(_KINDS[kind], line["row"])
            report.lines = n
            if progress is not None and n % 10_000 == 0:
                progress(n)
        writer.flush()
        _finish(conn)
        if sqlite:  # now durable: the checkpoint writes and syncs the database file
            conn.connection.driver_connection.execute("PRAGMA synchronous = FULL")  # type: ignore[union-attr]
            conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    report.seconds = time.perf_counter() - started
    return report


def _finish(conn: Connection) -> None:
    """The rows the journal does not carry because they follow from the others."""
    transfers, fingerprints = TABLES["transfers"], TABLES["bag_fingerprints"]
    events, head = TABLES["events"], TABLES["chain_head"]
    with conn.begin():
        conn.execute(
            insert(fingerprints).from_select(
                ["fingerprint", "transfer_id"],
                select(transfers.c.fingerprint, transfers.c.id).where(
                    transfers.c.status == "stored", transfers.c.fingerprint.is_not(None)
                ),
            )
        )
        last = conn.execute(select(func.max(events.c.id))).scalar_one_or_none()
        if last is not None:
            last_hash = conn.execute(select(events.c.hash).where(events.c.id == last)).scalar_one()
            conn.execute(insert(head).values(id=1, last_event_id=last, last_hash=last_hash))
        if conn.dialect.name == "postgresql":  # ids were given: move each sequence past them
            for name in _ORDER:
                table = TABLES[name]
                if "id" in table.c and str(table.c.id.type) in ("INTEGER", "BIGINT"):
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
                    )
