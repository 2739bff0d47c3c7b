"""The one place the public portal reads through; every exit (pages, API, downloads, catalogue, search,
home counts) calls these functions, and each applies :func:`archive.access.is_public` before anything leaves.

- :func:`public_record` answers an open record or raises :class:`archive.errors.NotFound` — with the same
  message for "restricted" and "does not exist", so a response never tells them apart.
- :func:`public_download` resolves a file **only** through the catalogue: the record must be open, the file
  must be one the public may have (the access copy, or the original where there is none), and its bytes are
  found through the OCFL inventory of the record's object. User input never becomes a file-system path.
- :func:`public_search` passes the query to the search backend (whose index holds open records only) and
  then re-checks each hit of the page against the catalogue, so a record closed after it was indexed (index
  outbox not yet drained) is dropped from the page rather than shown.
- :func:`archives_tree` and :func:`catalogue_page` / :func:`iter_catalogue` count and list open records only,
  filtering in SQL by :data:`PUBLIC_STATUSES` (derived from ``is_public``) and checking each row again.

What a record shows is whitelisted by :mod:`access_portal.schemas`: security class, access reasons, transfer
ids and storage identifiers never leave the node.
"""

from __future__ import annotations

import html
import logging
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from access_portal.limits import check_page, no_such_page
from archive.access import is_public
from archive.config import Settings
from archive.errors import NotFound
from archive.home import store_for
from archive.models import AccessStatus, Archive, File, FileRole, Record
from search import MAX_WINDOW, SearchBackend, SearchQuery, SearchResult

log = logging.getLogger(__name__)

#: The access statuses :func:`is_public` accepts, for filtering in SQL (today: only ``open``).
PUBLIC_STATUSES: tuple[str, ...] = tuple(s.value for s in AccessStatus if is_public(s.value))

MAX_CODE_CHARS = 255
MAX_PATH_CHARS = 4096
CATALOGUE_PAGE_SIZE = 100
MAX_CATALOGUE_PAGE_SIZE = 1000


def not_found() -> NotFound:
    """The one answer for a record that is restricted, unknown, or asked for with a malformed name."""
    return NotFound(variant="open_record")


def _clean(value: str, limit: int) -> str | None:
    """``value`` if it could name something in the catalogue, else None (control characters, over-long)."""
    if not value or len(value) > limit:
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        return None
    return value


# -- archives ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveNode:
    code: str
    name_zh: str
    name_en: str | None
    level: str
    parent: str | None
    depth: int
    open_records: int


def open_counts(session: Session) -> dict[int, int]:
    """Open records per archive id."""
    rows = session.execute(
        select(Record.archive_id, Record.access_status, func.count()).group_by(
            Record.archive_id, Record.access_status
        )
    ).all()
    counts: dict[int, int] = {}
    for archive_id, status, n in rows:
        if is_public(status):
            counts[archive_id] = counts.get(archive_id, 0) + int(n)
    return counts


def archives_tree(session: Session) -> list[ArchiveNode]:
    """The archives on the node in tree order (province → city → county) with their open-record counts."""
    counts = open_counts(session)
    archives = session.execute(select(Archive).order_by(Archive.code)).scalars().all()
    codes = {a.id: a.code for a in archives}
    by_parent: dict[int | None, list[Archive]] = {}
    for a in archives:
        parent = a.parent_id if a.parent_id in codes else None
        by_parent.setdefault(parent, []).append(a)
    out: list[ArchiveNode] = []
    seen: set[int] = set()

    def walk(parent: int | None, depth: int) -> None:
        for a in by_parent.get(parent, []):
            if a.id in seen:  # a cycle in parent links must not hang the home page
                continue
            seen.add(a.id)
            out.append(
                ArchiveNode(
                    a.code,
                    a.name_zh,
                    a.name_en,
                    a.level,
                    codes.get(a.parent_id) if a.parent_id else None,
                    depth,
                    counts.get(a.id, 0),
                )
            )
            walk(a.id, depth + 1)

    walk(None, 0)
    return out


@dataclass(frozen=True)
class ArchiveName:
    code: str
    name_zh: str
    name_en: str | None


def archive_names(session: Session) -> dict[str, ArchiveName]:
    """The archives on the node by code, names only (what a result page shows; counting the open records of
    each, as :func:`archives_tree` does, reads every record)."""
    rows = session.connection().execute(_ARCHIVE_NAMES)
    return {code: ArchiveName(code, zh, en) for code, zh, en in rows}


# Built once, run on the session's connection: a plain row query needs none of the ORM's machinery.
_ARCHIVE_NAMES = select(Archive.code, Archive.name_zh, Archive.name_en)


