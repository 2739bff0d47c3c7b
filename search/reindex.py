"""Rebuilding the public index from the catalogue with no downtime (``archive reindex``).

Elasticsearch — the pattern of warehouse's ``search/tasks.py``:

1. take the reindex lock (an index ``<alias>-reindex-lock``: creating an index is atomic cluster-wide; a
   lock older than :data:`LOCK_STALE` is taken over); if another reindex holds it, wait and retry until
   ``lock_timeout``, then raise :class:`ReindexLocked`;
2. create a new versioned index ``<alias>-v<UTC timestamp>`` with the current mapping, refreshes off;
3. bulk-load every open record into it (``_bulk`` requests through :meth:`ElasticBackend.index`); on **any**
   error (or interrupt) the half-built index is deleted and the error re-raised — the alias never moved, so
   the old index keeps serving;
4. turn refreshes back on, refresh, then swap the alias in **one** ``_aliases`` request (remove from every
   old index + add to the new one; a concrete index squatting on the alias name is removed in the same
   request). If the alias changed meanwhile (``must_exist`` fails) the swap is re-read and retried;
5. delete the old indices;
6. catch up: records whose ``index`` outbox rows were processed while we loaded (they went to the old index)
   are rebuilt from their current state and written through the alias, so no change made during the
   reindex is lost.

Searches go through the alias throughout, so they never fail and never see an empty or half-built index.

Embedded index (SQLite): the new index is built in a side file next to ``search.sqlite3`` (deleted on any
error; written without journal or fsync, as nothing reads it), then copied over the live database with
SQLite's online backup API in one write transaction (:meth:`EmbeddedBackend.replace_with`). Readers in WAL
mode keep their snapshot until it commits and see the new index after; the file is never renamed under open
connections. The copied index gets a new generation number, so every process's result cache is stale.
A file lock (``search.sqlite3.reindex-lock``) keeps two reindexes apart. Then the same catch-up as above.

Documents come from the catalogue exactly as the indexer builds them (text from the OCFL files, capped by
:mod:`search.documents`); a record whose files cannot be read is indexed with its metadata only and listed in
the report (the indexer will fill in the text when the record next changes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import elasticsearch
from elastic_transport import TransportError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from archive import db
from archive.access import is_public
from archive.config import Settings
from archive.models import Outbox, Record, utcnow
from search.backend import RecordDoc, SearchBackend, SearchError
from search.documents import build_document, doc_id
from search.elastic import ElasticBackend, new_index_name, translate_error
from search.embedded import EmbeddedBackend
from search.indexer import TOPIC, _build

BATCH = 500
LOCK_STALE = dt.timedelta(hours=6)
LOCK_TIMEOUT = 60.0
SWAP_ATTEMPTS = 5
REFRESH_INTERVAL = "1s"


class ReindexLocked(SearchError):
    """Another reindex of the same index is running."""

    code = "SRC003"


@dataclass
class ReindexReport:
    backend: str
    target: str  # the new index (Elasticsearch) or the database file (embedded)
    indexed: int = 0
    caught_up: int = 0
    removed: list[str] = field(default_factory=list)  # old indices deleted
    degraded: list[str] = field(default_factory=list)  # indexed without their file text
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "target": self.target,
            "indexed": self.indexed,
            "caught_up": self.caught_up,
            "removed": self.removed,
            "degraded": self.degraded,
            "seconds": round(self.seconds, 3),
        }


# -- documents from the catalogue ---------------------------------------------------------------------------


def open_documents(settings: Settings, degraded: list[str] | None = None) -> Iterator[RecordDoc]:
    """Every open record's index document, in id order, read in windows of :data:`BATCH` records."""
    last = 0
    while True:
        with db.read_session(settings) as s:
            records = list(
                s.execute(
                    select(Record)
                    .where(Record.access_status == "open", Record.id > last)
                    .order_by(Record.id)
                    .limit(BATCH)
                    .options(
                        selectinload(Record.archive), selectinload(Record.fonds), selectinload(Record.files)
                    )
                ).scalars()
            )
            if not records:
                return
            for record in records:
                last = record.id
                if not is_public(record.access_status):
                    continue
                built = _build(settings, record)
                if isinstance(built, RecordDoc):
                    yield built
                elif isinstance(built, Exception):
                    if degraded is not None:
                        degraded.append(f"{doc_id(record.archive.code, record.archival_code)}: {built}")
                    yield build_document(record, record.files, None)


