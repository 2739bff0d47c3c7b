"""The harvested regional catalogue: peers' open records (metadata, no files) fetched over OAI-PMH and kept
apart from this node's own records, so that a peer that cannot answer a regional query is still found.

    add_source(settings, "http://gz-node:8000")        # archive harvest add URL [--set SPEC]
    run(settings)                                       # archive harvest run [--full]; hourly on the beat
    catalogue_search(settings, "http://gz-node:8000", SearchQuery(q="广州"))

Choices:

- **Client.** Our own, small: httpx + lxml, one page per request, ``ListRecords`` only (a list of records
  is all the copy needs). The native ``pearl_archive`` format is asked for when the peer offers it (all
  fields of the record), else ``oai_dc`` (mapped: title, creator, subject → keywords, description, date,
  the first ``ARCHIVE/档号`` identifier). ``oaipmh-scythe`` stays a test-only harvester that checks the
  provider from outside.
- **Incremental by datestamp.** ``from`` is the peer's ``responseDate`` at the start of the last successful
  harvest (so a record changed while a harvest ran is fetched again next time, never lost); ``--full``
  harvests everything and then drops what the peer no longer lists. Deleted records
  (``status="deleted"``, the provider's ``deletedRecord=persistent``) leave the copy at the next harvest.
  A failed harvest changes nothing of the next ``from``; the rows of the pages it stored are kept (each
  page is one transaction, and applying a page twice is harmless).
- **A full harvest rebuilds the copy's index** rather than updating it: the pages go into a side file
  (``source-N.sqlite3.full-PID``) written without journal or fsync — it is rebuildable from the origin, and
  nothing reads it — which replaces the index in one transaction at the end (SQLite's backup API, as
  ``archive reindex`` does). A full harvest that fails or dies half-way leaves the index as it was and its
  side file is thrown away (if the process died, the next full harvest of that source removes the side
  files whose process is gone). Pages are fetched and parsed
  while two worker threads store the ones before, rows and index (up to :data:`DEPTH` pages ahead).
- **Where the copy lives.** The rows in the catalogue database (``harvested_records``, with the origin and
  the harvest time of each record), and one embedded search index (SQLite FTS5, the same backend as the
  node's own default index) per origin under ``$ARCHIVE_HOME/harvest/`` — never in the node's own index,
  whichever backend that is, so the node's own search never returns a peer's records.
- **One harvest of a source at a time**: an exclusive ``flock`` on ``harvest/source-N.lock`` (the files two
  runs would both rewrite live in the home, whichever database the catalogue is on); a second run finds it
  held and reports ``busy`` without touching anything (``archive harvest run`` exits 0 for it: the other
  run does the work). The kernel releases a dead process's lock. Homes shared by several hosts need a file
  system whose ``flock`` works across them (local disks, NFSv4).
- **Origins.** A source is named by its node URL; ``harvest add`` takes the node URL or its ``…/oai``
  endpoint and keeps both (``origin_url`` without a trailing slash or ``/oai``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import socket
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, urlsplit

import httpx
from lxml import etree
from sqlalchemy import Table, delete, func, insert, select

from archive import db
from archive.config import Settings
from archive.errors import BadArgument, HarvestError, HarvestSourceExists, UnknownHarvestSource
from archive.models import HarvestedRecord, HarvestSource, utcnow
from search.backend import RecordDoc, SearchQuery
from search.embedded import EmbeddedBackend

log = logging.getLogger(__name__)

OAI = "{http://www.openarchives.org/OAI/2.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"
PA = "{urn:pearl-archive:oai:record:1}"
NATIVE = "pearl_archive"
_LEVELS = ("province", "city", "county")
_DATE = re.compile(r"^(\d{4})(?:-?(\d{2})(?:-?(\d{2}))?)?$")
_HARVESTED = cast("Table", HarvestedRecord.__table__)
#: Pages handed to the storing worker and not yet stored, at most: the fetcher runs this far ahead.
DEPTH = 2

#: What :func:`catalogue_search` takes: the existing search interface's query (:class:`SearchQuery`).
SearchParams = SearchQuery


def split_url(url: str) -> tuple[str, str]:
    """``(base_url, origin_url)``: the OAI-PMH endpoint and the node URL, from either of them."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise BadArgument(variant="harvest_url", url=url)
    origin = url.rstrip("/").removesuffix("/oai").rstrip("/")
    return origin + "/oai", origin


