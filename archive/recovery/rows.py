"""Catalogue rows as JSON and back, column by column, and the deterministic dump of a catalogue.

A row is written with every column of its table: times as UTC ISO 8601 with microseconds (``...Z``), dates as
``YYYY-MM-DD``, JSON columns as they are. Reading it back uses the column types, so a row survives the trip
exactly on SQLite and on PostgreSQL.

:func:`dump` is what "the rebuilt catalogue is identical" means: every table the catalogue is made of, rows
sorted by primary key, minus :data:`LOCAL_COLUMNS` (facts about this node's own work, not about the records).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, cast

from sqlalchemy import Date, DateTime, Table, select
from sqlalchemy.orm import Session

from archive.models import Archive, BagFingerprint, ChainHead, Event, File, Fonds, Record, Transfer

#: The tables a rebuild reconstructs, in the order their foreign keys need.
TABLES: dict[str, Table] = {
    m.__tablename__: cast("Table", m.__table__)
    for m in (Archive, Fonds, Transfer, BagFingerprint, Record, File, Event, ChainHead)
}

#: Columns the dump leaves out, and why: each is this node's own bookkeeping, re-made by its own work.
LOCAL_COLUMNS: dict[str, tuple[str, ...]] = {
    # when this node last re-read the file; a fixity audit sets it for many files with one event per run,
    # so the journal does not follow it file by file, and the next audit after a rebuild sets it again
    "files": ("last_fixity_at",),
}

#: Catalogue tables a rebuild does NOT reconstruct (see docs/ocfl-extension-catalogue.md): the outbox (work
#: queued for this node's workers; a rebuild reindexes instead), staff accounts and API tokens (people and
#: secrets, not records: restore them from a database backup or register them again), the federation's peers
#: and node key, and harvested copies of other nodes' records (harvest again).
NOT_REBUILT = (
    "outbox",
    "users",
    "role_grants",
    "api_tokens",
    "peers",
    "federation_nonces",
    "harvest_sources",
    "harvested_records",
)


def encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # what archive.events.timestamp writes, without strftime's cost
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _decoders(table: Table) -> dict[str, Any]:
    """Per column, the function turning its JSON value back into the column's Python value (or None)."""
    found: dict[str, Any] = {}
    for column in table.columns:
        if isinstance(column.type, DateTime):
            found[column.name] = _parse_time
        elif isinstance(column.type, Date):
            found[column.name] = dt.date.fromisoformat
        else:
            found[column.name] = None
    return found


_DECODERS = {id(t): _decoders(t) for t in TABLES.values()}


def decode_value(table: Table, column: str, value: Any) -> Any:
    decoder = (_DECODERS.get(id(table)) or _decoders(table))[column]
    return value if value is None or decoder is None else decoder(value)


def encode_row(table: Table, row: Mapping[Any, Any]) -> dict[str, Any]:
    decoders = _DECODERS.get(id(table)) or _decoders(table)
    body = {name: row[name] for name in decoders}
    for name, decoder in decoders.items():  # only the time and date columns need converting
        if decoder is not None and body[name] is not None:
            body[name] = encode_value(body[name])
    return body


def decode_row(table: Table, data: Mapping[str, Any]) -> dict[str, Any]:
    """The row's values for an INSERT; columns the line does not carry (added to the schema since it was
    written) are left to their defaults, columns it carries that the schema no longer has are dropped."""
    decoders = _DECODERS.get(id(table)) or _decoders(table)
    row: dict[str, Any] = {}
    for name, value in data.items():
        if name in decoders:
            decoder = decoders[name]
            row[name] = value if value is None or decoder is None else decoder(value)
    return row


def iter_dump(session: Session, batch: int = 5000) -> Iterator[str]:
    """The catalogue as sorted JSON lines: ``{"table": …, "row": {…}}``, local columns left out; the same
    catalogue always gives the same lines, whichever database holds it."""
    for name, table in TABLES.items():
        skip = set(LOCAL_COLUMNS.get(name, ()))
        columns = [c for c in table.columns if c.name not in skip]
        keys = list(table.primary_key.columns)
        last: tuple[Any, ...] | None = None
        while True:
            query = select(*columns).order_by(*keys).limit(batch)
            if last is not None:
                from sqlalchemy import tuple_

                query = query.where(tuple_(*keys) > tuple_(*last))
            rows = session.execute(query).mappings().all()
            for row in rows:
                body = {c.name: encode_value(row[c.name]) for c in columns}
                yield json.dumps({"table": name, "row": body}, sort_keys=True, ensure_ascii=False)
            if len(rows) < batch:
                break
            last = tuple(rows[-1][k.name] for k in keys)


def dump_digest(session: Session) -> tuple[str, int]:
    """SHA-256 over :func:`iter_dump` and the number of lines: two catalogues are the same if these are."""
    h = hashlib.sha256()
    n = 0
    for line in iter_dump(session):
        h.update(line.encode() + b"\n")
        n += 1
    return h.hexdigest(), n