def get_public_archive(session: Session, code: str) -> Archive:
    """A holding archive by code; its existence is public (the home page lists it)."""
    clean = _clean(code.strip(), 64)
    archive = None
    if clean is not None:
        archive = session.execute(select(Archive).where(Archive.code == clean.upper())).scalar_one_or_none()
    if archive is None:
        raise NotFound(variant="archive")
    return archive


# -- records and files ------------------------------------------------------------------------------------


def public_record(session: Session, archive: str, code: str) -> Record:
    """The open record ``archive``/``code`` with its archive, fonds and files loaded; :func:`not_found`
    otherwise (restricted, unknown, or a name that cannot be a code).

    Openness is decided first, by one statement that asks for an *open* record by archive and code: a
    restricted record and an absent one give the same statement and the same empty answer, so neither the
    answer nor its cost tells them apart. Only an open record's archive, fonds and files are then loaded.
    """
    arch = _clean(archive.strip().upper(), 64)
    clean = _clean(code, MAX_CODE_CHARS)
    if arch is None or clean is None:
        raise not_found()
    record_id = session.execute(
        _OPEN_RECORD_ID, {"archive": arch, "code": clean, "statuses": PUBLIC_STATUSES}
    ).scalar_one_or_none()
    if record_id is None:
        raise not_found()
    record = session.execute(
        select(Record)
        .options(selectinload(Record.archive), selectinload(Record.fonds), selectinload(Record.files))
        .where(Record.id == record_id)
    ).scalar_one_or_none()
    if record is None or not is_public(record.access_status):
        raise not_found()
    return record


_OPEN_RECORD_ID = (
    select(Record.id)
    .join(Archive, Record.archive_id == Archive.id)
    .where(
        Archive.code == bindparam("archive"),
        Record.archival_code == bindparam("code"),
        Record.access_status.in_(bindparam("statuses", expanding=True)),
    )
)


@dataclass(frozen=True)
class PublicFile:
    file: File
    #: Whether the public may download it: the access copy, or an original without one.
    downloadable: bool


def public_files(record: Record) -> list[PublicFile]:
    """The files of an open record as the public sees them, originals first, each with whether it can be
    downloaded. Preservation copies are listed (format, size, checksum) but not delivered."""
    if not is_public(record.access_status):
        raise not_found()
    has_access_copy = {
        f.derived_from_id for f in record.files if f.role == FileRole.access and f.derived_from_id is not None
    }
    out = []
    for f in record.files:
        if f.role == FileRole.access:
            ok = True
        elif f.role == FileRole.original:
            ok = f.id not in has_access_copy
        else:
            ok = False
        out.append(PublicFile(f, ok))
    return out


@dataclass(frozen=True)
class Download:
    path: Path
    filename: str
    media_type: str
    size: int
    sha256: str


def _content_path(settings: Settings, record: Record, logical_path: str) -> Path | None:
    """Where the head version of the record's object keeps ``logical_path``, found through its inventory
    and refused unless it lies inside the object."""
    store = store_for(settings)
    try:
        inventory = store.read_inventory(record.ocfl_object_id)
        state = inventory["versions"][inventory["head"]]["state"]
        digest = next((d for d, paths in state.items() if logical_path in paths), None)
        if digest is None:
            return None
        content = inventory["manifest"][digest][0]
    except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
        log.error("cannot read the inventory of %s: %s", record.ocfl_object_id, exc)
        return None
    except Exception as exc:  # the storage layer's own errors (object missing, bad sidecar)
        log.error("cannot read the inventory of %s: %s", record.ocfl_object_id, exc)
        return None
    base = store.object_path(record.ocfl_object_id).resolve()
    path = (base / content).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        log.error("content %r of %s is missing or outside its object", content, record.ocfl_object_id)
        return None
    return path


def public_download(
    settings: Settings, session: Session, archive: str, code: str, logical_path: str
) -> Download:
    """The bytes the public may download for ``logical_path`` of an open record, or :func:`not_found`."""
    record = public_record(session, archive, code)
    wanted = _clean(logical_path, MAX_PATH_CHARS)
    match = next(
        (pf for pf in public_files(record) if wanted is not None and pf.file.logical_path == wanted), None
    )
    if match is None or not match.downloadable:
        raise not_found()
    f = match.file
    path = _content_path(settings, record, f.logical_path)
    if path is None:
        raise not_found()
    return Download(
        path=path,
        filename=f.logical_path.rsplit("/", 1)[-1],
        media_type=f.mime or "application/octet-stream",
        size=f.size,
        sha256=f.sha256,
    )


# -- the catalogue of open records (Archives Law art. 28) -------------------------------------------------