def normalise_origin(url: str) -> str:
    return url.strip().rstrip("/").removesuffix("/oai").rstrip("/")


def index_for(settings: Settings, source_id: int) -> EmbeddedBackend:
    return EmbeddedBackend(settings.harvest_dir / f"source-{source_id}.sqlite3")


# -- sources ----------------------------------------------------------------------------------------------


def source_summary(s: HarvestSource) -> dict[str, Any]:
    return {
        "id": s.id,
        "url": s.origin_url,
        "oai_url": s.base_url,
        "set": s.set_spec,
        "metadata_prefix": s.metadata_prefix,
        "records": s.record_count,
        "next_from": s.next_from,
        "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None,
        "last_run_at": s.last_run_at.isoformat() if s.last_run_at else None,
        "last_status": s.last_status,
        "last_error": s.last_error,
    }


def add_source(settings: Settings, url: str, set_spec: str | None = None) -> dict[str, Any]:
    base, origin = split_url(url)
    with db.write_session(settings) as s:
        if s.execute(select(HarvestSource.id).where(HarvestSource.base_url == base)).first():
            raise HarvestSourceExists(origin)
        source = HarvestSource(base_url=base, origin_url=origin, set_spec=set_spec or None, record_count=0)
        s.add(source)
        s.flush()
        return source_summary(source)


def list_sources(settings: Settings) -> list[dict[str, Any]]:
    with db.read_session(settings) as s:
        return [
            source_summary(x) for x in s.execute(select(HarvestSource).order_by(HarvestSource.id)).scalars()
        ]


# -- parsing ----------------------------------------------------------------------------------------------


def _dates(text: str | None) -> tuple[dt.date | None, dt.date | None]:
    m = _DATE.match(text or "")
    if not m:
        return None, None
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if day:
            d = dt.date(year, int(month), int(day))
            return d, d
        if month:
            first = dt.date(year, int(month), 1)
            nxt = dt.date(year + (first.month == 12), first.month % 12 + 1, 1)
            return first, nxt - dt.timedelta(days=1)
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    except ValueError:
        return None, None