def _batches(docs: Iterable[RecordDoc], size: int) -> Iterator[list[RecordDoc]]:
    batch: list[RecordDoc] = []
    for d in docs:
        batch.append(d)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def catch_up(settings: Settings, backend: SearchBackend, since: dt.datetime) -> int:
    """Re-apply the current state of every record whose index row was processed since ``since``."""
    with db.read_session(settings) as s:
        rows = s.execute(
            select(Outbox.record_id, Outbox.payload).where(
                Outbox.topic == TOPIC, Outbox.done_at.is_not(None), Outbox.done_at >= since
            )
        ).all()
    record_ids = {r for r, _ in rows if r is not None}
    gone = {str(p.get("doc_id")) for r, p in rows if r is None and p and p.get("doc_id")}
    if not record_ids and not gone:
        return 0
    to_index: list[RecordDoc] = []
    to_delete: set[str] = set(gone)
    with db.read_session(settings) as s:
        records = s.execute(
            select(Record)
            .where(Record.id.in_(record_ids))
            .options(selectinload(Record.archive), selectinload(Record.fonds), selectinload(Record.files))
        ).scalars()
        for record in records:
            built = _build(settings, record)
            if isinstance(built, RecordDoc):
                to_index.append(built)
            elif isinstance(built, str):
                to_delete.add(built)
            else:
                to_index.append(build_document(record, record.files, None))
    if to_delete:
        backend.delete(sorted(to_delete))
    for batch in _batches(to_index, BATCH):
        backend.index(batch)
    return len(to_index) + len(to_delete)


# -- entry point ------------------------------------------------------------------------------------------


def reindex(
    settings: Settings | None,
    backend: SearchBackend,
    *,
    docs: Iterable[RecordDoc] | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
    on_progress: Callable[[int], None] | None = None,
) -> ReindexReport:
    """Rebuild ``backend``'s index from the catalogue of ``settings`` (or from ``docs``) with no downtime.

    Without ``settings`` (tests, benchmarks) ``docs`` must be given and there is no catch-up.
    """
    if docs is None and settings is None:
        raise ValueError("reindex needs the settings of a catalogue or the documents")
    started = utcnow()
    clock = time.monotonic()
    degraded: list[str] = []
    source = docs if docs is not None else open_documents(settings, degraded)  # type: ignore[arg-type]
    if isinstance(backend, ElasticBackend):
        report = _reindex_elastic(backend, source, lock_timeout, on_progress)
    elif isinstance(backend, EmbeddedBackend):
        report = _reindex_embedded(backend, source, lock_timeout, on_progress)
    else:
        raise TypeError(f"no reindex for {type(backend).__name__}")
    report.degraded = degraded
    if settings is not None:
        report.caught_up = catch_up(settings, backend, started)
    report.seconds = time.monotonic() - clock
    return report


def _load(
    write: Callable[[list[RecordDoc]], int],
    docs: Iterable[RecordDoc],
    on_progress: Callable[[int], None] | None,
) -> int:
    n = 0
    for batch in _batches(docs, BATCH):
        n += write(batch)
        if on_progress:
            on_progress(n)
    return n


# -- Elasticsearch ----------------------------------------------------------------------------------------


def _lock_name(alias: str) -> str:
    return f"{alias}-reindex-lock"


