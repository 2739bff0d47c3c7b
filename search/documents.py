"""Building the public index document of a record, and the one gate that keeps closed records out.

Documents stay bounded whatever a record holds: each metadata field is cut to a fixed length, at most
:data:`MAX_FORMATS` format names are kept, and the text of the record's files goes through
:mod:`search.text` (at most :data:`search.text.MAX_FILE_CHARS` per file and :data:`MAX_RECORD_TEXT_CHARS` per
record, at most :data:`MAX_TEXT_FILES` files read, within :data:`TEXT_TIME_BUDGET` seconds). Whenever
anything was left out ``text_truncated`` is true, so the portal can say "full text partly indexed".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from archive.access import is_public
from archive.models import File, Record
from search.backend import RecordDoc, SearchError
from search.text import MAX_FILE_CHARS, extract_text, kind_of

MAX_TITLE_CHARS = 2_000
MAX_FIELD_CHARS = 2_000  # creator, date text, language
MAX_DESCRIPTION_CHARS = 20_000
MAX_KEYWORDS = 100
MAX_KEYWORD_CHARS = 100
MAX_FORMATS = 50
MAX_RECORD_TEXT_CHARS = 1_000_000
MAX_TEXT_FILES = 500
TEXT_TIME_BUDGET = 300.0  # seconds of extraction per record, all files together

_KEYWORD_SEPARATORS = re.compile(r"[；;，,、\n]+")


class NotPublic(SearchError, ValueError):
    """A document of a record that is not open was offered to the public index (a ValueError too, as before)."""

    code = "SRC004"

    def __init__(self, doc_id: str, status: str) -> None:
        super().__init__(doc_id=doc_id, status=status)
        self.doc_id = doc_id
        self.status = status


def doc_id(archive: str, archival_code: str) -> str:
    return f"{archive}/{archival_code}"


def require_public(docs: Iterable[RecordDoc]) -> list[RecordDoc]:
    """All the documents, or :class:`NotPublic` for the first that is not open; every ``index`` calls it."""
    out = list(docs)
    for doc in out:
        if not is_public(doc.access_status):
            raise NotPublic(doc.id, doc.access_status)
    return out


def _cap(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text[:limit] if text else None


def split_keywords(keywords: str | None) -> tuple[str, ...]:
    if not keywords:
        return ()
    out: list[str] = []
    for k in _KEYWORD_SEPARATORS.split(keywords):
        k = k.strip()[:MAX_KEYWORD_CHARS]
        if k and k not in out:
            out.append(k)
        if len(out) >= MAX_KEYWORDS:
            break
    return tuple(out)


ContentPath = Callable[[File], Path | None]


def text_sources(files: Sequence[File]) -> list[File]:
    """The files whose text stands for the record: each original, or (when the original yields no text type we
    read) its newest derivative — never both, so a migrated PDF does not count its text twice."""
    derived: dict[int, list[File]] = {}
    for f in files:
        if f.derived_from_id is not None:
            derived.setdefault(f.derived_from_id, []).append(f)
    out: list[File] = []
    for f in files:
        if f.derived_from_id is not None:
            continue
        chain = [f, *sorted(derived.get(f.id, []), key=lambda d: d.id, reverse=True)]
        out.append(chain[0] if _extractable(chain[0]) or len(chain) == 1 else chain[1])
    return out


def _extractable(f: File) -> bool:
    return kind_of(f.mime, f.puid, f.logical_path) is not None


def record_text(files: Sequence[File], content_path: ContentPath, *, timeout: float) -> tuple[str, bool]:
    """The text of a record's files, capped; the flag says whether anything was left out."""
    pieces: list[str] = []
    total = 0
    truncated = False
    read = 0
    deadline = time.monotonic() + TEXT_TIME_BUDGET
    for f in text_sources(files):
        if not _extractable(f):
            continue
        if read >= MAX_TEXT_FILES or total >= MAX_RECORD_TEXT_CHARS or time.monotonic() > deadline:
            truncated = True
            break
        path = content_path(f)
        if path is None:
            continue
        read += 1
        limit = min(MAX_FILE_CHARS, MAX_RECORD_TEXT_CHARS - total)
        got = extract_text(path, mime=f.mime, puid=f.puid, name=f.logical_path, limit=limit, timeout=timeout)
        truncated = truncated or got.truncated
        if got.text:
            pieces.append(got.text)
            total += len(got.text) + 1
    return "\n".join(pieces)[:MAX_RECORD_TEXT_CHARS], truncated


def build_document(
    record: Record,
    files: Sequence[File] | None = None,
    content_path: ContentPath | None = None,
    *,
    timeout: float = 120.0,
) -> RecordDoc:
    """The index document of ``record`` (with its archive and fonds loaded). Raises :class:`NotPublic` if the
    record is not open: nothing about a closed record is ever put together for the public index.

    ``content_path`` maps a file row to its bytes on disk (from the OCFL store); without it no text is read.
    """
    archive = record.archive
    did = doc_id(archive.code, record.archival_code)
    if not is_public(record.access_status):
        raise NotPublic(did, record.access_status)
    files = list(record.files if files is None else files)
    formats: list[str] = []
    puids: list[str] = []
    for f in files:
        name = f.format_name or f.mime or "unknown"
        if name not in formats and len(formats) < MAX_FORMATS:
            formats.append(name)
        if f.puid and f.puid not in puids and len(puids) < MAX_FORMATS:
            puids.append(f.puid)
    text, truncated = ("", False)
    if content_path is not None:
        text, truncated = record_text(files, content_path, timeout=timeout)
    title = record.title or record.archival_code
    return RecordDoc(
        id=did,
        archive=archive.code,
        archive_level=archive.level,
        archival_code=record.archival_code,
        title=title[:MAX_TITLE_CHARS],
        access_status=record.access_status,
        creator=_cap(record.creator, MAX_FIELD_CHARS),
        fonds=f"{archive.code}/{record.fonds.code}" if record.fonds else None,
        date_text=_cap(record.date_text, MAX_FIELD_CHARS),
        date_start=record.date_start,
        date_end=record.date_end,
        retention=_cap(record.retention, MAX_FIELD_CHARS),
        language=_cap(record.language, MAX_FIELD_CHARS),
        description=_cap(record.description, MAX_DESCRIPTION_CHARS),
        keywords=split_keywords(record.keywords),
        formats=tuple(formats),
        puids=tuple(puids),
        text=text,
        text_truncated=truncated
        or len(title) > MAX_TITLE_CHARS
        or len(record.description or "") > MAX_DESCRIPTION_CHARS,
    )