def _text(el: etree._Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


_NATIVE_TAGS = {
    f"{PA}archivalCode": "archival_code",
    f"{PA}title": "title",
    f"{PA}creator": "creator",
    f"{PA}date": "date",
    f"{PA}retention": "retention",
    f"{PA}fonds": "fonds",
    f"{PA}description": "description",
    f"{PA}language": "language",
    f"{PA}url": "url",
}


def _native_fields(md: etree._Element) -> dict[str, Any] | None:
    """The fields of a ``pearl_archive`` record, read in one pass over its children."""
    rec = md.find(f"{PA}record")
    if rec is None:
        return None
    fields: dict[str, Any] = dict.fromkeys(("archive", "archive_name", "level", *_NATIVE_TAGS.values()), None)
    keywords: list[str] = []
    for child in rec:
        tag = child.tag
        text = child.text.strip() if child.text else None
        if tag == f"{PA}keyword":
            if text:
                keywords.append(text)
        elif tag == f"{PA}archive":
            fields["archive"], fields["level"], fields["archive_name"] = (
                child.get("code"),
                child.get("level"),
                text,
            )
        elif tag in _NATIVE_TAGS:
            fields[_NATIVE_TAGS[tag]] = text or None
    fields["keywords"] = keywords
    return fields


def _dc_fields(md: etree._Element, identifier: str) -> dict[str, Any] | None:
    dc = md[0] if len(md) else None
    if dc is None:
        return None
    ids = [t for t in (_text(e) for e in dc.findall(f"{DC}identifier")) if t]
    code_id = next((i for i in ids if "/" in i and "://" not in i), None)
    url = next((i for i in ids if "://" in i), None)
    archive, _, code = (code_id or identifier.rsplit(":", 1)[-1]).partition("/")
    return {
        "archive": archive or None,
        "archive_name": _text(dc.find(f"{DC}publisher")),
        "level": None,
        "archival_code": code or None,
        "title": _text(dc.find(f"{DC}title")),
        "creator": _text(dc.find(f"{DC}creator")),
        "date": _text(dc.find(f"{DC}date")),
        "retention": None,
        "fonds": None,
        "description": _text(dc.find(f"{DC}description")),
        "keywords": [k for k in (_text(e) for e in dc.findall(f"{DC}subject")) if k],
        "language": _text(dc.find(f"{DC}language")),
        "url": url,
    }


def to_doc(f: dict[str, Any]) -> RecordDoc:
    start, end = _dates(f.get("date"))
    archive = f["archive"]
    return RecordDoc(
        id=f"{archive}/{f['archival_code']}",
        archive=archive,
        archive_level=str(f["level"]) if f.get("level") in _LEVELS else "unknown",
        archival_code=f["archival_code"],
        title=f.get("title") or f["archival_code"],
        access_status="open",  # the peer lists open records only; deleted ones are removed, never indexed
        creator=f.get("creator"),
        fonds=f"{archive}/{f['fonds']}" if f.get("fonds") else None,
        date_text=f.get("date"),
        date_start=start,
        date_end=end,
        retention=f.get("retention"),
        language=f.get("language"),
        description=f.get("description"),
        keywords=tuple(f.get("keywords") or ()),
    )


@dataclass
class Page:
    response_date: str
    live: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # identifier, datestamp, fields
    deleted: list[str] = field(default_factory=list)
    token: str | None = None
    no_records: bool = False


def parse_page(content: bytes, prefix: str) -> Page:
    return read_page(_xml(content), prefix)


def _xml(content: bytes) -> etree._Element:
    try:
        return etree.fromstring(
            content, etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
        )
    except etree.XMLSyntaxError as exc:
        raise HarvestError(variant="not_xml", reason=exc) from None


def _token(root: etree._Element) -> str | None:
    """The resumption token of a ListRecords answer, if any (read before the rest of the page)."""
    token = root.find(f"{OAI}ListRecords/{OAI}resumptionToken")
    text = (token.text or "").strip() if token is not None else ""
    return text or None


def read_page(root: etree._Element, prefix: str) -> Page:
    if root.tag != f"{OAI}OAI-PMH":
        raise HarvestError(variant="not_oai")
    page = Page(response_date=(root.findtext(f"{OAI}responseDate") or "").strip())
    errors = root.findall(f"{OAI}error")
    if errors:
        codes = [e.get("code") for e in errors]
        if codes == ["noRecordsMatch"]:
            page.no_records = True
            return page
        raise HarvestError(variant="oai_error", codes=codes, text=errors[0].text)
    body = root.find(f"{OAI}ListRecords")
    if body is None:
        raise HarvestError(variant="no_list_records")
    for rec in body.iterfind(f"{OAI}record"):
        header = rec.find(f"{OAI}header")
        if header is None:
            continue
        identifier = (header.findtext(f"{OAI}identifier") or "").strip()
        stamp = (header.findtext(f"{OAI}datestamp") or "").strip()
        if not identifier:
            continue
        if header.get("status") == "deleted":
            page.deleted.append(identifier)
            continue
        md = rec.find(f"{OAI}metadata")
        if md is None:
            continue
        fields = _native_fields(md) if prefix == NATIVE else _dc_fields(md, identifier)
        if not fields or not fields.get("archive") or not fields.get("archival_code"):
            log.warning("skipping %s: no archive or archival code in its metadata", identifier)
            continue
        page.live.append((identifier, stamp, fields))
    page.token = _token(root)
    return page


# -- harvesting -------------------------------------------------------------------------------------------


@dataclass
class HarvestReport:
    url: str
    full: bool
    status: str = "ok"
    pages: int = 0
    added: int = 0
    removed: int = 0
    seconds: float = 0.0
    error: str | None = None
    records: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "full": self.full,
            "status": self.status,
            "pages": self.pages,
            "harvested": self.added,
            "removed": self.removed,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "rate": round(self.added / self.seconds, 1) if self.seconds else None,
            "error": self.error,
        }