def _catalogue_query(archive: Archive) -> Select[Record]:
    return (
        select(Record)
        .options(selectinload(Record.fonds))
        .where(Record.archive_id == archive.id, Record.access_status.in_(PUBLIC_STATUSES))
        .order_by(Record.date_start.desc().nulls_last(), Record.archival_code.desc())
    )


@dataclass(frozen=True)
class CataloguePage:
    archive: Archive
    total: int
    page: int
    size: int
    records: list[Record] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def catalogue_page(
    session: Session, archive_code: str, page: int = 1, size: int = CATALOGUE_PAGE_SIZE
) -> CataloguePage:
    """One page of an archive's open records, newest first (by date of creation; undated last). ``size`` is
    capped at :data:`MAX_CATALOGUE_PAGE_SIZE`; a page past the last is refused (``POR004``)."""
    archive = get_public_archive(session, archive_code)
    size = min(max(size, 1), MAX_CATALOGUE_PAGE_SIZE)
    page = max(page, 1)
    total = int(
        session.execute(
            select(func.count())
            .select_from(Record)
            .where(Record.archive_id == archive.id, Record.access_status.in_(PUBLIC_STATUSES))
        ).scalar_one()
    )
    last = max(1, -(-total // size))
    if page > last:
        raise no_such_page(page, last)
    rows = session.execute(_catalogue_query(archive).offset((page - 1) * size).limit(size)).scalars().all()
    return CataloguePage(archive, total, page, size, [r for r in rows if is_public(r.access_status)])


def iter_catalogue(session: Session, archive: Archive, batch: int = 500) -> Iterator[Record]:
    """Every open record of ``archive``, newest first, read in batches (for the CSV export)."""
    for record in session.execute(_catalogue_query(archive).execution_options(yield_per=batch)).scalars():
        if is_public(record.access_status):
            yield record


# -- search -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicSearch:
    query: SearchQuery
    result: SearchResult
    #: Hits of this page dropped because the catalogue no longer has them open (index not yet drained).
    dropped: int = 0

    @property
    def total(self) -> int:
        return max(self.result.total - self.dropped, len(self.result.hits))

    @property
    def pages(self) -> int:
        return max(1, min(-(-self.total // self.query.size), MAX_WINDOW // self.query.size))


# The access status of a page of hits, in one query. Two plain IN lists (not a row-value IN, which SQLite
# answers by scanning every record) so the (archive_id, archival_code) unique index is used; the exact pairs
# are matched by the caller, so a code that exists in another archive of the page cannot stand in for the
# hit. Built once (expanding parameters), so SQLAlchemy compiles it once; run on the session's connection.
_STATUS_OF_HITS = (
    select(Archive.code, Record.archival_code, Record.access_status)
    .join(Archive, Record.archive_id == Archive.id)
    .where(
        Archive.code.in_(bindparam("archives", expanding=True)),
        Record.archival_code.in_(bindparam("codes", expanding=True)),
    )
)


def public_search(session: Session, backend: SearchBackend, query: SearchQuery) -> PublicSearch:
    """Search the public index, keeping only hits the catalogue still holds open. A page past the last one
    is refused (:class:`access_portal.limits.OutOfBounds` ``POR004``) rather than answered empty."""
    result = backend.search(query)
    if not result.hits:
        found = PublicSearch(query, result)
        check_page(query.page, found.pages)
        return found
    pairs = {(h.archive, h.archival_code) for h in result.hits}
    rows = session.connection().execute(
        _STATUS_OF_HITS,
        {"archives": sorted({a for a, _ in pairs}), "codes": sorted({c for _, c in pairs})},
    )
    open_now = {(a, c) for a, c, status in rows if (a, c) in pairs and is_public(status)}
    kept = [h for h in result.hits if (h.archive, h.archival_code) in open_now]
    dropped = len(result.hits) - len(kept)
    if dropped:
        log.warning("dropped %d search hit(s) no longer open; is the index outbox being drained?", dropped)
    clean = SearchResult(
        total=result.total,
        hits=kept,
        facets=result.facets,
        page=result.page,
        size=result.size,
        total_exact=result.total_exact,
    )
    found = PublicSearch(query, clean, dropped)
    check_page(query.page, found.pages)
    return found


def safe_snippet(snippet: str) -> str:
    """A highlight as HTML: the backend's escaped text with ``<mark>`` tags, or — if it holds any other
    markup — the whole snippet escaped, so a backend bug cannot inject HTML into the page."""
    bare = snippet.replace("<mark>", "").replace("</mark>", "")
    if "<" in bare or ">" in bare:
        return html.escape(snippet)
    return snippet