@contextlib.contextmanager
def elastic_lock(backend: ElasticBackend, timeout: float) -> Iterator[None]:
    client = backend.client
    name = _lock_name(backend.alias)
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            client.indices.create(
                index=name,
                settings={"number_of_shards": 1, "number_of_replicas": 0},
                mappings={"_meta": {"owner": f"{os.uname().nodename}:{os.getpid()}"}},
            )
            break
        except elasticsearch.BadRequestError as exc:
            if "resource_already_exists_exception" not in str(exc):
                raise translate_error(exc, f"taking the reindex lock {name}", backend.url) from exc
        except (TransportError, elasticsearch.ApiError) as exc:
            raise translate_error(exc, f"taking the reindex lock {name}", backend.url) from exc
        if _lock_is_stale(client, name):
            with contextlib.suppress(elasticsearch.NotFoundError):
                client.indices.delete(index=name)
            continue
        if time.monotonic() > deadline:
            raise ReindexLocked(lock=name)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    try:
        yield
    finally:
        with contextlib.suppress(elasticsearch.NotFoundError, TransportError):
            client.indices.delete(index=name)


def _lock_is_stale(client: elasticsearch.Elasticsearch, name: str) -> bool:
    try:
        got = client.indices.get_settings(index=name, name="index.creation_date")
    except elasticsearch.NotFoundError:
        return True
    created_ms = int(next(iter(got.body.values()))["settings"]["index"]["creation_date"])
    age = time.time() - created_ms / 1000
    return age > LOCK_STALE.total_seconds()


def swap_alias(client: elasticsearch.Elasticsearch, alias: str, new: str) -> list[str]:
    """Point ``alias`` at ``new`` only, atomically; returns the indices it pointed at before."""
    for attempt in range(SWAP_ATTEMPTS):
        try:
            old = sorted(client.indices.get_alias(name=alias).body)
        except elasticsearch.NotFoundError:
            old = []
        actions: list[dict[str, Any]] = [
            {"remove": {"index": i, "alias": alias, "must_exist": True}} for i in old if i != new
        ]
        if not old and client.indices.exists(index=alias):
            actions.append({"remove_index": {"index": alias}})  # a concrete index squatting on the name
            old = [alias]
        actions.append({"add": {"index": new, "alias": alias, "is_write_index": True}})
        try:
            client.indices.update_aliases(actions=actions)
            return [i for i in old if i != new]
        except (elasticsearch.NotFoundError, elasticsearch.ConflictError, elasticsearch.BadRequestError):
            if attempt == SWAP_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))  # the alias moved under us: read it again
    raise AssertionError("unreachable")


def _reindex_elastic(
    backend: ElasticBackend,
    docs: Iterable[RecordDoc],
    lock_timeout: float,
    on_progress: Callable[[int], None] | None,
) -> ReindexReport:
    client = backend.client
    with elastic_lock(backend, lock_timeout):
        new = new_index_name(backend.alias)
        backend.create_index(new, bulk_load=True)
        report = ReindexReport(backend.name, new)
        try:
            report.indexed = _load(lambda b: backend.index(b, into=new), docs, on_progress)
            client.indices.put_settings(index=new, settings={"index": {"refresh_interval": REFRESH_INTERVAL}})
            client.indices.refresh(index=new)
            old = swap_alias(client, backend.alias, new)
        except BaseException:
            with contextlib.suppress(Exception):
                client.indices.delete(index=new)
            raise
        for name in old:
            try:
                client.indices.delete(index=name)
                report.removed.append(name)
            except (TransportError, elasticsearch.ApiError):
                pass  # left for the next reindex; the alias no longer points at it
    return report


# -- embedded ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(path, "a+b") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise ReindexLocked(lock=path) from exc
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _reindex_embedded(
    backend: EmbeddedBackend,
    docs: Iterable[RecordDoc],
    lock_timeout: float,
    on_progress: Callable[[int], None] | None,
) -> ReindexReport:
    live = backend.path
    with file_lock(live.with_name(live.name + ".reindex-lock"), lock_timeout):
        fresh = EmbeddedBackend(live.with_name(f"{live.name}.rebuild-{os.getpid()}"), durable=False)
        fresh.remove_files()
        report = ReindexReport(backend.name, str(live))
        try:
            fresh.ensure_ready()
            report.indexed = _load(fresh.index, docs, on_progress)
            fresh.close()
            backend.replace_with(fresh.path)
        finally:
            fresh.remove_files()
    return report