def _get(client: httpx.Client, url: str, params: dict[str, str]) -> bytes:
    try:
        response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise HarvestError(variant="unreachable", url=url, reason=exc) from None
    if response.status_code != 200:
        raise HarvestError(variant="http_status", url=url, status=response.status_code)
    return response.content


def _choose_prefix(client: httpx.Client, base: str) -> str:
    content = _get(client, base, {"verb": "ListMetadataFormats"})
    try:
        root = etree.fromstring(content, etree.XMLParser(no_network=True, resolve_entities=False))
    except etree.XMLSyntaxError:
        raise HarvestError(variant="formats_not_xml", url=base) from None
    prefixes = {(e.text or "").strip() for e in root.iter(f"{OAI}metadataPrefix")}
    if NATIVE in prefixes:
        return NATIVE
    if "oai_dc" in prefixes:
        return "oai_dc"
    raise HarvestError(variant="no_format", url=base, native=NATIVE)


def _fetch(client: httpx.Client, url: str, params: dict[str, str]) -> etree._Element:
    return _xml(_get(client, url, params))


def _pages(
    client: httpx.Client, base: str, prefix: str, set_spec: str | None, start: str | None
) -> Iterator[Page]:
    """The pages of the list. A fetcher thread asks for each page as soon as the one before gave its
    resumption token, so the peer prepares the next page while this one is read and stored."""
    params = {"verb": "ListRecords", "metadataPrefix": prefix}
    if set_spec:
        params["set"] = set_spec
    if start:
        params["from"] = start
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest-fetch") as fetcher:
        answer = fetcher.submit(_fetch, client, base, params)
        while True:
            root = answer.result()
            token = _token(root)
            if token:
                answer = fetcher.submit(
                    _fetch, client, base, {"verb": "ListRecords", "resumptionToken": token}
                )
            page = read_page(root, prefix)
            yield page
            if not page.token:
                return


def _store_rows(settings: Settings, source_id: int, page: Page, now: dt.datetime) -> list[str]:
    """One page's rows (upserts, one transaction); the index ids of the records it lists as deleted that
    the copy held. The page's index writes run beside it (:func:`_store_index`): rows and index are both
    upserts, so a retry heals, and a hit whose row is missing is not shown."""
    gone = page.deleted + [i for i, _, _ in page.live]
    deleted = set(page.deleted)
    removed_docs: list[str] = []
    with db.write_session(settings) as s:
        conn = s.connection()
        for chunk in _chunks(gone, 500):
            if deleted:
                old = conn.execute(
                    select(_HARVESTED.c.identifier, _HARVESTED.c.doc_id).where(
                        _HARVESTED.c.source_id == source_id, _HARVESTED.c.identifier.in_(chunk)
                    )
                ).all()
                removed_docs += [d for i, d in old if i in deleted]
            conn.execute(
                delete(_HARVESTED).where(
                    _HARVESTED.c.source_id == source_id, _HARVESTED.c.identifier.in_(chunk)
                )
            )
        if page.live:
            conn.execute(
                insert(_HARVESTED),
                [
                    {
                        "source_id": source_id,
                        "identifier": ident,
                        "doc_id": f"{f['archive']}/{f['archival_code']}",
                        "datestamp": stamp,
                        "harvested_at": now,
                        "fields": f,
                    }
                    for ident, stamp, f in page.live
                ],
            )
    return removed_docs


def _store_index(source_id: int, page: Page, rows: Future[list[str]]) -> int:
    """One page into the index pages go into; the number of records it removed from the copy (those the
    page lists as deleted, known once its rows are stored)."""
    index = _OPEN[source_id]
    removed_docs = rows.result() if page.deleted else []
    if removed_docs:
        index.delete(removed_docs)
    if page.live:
        index.index(to_doc(f) for _, _, f in page.live)
    return len(removed_docs)


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


