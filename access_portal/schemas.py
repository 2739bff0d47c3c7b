"""What the public sees of the catalogue: pydantic schemas of the JSON API, also used to render the pages.

They are a whitelist, apart from the database models: a record's security class, access reasoning, transfer,
OCFL object id and bag paths are not fields here, so no page or API answer can carry them.
"""

from __future__ import annotations

import itertools
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

from access_portal.limits import MAX_FACET_VALUES
from access_portal.services import ArchiveNode, PublicFile, PublicSearch, safe_snippet
from archive.models import Record
from search import Hit
from search.documents import split_keywords


def record_url(archive: str, code: str) -> str:
    return f"/records/{quote(archive, safe='')}/{quote(code, safe='')}"


def api_record_url(archive: str, code: str) -> str:
    return f"/api/v1{record_url(archive, code)}"


def file_url(archive: str, code: str, logical_path: str) -> str:
    return f"{record_url(archive, code)}/files/{quote(logical_path, safe='/')}"


def catalogue_url(archive: str) -> str:
    return f"/archives/{quote(archive, safe='')}/catalogue"


class ArchiveOut(BaseModel):
    code: str
    name_zh: str
    name_en: str | None
    level: str
    parent: str | None
    depth: int
    open_records: int = Field(description="Number of records open to the public")
    catalogue_url: str

    @classmethod
    def of(cls, node: ArchiveNode) -> ArchiveOut:
        return cls(
            code=node.code,
            name_zh=node.name_zh,
            name_en=node.name_en,
            level=node.level,
            parent=node.parent,
            depth=node.depth,
            open_records=node.open_records,
            catalogue_url=catalogue_url(node.code),
        )


class FileOut(BaseModel):
    name: str
    path: str = Field(description="Logical path inside the record")
    role: str = Field(description="original, preservation or access")
    size: int
    sha256: str
    mime: str | None
    format: str | None
    format_version: str | None
    puid: str | None
    download_url: str | None = Field(description="Set for the access copy, or the original where none exists")

    @classmethod
    def of(cls, record: Record, pf: PublicFile) -> FileOut:
        f = pf.file
        return cls(
            name=f.logical_path.rsplit("/", 1)[-1],
            path=f.logical_path,
            role=f.role,
            size=f.size,
            sha256=f.sha256,
            mime=f.mime,
            format=f.format_name,
            format_version=f.format_version,
            puid=f.puid,
            download_url=file_url(record.archive.code, record.archival_code, f.logical_path)
            if pf.downloadable
            else None,
        )


class RecordOut(BaseModel):
    archive: str
    archive_name_zh: str
    archive_name_en: str | None
    archival_code: str
    title: str
    creator: str | None
    date: str | None
    retention: str | None
    fonds: str | None
    description: str | None
    keywords: list[str]
    language: str | None
    url: str
    files: list[FileOut]

    @classmethod
    def of(cls, record: Record, files: list[PublicFile]) -> RecordOut:
        return cls(
            archive=record.archive.code,
            archive_name_zh=record.archive.name_zh,
            archive_name_en=record.archive.name_en,
            archival_code=record.archival_code,
            title=record.title,
            creator=record.creator,
            date=record.date_text,
            retention=record.retention,
            fonds=record.fonds.code if record.fonds else None,
            description=record.description,
            keywords=list(split_keywords(record.keywords)),
            language=record.language,
            url=record_url(record.archive.code, record.archival_code),
            files=[FileOut.of(record, pf) for pf in files],
        )


class HitOut(BaseModel):
    archive: str
    archival_code: str
    title: str
    creator: str | None
    date: str | None
    level: str | None
    fonds: str | None
    retention: str | None
    formats: list[str]
    highlights: dict[str, list[str]] = Field(description="HTML-safe snippets, matches in <mark>")
    url: str = Field(description="Where THIS node shows the record (a remote one is fetched from its holder)")
    api_url: str
    node: str | None = Field(default=None, description="Node id of the holder (set on regional answers)")
    node_name: str | None = None
    source: Literal["live", "catalogue"] = Field(
        default="live", description="live: the holder answered; catalogue: from the harvested copy"
    )
    harvested_at: str | None = Field(default=None, description="When a catalogue hit was harvested")

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        return cls(
            archive=hit.archive,
            archival_code=hit.archival_code,
            title=hit.title,
            creator=hit.creator,
            date=hit.date,
            level=hit.level,
            fonds=hit.fonds,
            retention=hit.retention,
            formats=list(hit.formats),
            highlights={k: [safe_snippet(s) for s in v] for k, v in hit.highlights.items()},
            url=record_url(hit.archive, hit.archival_code),
            api_url=api_record_url(hit.archive, hit.archival_code),
        )


# A TypedDict, not a model: a search answers several hundred facet values, which pydantic then validates
# and serialises in Rust instead of building a Python object for each (~1 ms a search).
class FacetValue(TypedDict):
    """One value of a facet and the number of hits that have it."""

    value: str
    count: int


class NodeOut(BaseModel):
    """How one node took part in a regional query."""

    node_id: str
    name: str
    status: Literal["ok", "timeout", "error", "unreachable", "refused", "skipped"]
    ms: float
    total: int
    local: bool = False
    source: Literal["live", "catalogue"] | None = None
    harvested_at: str | None = None


class SearchOut(BaseModel):
    """One page of hits and the facets of the whole result: each facet's most frequent values first, at
    most :data:`access_portal.limits.MAX_FACET_VALUES` of them (a province has thousands of fonds)."""

    q: str
    total: int
    total_exact: bool
    page: int
    size: int
    pages: int
    sort: Literal["relevance", "date_desc", "date_asc"]
    hits: list[HitOut]
    facets: dict[str, list[FacetValue]]
    scope: Literal["local", "region"] = "local"
    nodes: list[NodeOut] = Field(default_factory=list, description="Set on regional answers")

    @classmethod
    def of(cls, found: PublicSearch) -> SearchOut:
        q = found.query
        return cls(
            q=q.q,
            total=found.total,
            total_exact=found.result.total_exact and not found.dropped,
            page=q.page,
            size=q.size,
            pages=found.pages,
            sort=q.sort,
            hits=[HitOut.of(h) for h in found.result.hits],
            facets={
                name: [
                    {"value": v, "count": n} for v, n in itertools.islice(values.items(), MAX_FACET_VALUES)
                ]
                for name, values in found.result.facets.items()
            },
        )


class CatalogueEntry(BaseModel):
    archival_code: str
    title: str
    creator: str | None
    date: str | None
    retention: str | None
    fonds: str | None
    url: str

    @classmethod
    def of(cls, archive: str, record: Record) -> CatalogueEntry:
        return cls(
            archival_code=record.archival_code,
            title=record.title,
            creator=record.creator,
            date=record.date_text,
            retention=record.retention,
            fonds=record.fonds.code if record.fonds else None,
            url=record_url(archive, record.archival_code),
        )


class CatalogueOut(BaseModel):
    archive: str
    name_zh: str
    name_en: str | None
    total: int
    page: int
    size: int
    pages: int
    records: list[CatalogueEntry]


class ErrorOut(BaseModel):
    detail: str
    detail_zh: str | None = None