#: The index pages are stored into, per source, in the process (thread or child) that stores pages: the
#: copy's index itself (incremental), or a side file that replaces it at the end (full).
_OPEN: dict[int, EmbeddedBackend] = {}


def _side_index(settings: Settings, source_id: int) -> EmbeddedBackend:
    live = index_for(settings, source_id).path
    return EmbeddedBackend(live.with_name(f"{live.name}.full-{os.getpid()}"), durable=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _sweep_dead_side_files(settings: Settings, source_id: int) -> None:
    """Remove the side files of full harvests of this source whose process is gone (killed half-way); a
    live process's side file (another full harvest running now) is left alone."""
    live = index_for(settings, source_id).path
    for path in live.parent.glob(f"{live.name}.full-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            EmbeddedBackend(path, durable=False).remove_files()


def _store_open(settings: Settings, source_id: int, full: bool) -> int:
    index = _side_index(settings, source_id) if full else index_for(settings, source_id)
    if full:
        index.remove_files()  # left by a run of this process id that died half-way
        _sweep_dead_side_files(settings, source_id)
    index.ensure_ready()
    _OPEN[source_id] = index
    return 0


def _store_drop_unseen(settings: Settings, source_id: int, seen: set[str]) -> int:
    return _drop_unseen(settings, source_id, seen, _OPEN[source_id])


def _store_close(settings: Settings, source_id: int, full: bool, ok: bool) -> None:
    """Close the index pages went into; after a full harvest, copy the side file into the copy's index if
    the harvest succeeded, and delete it in any case (a failed full harvest leaves the index as it was)."""
    index = _OPEN.pop(source_id, None)
    if index is None:
        return
    index.close()
    if not full:
        return
    try:
        if ok:
            live = index_for(settings, source_id)
            try:
                live.replace_with(index.path)
            finally:
                live.close()
    finally:
        index.remove_files()


def harvest_source(
    settings: Settings, source_id: int, *, full: bool = False, client: httpx.Client | None = None
) -> HarvestReport:
    """Harvest one source (incrementally from its ``next_from`` unless ``full``); never raises for a peer's
    failure: the report and the source row say what went wrong."""
    with db.read_session(settings) as s:
        source = s.get(HarvestSource, source_id)
        if source is None:
            raise UnknownHarvestSource(str(source_id))
        base, prefix, set_spec, start = (
            source.base_url,
            source.metadata_prefix,
            source.set_spec,
            source.next_from,
        )
    full = full or start is None
    report = HarvestReport(url=base.removesuffix("/oai"), full=full)
    with _source_lock(settings, source_id) as holder:
        if holder is not None:  # the schedule and a hand-started run, or two hosts sharing the home
            report.status = "busy"
            report.error = HarvestError(variant="busy", url=report.url, holder=holder).en
            return report
        return _harvest_locked(settings, source_id, report, base, prefix, set_spec, start, client)


@contextmanager
def _source_lock(settings: Settings, source_id: int) -> Iterator[str | None]:
    """One harvest of a source at a time, whatever the catalogue database: an exclusive ``flock`` on
    ``harvest/source-N.lock`` beside the source's index (the thing two harvests would both rewrite), taken
    without waiting. Yields ``None`` when taken, else who holds it ("pid P on HOST", as written in the file).
    The kernel drops the lock when its process dies, so a killed harvest never blocks the next one."""
    settings.harvest_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.harvest_dir / f"source-{source_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "?"
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield None
    finally:
        os.close(fd)


def _harvest_locked(
    settings: Settings,
    source_id: int,
    report: HarvestReport,
    base: str,
    prefix: str | None,
    set_spec: str | None,
    start: str | None,
    client: httpx.Client | None,
) -> HarvestReport:
    full = report.full
    t0 = time.perf_counter()
    own = client is None
    http = client or httpx.Client(timeout=settings.harvest_timeout, follow_redirects=False)
    first_date: str | None = None
    seen: set[str] = set()
    # While the next pages are fetched and parsed, one worker thread stores each page's rows and another its
    # index entries, each in page order; the index worker owns the index pages go into. Both spend much of
    # their time in SQLite, which releases the GIL. (A child process for storing cost more than it saved
    # once storing got cheap: spawning it re-imports the project, ~1 CPU-second, and every page is pickled.)
    rows = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest-rows")
    store = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest-index")
    pending: deque[tuple[Future[list[str]] | None, Future[int]]] = deque()
    stored = False
    try:
        pending.append((None, store.submit(_store_open, settings, source_id, full)))
        prefix = prefix or _choose_prefix(http, base)
        for page in _pages(http, base, prefix, set_spec, None if full else start):
            report.pages += 1
            first_date = first_date or page.response_date
            if page.no_records:
                break
            while len(pending) >= DEPTH:
                report.removed += _wait(pending.popleft())
            rows_done = rows.submit(_store_rows, settings, source_id, page, utcnow())
            pending.append((rows_done, store.submit(_store_index, source_id, page, rows_done)))
            report.added += len(page.live)
            if full:
                seen.update(i for i, _, _ in page.live)
        while pending:
            report.removed += _wait(pending.popleft())
        if full:
            report.removed += store.submit(_store_drop_unseen, settings, source_id, seen).result()
        stored = True
    except HarvestError as exc:
        report.status, report.error = "error", exc.en
    finally:
        try:
            while pending:
                _wait(pending.popleft())
        finally:  # the worker stores what is queued before it closes, so close even if a page failed
            store.submit(_store_close, settings, source_id, full, stored).result()
            store.shutdown()
            rows.shutdown()
            if own:
                http.close()
    report.seconds = time.perf_counter() - t0
    with db.write_session(settings) as s:
        source = s.get(HarvestSource, source_id)
        assert source is not None
        source.last_run_at = utcnow()
        source.last_status = report.status
        source.last_error = report.error
        source.metadata_prefix = prefix
        if report.status == "ok":
            source.last_success_at = source.last_run_at
            if first_date:
                source.next_from = first_date
        source.record_count = int(
            s.execute(
                select(func.count()).select_from(_HARVESTED).where(_HARVESTED.c.source_id == source_id)
            ).scalar_one()
        )
        report.records = source.record_count
    return report


def _wait(stored: tuple[Future[list[str]] | None, Future[int]]) -> int:
    rows_done, index_done = stored
    if rows_done is not None:
        rows_done.result()
    return index_done.result()


def _drop_unseen(settings: Settings, source_id: int, seen: set[str], index: EmbeddedBackend) -> int:
    with db.write_session(settings) as s:
        conn = s.connection()
        rows = conn.execute(
            select(_HARVESTED.c.id, _HARVESTED.c.identifier, _HARVESTED.c.doc_id).where(
                _HARVESTED.c.source_id == source_id
            )
        ).all()
        stale = [(rid, doc) for rid, ident, doc in rows if ident not in seen]
        for chunk in range(0, len(stale), 500):
            conn.execute(
                delete(_HARVESTED).where(_HARVESTED.c.id.in_([r for r, _ in stale[chunk : chunk + 500]]))
            )
    if stale:
        index.delete(doc for _, doc in stale)
    return len(stale)


def run(settings: Settings, *, full: bool = False, url: str | None = None) -> list[HarvestReport]:
    """Harvest every source (or the one at ``url``), one after another."""
    with db.read_session(settings) as s:
        query = select(HarvestSource.id).order_by(HarvestSource.id)
        if url:
            query = query.where(HarvestSource.base_url == split_url(url)[0])
        ids = list(s.execute(query).scalars())
    if url and not ids:
        raise UnknownHarvestSource(url)
    return [harvest_source(settings, i, full=full) for i in ids]


# -- answering from the copy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueAnswer:
    origin_url: str
    total: int
    hits: list[dict[str, Any]]
    facets: dict[str, dict[str, int]]
    total_exact: bool
    #: When the copy was last refreshed from the origin (ISO 8601), for "as of" on the page.
    harvested_at: str | None
    page: int = 1
    size: int = 20


def catalogue_search(settings: Settings, origin_url: str, params: SearchParams) -> CatalogueAnswer | None:
    """Hits for ``params`` (the same :class:`search.SearchQuery` the node's own search takes) among the open
    records harvested from the node at ``origin_url`` (its URL, with or without ``/oai``); ``None`` when
    nothing was ever harvested from it.

    Each hit has the fields of ``/api/v1/search``'s hits (``archive``, ``archival_code``, ``title``,
    ``creator``, ``date``, ``level``, ``fonds``, ``retention``, ``formats``, ``highlights``, ``url``,
    ``api_url`` — the last two absolute, on the origin node; the fan-out may replace them with its own
    proxy URLs) plus ``harvested_at`` (ISO time this record was last harvested), ``source: "catalogue"``
    and ``origin`` (the origin URL). ``total``/``facets``/``total_exact`` as the node's own search.
    """
    origin = normalise_origin(origin_url)
    with db.read_session(settings) as s:
        source = (
            s.execute(
                select(HarvestSource)
                .where(HarvestSource.origin_url == origin, HarvestSource.last_success_at.is_not(None))
                .order_by(HarvestSource.id)
            )
            .scalars()
            .first()
        )
        if source is None:
            return None
        source_id, harvested = source.id, source.last_success_at
    index = index_for(settings, source_id)
    try:
        result = index.search(params)
    finally:
        index.close()
    doc_ids = [h.id for h in result.hits]
    with db.read_session(settings) as s:
        times = (
            dict(
                s.execute(
                    select(_HARVESTED.c.doc_id, _HARVESTED.c.harvested_at).where(
                        _HARVESTED.c.source_id == source_id, _HARVESTED.c.doc_id.in_(doc_ids)
                    )
                ).all()
            )
            if doc_ids
            else {}
        )
    hits = []
    for h in result.hits:
        if h.id not in times:  # removed from the rows while the index still had it: not shown
            continue
        path = f"/records/{quote(h.archive, safe='')}/{quote(h.archival_code, safe='')}"
        hits.append(
            {
                "archive": h.archive,
                "archival_code": h.archival_code,
                "title": h.title,
                "creator": h.creator,
                "date": h.date,
                "level": h.level,
                "fonds": h.fonds,
                "retention": h.retention,
                "formats": list(h.formats),
                "highlights": h.highlights,
                "url": origin + path,
                "api_url": origin + "/api/v1" + path,
                "harvested_at": _iso(times[h.id]),
                "source": "catalogue",
                "origin": origin,
            }
        )
    return CatalogueAnswer(
        origin_url=origin,
        total=result.total,
        hits=hits,
        facets=result.facets,
        total_exact=result.total_exact,
        harvested_at=_iso(harvested) if harvested else None,
        page=result.page,
        size=result.size,
    )


@dataclass
class HarvestedCopy:
    """One record of a peer as last harvested: its fields (``_native_fields``/``_dc_fields``) and when."""

    fields: dict[str, Any]
    harvested_at: str


def harvested_record(settings: Settings, origin_url: str, archive: str, code: str) -> HarvestedCopy | None:
    """The harvested copy of the record ``archive``/``code`` of the node at ``origin_url``, or ``None``
    when it was never harvested from there (or the peer no longer lists it: the copy keeps open records
    only, a record restricted or deleted at its holder leaves the copy at the next harvest)."""
    origin = normalise_origin(origin_url)
    with db.read_session(settings) as s:
        row = s.execute(
            select(_HARVESTED.c.fields, _HARVESTED.c.harvested_at)
            .join(HarvestSource, HarvestSource.id == _HARVESTED.c.source_id)
            .where(HarvestSource.origin_url == origin, _HARVESTED.c.doc_id == f"{archive}/{code}")
            .order_by(_HARVESTED.c.harvested_at.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return HarvestedCopy(dict(row.fields), _iso(row.harvested_at))


def _iso(value: dt.datetime) -> str:
    return (value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value).isoformat()
