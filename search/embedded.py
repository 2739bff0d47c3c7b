"""The embedded search backend: SQLite FTS5 in ``$ARCHIVE_HOME/search.sqlite3`` (WAL), no server needed.

Tokenisation (ours, in Python; FTS5 ``unicode61`` then splits on the spaces we put in): text is
NFKC-normalised and case-folded; a run of CJK characters becomes its overlapping **bigrams**
(广州市档案馆 → 广州 州市 市档 档案 案馆; a 1-character run stays as it is), other letters and
digits stay whole words. Every distinct CJK character also goes, once, into a ``uni_*`` column. A query
is analysed the same way:

- 1 CJK character  → that character in the ``uni_*`` columns (港 finds 黄埔港);
- 2+ CJK characters → the phrase of their bigrams (consecutive, so 广州市 does not match 广州…市);
- a word           → the word (case-insensitive, no stemming); words joined by punctuation form a phrase;
- every whitespace-separated term must match (AND); user text only ever reaches FTS5 inside a quoted
  string made of letters and digits, so no input is FTS5 syntax;
- a code-like query (``GZ-010``) also matches archival codes that start with it, through a B-tree range on
  ``docs.code_key``; such hits rank above text hits, an exact code first.

Schema: ``docs`` (display fields), ``facets`` (narrow: the facet and sort columns, read per hit to filter and
count), ``formats`` (one row per record and format name or PUID), ``texts`` (zlib-compressed full text, read
only to build snippets for the page shown) and ``fts`` — a **contentless** FTS5 table (``content=''``), so
the index does not store the text a second time; its rows are removed with FTS5's ``delete`` command from
the values re-derived from ``docs``/``texts``. The tokenisation version is kept in ``meta``: if it changes
``ensure_ready`` rebuilds ``fts`` from the stored documents. Ranking: FTS5 ``bm25`` with column weights
(code > title > creator/description > file text).

A text search reads at most ``SCAN_LIMIT`` (2,000) matches that pass the filters, in one FTS5 pass that also
computes their bm25 rank; total and facets are counted from those rows, so past the limit the total is a lower
bound (``total_exact`` false) — a common word found in most records costs the same as a rarer one. The result
is cached per index generation (a counter bumped by every write), so the portal's "next page" and repeated
queries do not rescan.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import operator
import sqlite3
import threading
import time
import zlib
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from search.backend import (
    FACETS,
    LONE_SURROGATE,
    MAX_WINDOW,
    TOKEN,
    Hit,
    ParsedQuery,
    RecordDoc,
    SearchError,
    SearchQuery,
    SearchResult,
    code_key,
    highlight,
    normalise,
    parse_query,
)
from search.documents import require_public

#: Bump when the tokenisation changes: the FTS index is then rebuilt from the stored documents.
TOKENISER_VERSION = "1"
SCHEMA_VERSION = "2"
FTS_COLUMNS = ("code", "title", "creator", "body", "text", "uni_meta", "uni_text")
BM25_WEIGHTS = (8.0, 5.0, 2.0, 2.0, 1.0, 3.0, 0.5)
FORMAT_SEP = "\x1f"
#: Most matches (after filters) ranked and counted per query; beyond it the total is a lower bound
#: (``total_exact`` false) and facets count the scanned matches. Equal to ``RANK_LIMIT``, so every scanned
#: text match is ranked: a broad query (a common word in most records) costs ~2,000 rows, not 10,000.
SCAN_LIMIT = 2_000
#: Most text matches ranked by bm25 per query (bm25 costs several µs a row).
RANK_LIMIT = 2_000
EXACT_CODE = -20_000.0
CODE_PREFIX = -10_000.0
CACHE_SIZE = 64
_SCAN_COLUMNS = "f.archive, f.level, f.fonds, f.decade, f.retention, f.formats, f.date_sort, f.date_asc"
_FACET_COLUMNS = (
    ("archive", "archive"),
    ("level", "level"),
    ("fonds", "fonds"),
    ("year", "decade"),
    ("retention", "retention"),
    ("format", "formats"),
)
BUSY_MS = 60_000

# Per connection: the matches of the query being answered (see ``_ranked``).
_TEMP = """CREATE TEMP TABLE IF NOT EXISTS hits (
    rowid INTEGER PRIMARY KEY, score REAL, archive TEXT, level TEXT, fonds TEXT, decade TEXT, retention TEXT,
    formats TEXT, date_sort TEXT, date_asc TEXT
)"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS docs (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    code_key TEXT NOT NULL,
    archive TEXT NOT NULL,
    archival_code TEXT NOT NULL,
    title TEXT NOT NULL,
    creator TEXT,
    date_text TEXT,
    date_start TEXT,
    date_end TEXT,
    level TEXT,
    fonds TEXT,
    retention TEXT,
    language TEXT,
    description TEXT,
    keywords TEXT NOT NULL,
    formats TEXT NOT NULL,
    puids TEXT NOT NULL,
    text_truncated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS docs_code_key ON docs (code_key);
CREATE TABLE IF NOT EXISTS facets (
    rowid INTEGER PRIMARY KEY,
    archive TEXT NOT NULL,
    level TEXT,
    fonds TEXT,
    decade TEXT,
    retention TEXT,
    year_start INTEGER,
    year_end INTEGER,
    date_sort TEXT NOT NULL,  -- ISO date, '' when unknown (sorts last descending)
    date_asc TEXT NOT NULL,   -- ISO date, '~' when unknown (sorts last ascending)
    formats TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS facets_date ON facets (date_sort);
CREATE INDEX IF NOT EXISTS facets_date_asc ON facets (date_asc);
CREATE INDEX IF NOT EXISTS facets_archive ON facets (archive, date_sort);
-- (filter, date_sort): a filtered browse pages newest first straight from the index, no sort of the matches
CREATE INDEX IF NOT EXISTS facets_level_date ON facets (level, date_sort);
CREATE INDEX IF NOT EXISTS facets_fonds_date ON facets (fonds, date_sort);
CREATE INDEX IF NOT EXISTS facets_decade ON facets (decade);
CREATE INDEX IF NOT EXISTS facets_retention_date ON facets (retention, date_sort);
DROP INDEX IF EXISTS facets_level;
DROP INDEX IF EXISTS facets_fonds;
DROP INDEX IF EXISTS facets_retention;
CREATE INDEX IF NOT EXISTS facets_formats ON facets (formats);
CREATE TABLE IF NOT EXISTS formats (
    value TEXT NOT NULL,
    rowid INTEGER NOT NULL,
    PRIMARY KEY (value, rowid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS formats_rowid ON formats (rowid);
CREATE TABLE IF NOT EXISTS facet_counts (
    facet TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (facet, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS texts (rowid INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    {", ".join(FTS_COLUMNS)}, content='', columnsize=1, tokenize='unicode61 remove_diacritics 2'
);
"""


# -- tokenisation -----------------------------------------------------------------------------------------


def tokens(text: str | None, uni: set[str] | None = None) -> list[str]:
    """Index tokens of ``text``: bigrams for CJK runs, whole words otherwise; CJK characters go to ``uni``."""
    return _split(normalise(text), uni) if text else []


def _split(folded: str, uni: set[str] | None) -> list[str]:
    """:func:`tokens` of text already normalised."""
    out: list[str] = []
    for run, word in TOKEN.findall(folded):
        if not run:
            out.append(word)
            continue
        if uni is not None:
            uni.update(run)
        if len(run) == 1:
            out.append(run)
        else:
            out += map(operator.add, run, run[1:])
    return out


def fts_values(doc: RecordDoc) -> tuple[str, ...]:
    """The seven FTS column values of a document (deterministic: also used to delete it)."""
    meta_chars: set[str] = set()
    text_chars: set[str] = set()
    body = "\n".join(filter(None, [doc.description, *doc.keywords]))
    fields = [doc.archival_code, doc.title, doc.creator or "", body, doc.text]
    joined = "\0".join(fields)
    # One normalisation for the five texts: NUL is a starter that NFKC and case folding keep and nothing
    # composes with, so the joined text folds field by field (a field holding NUL itself: one by one).
    if joined.count("\0") == len(fields) - 1:
        fields = normalise(joined).split("\0")
    else:
        fields = [normalise(f) for f in fields]
    code, title, creator, body, text = fields
    return (
        " ".join(_split(code, meta_chars)),
        " ".join(_split(title, meta_chars)),
        " ".join(_split(creator, meta_chars)),
        " ".join(_split(body, meta_chars)),
        " ".join(_split(text, text_chars)),
        " ".join(sorted(meta_chars)),
        " ".join(sorted(text_chars)),
    )


def _phrase(toks: Sequence[str]) -> str:
    # Tokens hold letters and digits only (see TOKEN), so quoting cannot be broken out of; doubled quotes
    # are FTS5's escape, kept as a second line of defence.
    return '"' + " ".join(t.replace('"', '""') for t in toks) + '"'


def match_expression(parsed: ParsedQuery) -> str | None:
    """The FTS5 MATCH expression of a parsed query, or None when the query has nothing searchable."""
    clauses: list[str] = []
    for term in parsed.terms:
        words: list[str] = []
        for part in term.parts:
            if not part.cjk:
                words.append(part.text)
                continue
            if words:
                clauses.append(_phrase(words))
                words = []
            if len(part.text) == 1:
                clauses.append(f"{{uni_meta uni_text}} : {_phrase([part.text])}")
            else:
                clauses.append(_phrase(tokens(part.text)))
        if words:
            clauses.append(_phrase(words))
    return " AND ".join(dict.fromkeys(clauses)) or None


# -- the backend ------------------------------------------------------------------------------------------


class EmbeddedBackend:
    """SearchBackend on SQLite FTS5. Thread-safe: a connection per thread; writers queue on SQLite's lock.

    ``durable=False`` is for a side file built from scratch and then copied into a live index with
    :meth:`replace_with` (a rebuild, a full harvest): no write-ahead log and no fsync (``journal_mode =
    MEMORY``, ``synchronous = OFF``), so a crash can leave it corrupt — it is thrown away, never served.
    """

    name = "embedded"

    def __init__(
        self,
        path: Path,
        *,
        scan_limit: int = SCAN_LIMIT,
        rank_limit: int = RANK_LIMIT,
        durable: bool = True,
    ) -> None:
        self.path = Path(path)
        self.durable = durable
        self.scan_limit = scan_limit
        self.rank_limit = rank_limit
        self._local = threading.local()
        self._ready = False
        self._cache: OrderedDict[tuple[Any, ...], tuple[int, dict[str, dict[str, int]]]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmbeddedBackend({str(self.path)!r})"

    # -- connections ------------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            con.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            if self.durable:
                con.execute("PRAGMA journal_mode = WAL")
                # FULL: the indexer marks outbox rows done after our commit, so a commit must survive power
                # loss.
                con.execute("PRAGMA synchronous = FULL")
            else:
                con.execute("PRAGMA journal_mode = MEMORY")
                con.execute("PRAGMA synchronous = OFF")
            con.execute("PRAGMA temp_store = MEMORY")
            con.execute("PRAGMA cache_size = -65536")
            con.execute("PRAGMA mmap_size = 268435456")
            con.execute(_TEMP)
            self._local.con = con
        if not self._ready:
            self._ready = True
            try:
                self._prepare(con)
            except BaseException:
                self._ready = False
                raise
        return con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute(
                "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT (key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def replace_with(self, built: Path) -> None:
        """Make this index a copy of the index file ``built`` (a side file: closed, never served), with
        SQLite's online backup API in one write transaction: readers in WAL mode keep their snapshot until
        it commits and see the new index after; the live file is never renamed under open connections
        (renaming a WAL database under live readers can pair it with the wrong ``-wal`` file). The copy
        gets a new generation number, so every process's result cache is stale."""
        if not Path(built).is_file():  # connecting would create an empty index and copy that
            raise SearchError(variant="copy_missing", built=built, path=self.path)
        self.ensure_ready()  # the live file exists and has our schema
        source = sqlite3.connect(built, isolation_level=None)
        target = sqlite3.connect(self.path, timeout=BUSY_MS / 1000)
        try:
            source.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(time.time_ns()),))
            source.backup(target)
        except sqlite3.Error as exc:
            raise SearchError(variant="copy_failed", built=built, path=self.path, reason=exc) from exc
        finally:
            target.close()
            source.close()

    def remove_files(self) -> None:
        """Close and delete this index's files (a side file that was copied or is being thrown away)."""
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(self.path) + suffix).unlink()

    def _prepare(self, con: sqlite3.Connection) -> None:
        con.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";\n"):
                if statement.strip():
                    con.execute(statement)
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("tokeniser") != TOKENISER_VERSION and "tokeniser" in meta:
                self._rebuild_fts(con)
            if meta.get("schema") != SCHEMA_VERSION:
                self._recount(con)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('tokeniser', ?)", (TOKENISER_VERSION,))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            con.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            con.execute("ROLLBACK")
            raise SearchError(variant="prepare", path=self.path, reason=exc) from exc

    @staticmethod
    def _recount(con: sqlite3.Connection) -> None:
        """Rebuild the ``facet_counts`` summary from ``facets``."""
        con.execute("DELETE FROM facet_counts")
        for facet, column in _FACET_COLUMNS:
            if facet != "format":
                con.execute(
                    f"INSERT INTO facet_counts SELECT '{facet}', {column}, count(*) FROM facets "
                    f"WHERE {column} IS NOT NULL GROUP BY {column}"
                )
        names: Counter[str] = Counter()
        for value, n in con.execute("SELECT formats, count(*) FROM facets GROUP BY formats"):
            for name in value.split(FORMAT_SEP) if value else ():
                names[name] += n
        con.executemany("INSERT INTO facet_counts VALUES ('format', ?, ?)", names.items())

    def _rebuild_fts(self, con: sqlite3.Connection) -> None:
        con.execute("INSERT INTO fts (fts) VALUES ('delete-all')")
        for rowid in [r[0] for r in con.execute("SELECT rowid FROM docs")]:
            doc = self._load(con, rowid)
            con.execute(self._fts_insert, (rowid, *fts_values(doc)))

    # -- writing ----------------------------------------------------------------------------------------

    _fts_insert = f"INSERT INTO fts (rowid, {', '.join(FTS_COLUMNS)}) VALUES (?, {', '.join('?' * 7)})"
    _fts_delete = (
        f"INSERT INTO fts (fts, rowid, {', '.join(FTS_COLUMNS)}) VALUES ('delete', ?, {', '.join('?' * 7)})"
    )

    def ensure_ready(self) -> None:
        try:
            self._conn().execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise SearchError(variant="unusable", path=self.path, reason=exc) from exc

    def index(self, docs: Iterable[RecordDoc]) -> int:
        """Add or replace ``docs`` in one transaction, a statement per table for the whole batch (a document
        given twice is stored as its last version)."""
        batch = require_public(docs)
        if not batch:
            return 0
        latest = list({doc.id: doc for doc in batch}.values())
        with self._write() as con:
            ids = [doc.id for doc in latest]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                old = con.execute(f"SELECT rowid FROM docs WHERE id IN ({_marks(chunk)})", chunk).fetchall()
                for (rowid,) in old:
                    self._remove(con, rowid)
            self._insert(con, latest)
        return len(batch)

    def _insert(self, con: sqlite3.Connection, batch: Sequence[RecordDoc]) -> None:
        first = int(con.execute("SELECT coalesce(max(rowid), 0) + 1 FROM docs").fetchone()[0])
        docs: list[tuple[Any, ...]] = []
        facets: list[tuple[Any, ...]] = []
        formats: list[tuple[str, int]] = []
        texts: list[tuple[int, bytes]] = []
        fts: list[tuple[Any, ...]] = []
        bumps: Counter[tuple[str, str]] = Counter()
        for rowid, doc in enumerate(batch, first):
            start = _iso(doc.date_start)
            names = sorted(set(doc.formats))
            docs.append(
                (
                    rowid, doc.id, code_key(doc.archival_code), doc.archive, doc.archival_code, doc.title,
                    doc.creator, doc.date_text, start, _iso(doc.date_end), doc.archive_level, doc.fonds,
                    doc.retention, doc.language, doc.description,
                    _json_list(doc.keywords), _json_list(doc.formats), _json_list(doc.puids),
                    int(doc.text_truncated),
                )
            )  # fmt: skip
            facets.append(
                (rowid, doc.archive, doc.archive_level, doc.fonds, doc.decade, doc.retention, doc.year_start,
                 doc.year_end, start or "", start or "~", FORMAT_SEP.join(names))
            )  # fmt: skip
            bumps.update(_facet_values(doc, names))
            formats += [(v, rowid) for v in {*doc.formats, *doc.puids}]
            if doc.text:
                texts.append((rowid, zlib.compress(doc.text.encode(), 6)))
            fts.append((rowid, *fts_values(doc)))
        con.executemany(
            "INSERT INTO docs (rowid, id, code_key, archive, archival_code, title, creator, date_text, "
            "date_start, date_end, level, fonds, retention, language, description, keywords, formats, puids, "
            "text_truncated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            docs,
        )
        con.executemany(
            "INSERT INTO facets (rowid, archive, level, fonds, decade, retention, year_start, year_end, "
            "date_sort, date_asc, formats) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            facets,
        )
        self._bump(con, bumps)
        con.executemany("INSERT OR IGNORE INTO formats (value, rowid) VALUES (?, ?)", formats)
        con.executemany("INSERT INTO texts (rowid, body) VALUES (?, ?)", texts)
        con.executemany(self._fts_insert, fts)

    def _load(self, con: sqlite3.Connection, rowid: int) -> RecordDoc:
        row = con.execute(
            "SELECT d.id, d.archive, d.level, d.archival_code, d.title, d.creator, d.fonds, d.date_text, "
            "d.date_start, d.date_end, d.retention, d.language, d.description, d.keywords, d.formats, "
            "d.puids, d.text_truncated, t.body FROM docs d LEFT JOIN texts t ON t.rowid = d.rowid "
            "WHERE d.rowid = ?",
            (rowid,),
        ).fetchone()
        return RecordDoc(
            id=row[0], archive=row[1], archive_level=row[2], archival_code=row[3], title=row[4],
            access_status="open", creator=row[5], fonds=row[6], date_text=row[7],
            date_start=_date(row[8]), date_end=_date(row[9]), retention=row[10], language=row[11],
            description=row[12], keywords=tuple(json.loads(row[13])), formats=tuple(json.loads(row[14])),
            puids=tuple(json.loads(row[15])), text_truncated=bool(row[16]),
            text=zlib.decompress(row[17]).decode() if row[17] else "",
        )  # fmt: skip

    @staticmethod
    def _bump(con: sqlite3.Connection, deltas: Counter[tuple[str, str]]) -> None:
        con.executemany(
            "INSERT INTO facet_counts (facet, value, n) VALUES (?, ?, ?) "
            "ON CONFLICT (facet, value) DO UPDATE SET n = n + excluded.n",
            [(facet, value, n) for (facet, value), n in deltas.items()],
        )

    def _remove(self, con: sqlite3.Connection, rowid: int) -> None:
        doc = self._load(con, rowid)
        self._bump(con, Counter({k: -1 for k in _facet_values(doc, sorted(set(doc.formats)))}))
        con.execute(self._fts_delete, (rowid, *fts_values(doc)))
        for table in ("docs", "facets", "texts"):
            con.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
        con.execute("DELETE FROM formats WHERE rowid = ?", (rowid,))

    def delete(self, ids: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        removed = 0
        with self._write() as con:
            for doc_id in wanted:
                row = con.execute("SELECT rowid FROM docs WHERE id = ?", (doc_id,)).fetchone()
                if row:
                    self._remove(con, row[0])
                    removed += 1
        return removed

    def clear(self) -> None:
        with self._write() as con:
            con.execute("INSERT INTO fts (fts) VALUES ('delete-all')")
            for table in ("docs", "facets", "texts", "formats", "facet_counts"):
                con.execute(f"DELETE FROM {table}")

    def ids(self) -> set[str]:
        """Every document id in the index (for reconciliation and tests)."""
        return {r[0] for r in self._conn().execute("SELECT id FROM docs")}

    # -- searching --------------------------------------------------------------------------------------

    def _matches(self, parsed: ParsedQuery) -> tuple[str | None, str | None] | None:
        """(FTS5 expression, code key) of the query text; None when there is no text (browse)."""
        if not parsed.terms and not parsed.code:
            return None
        return match_expression(parsed), code_key(parsed.code) if parsed.code else None

    @staticmethod
    def _filters(query: SearchQuery) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for column, wanted in (
            ("archive", query.archives),
            ("level", query.levels),
            ("fonds", query.fonds),
            ("retention", query.retentions),
            ("formats", query.formats),
        ):
            if not wanted:
                continue
            # A value holding a lone surrogate equals nothing stored (SQLite cannot even take it): dropped,
            # so a filter made only of such values matches nothing.
            values = [v for v in wanted if not LONE_SURROGATE.search(v)]
            if not values:
                where.append("0")
            elif column == "formats":
                where.append(f"f.rowid IN (SELECT rowid FROM formats WHERE value IN ({_marks(values)}))")
            else:
                where.append(f"f.{column} IN ({_marks(values)})")
            params += values
        if query.year_from is not None:
            where.append("f.year_end >= ?")
            params.append(query.year_from)
        if query.year_to is not None:
            where.append("f.year_start <= ?")
            params.append(query.year_to)
        return (" AND ".join(where) or "1"), params

    def _generation(self, con: sqlite3.Connection) -> str:
        row = con.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return str(row[0]) if row else "0"

    @staticmethod
    def _facet_rows(rows: Iterable[tuple[str, str | None, int]]) -> dict[str, dict[str, int]]:
        counters: dict[str, Counter[str]] = {k: Counter() for k in FACETS}
        for facet, value, n in rows:
            if value is None:
                continue
            if facet == "format":
                for name in value.split(FORMAT_SEP) if value else ():
                    counters["format"][name] += n
            else:
                counters[facet][value] += n
        return {k: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for k, c in counters.items()}

    def _cache_get(self, key: tuple[Any, ...]) -> Any:
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _cache_put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    def search(self, query: SearchQuery) -> SearchResult:
        try:
            return self._search(query)
        except sqlite3.OperationalError as exc:
            raise SearchError(variant="query", reason=exc) from exc

    def _search(self, query: SearchQuery) -> SearchResult:
        con = self._conn()
        parsed = parse_query(query.q)
        matches = self._matches(parsed)
        if matches is None and query.q.strip():
            # Text with nothing searchable in it (only punctuation, emoji…): it matches nothing.
            return SearchResult(0, [], {k: {} for k in FACETS}, query.page, query.size)
        where, fparams = self._filters(query)
        con.execute("BEGIN")  # one snapshot for counting and paging
        try:
            generation = self._generation(con)
            if matches is None:
                total, exact, facets, page = self._browse(con, generation, query, where, fparams)
            else:
                total, exact, facets, page = self._ranked(con, generation, query, matches, where, fparams)
            hits = self._hits(con, page, parsed if query.highlight else None)
        finally:
            con.execute("COMMIT")
        if not query.facets:
            facets = {k: {} for k in FACETS}
        return SearchResult(total, hits, facets, query.page, query.size, exact)

    def _browse(
        self, con: sqlite3.Connection, generation: str, query: SearchQuery, where: str, fparams: list[Any]
    ) -> tuple[int, bool, dict[str, dict[str, int]], list[tuple[int, float]]]:
        """No query text: counts from the ``facet_counts`` summary (no filter) or a bounded scan (filters);
        pages straight from the date indexes."""
        key = ("browse", generation, where, tuple(fparams))
        counted = self._cache_get(key)
        if counted is None:
            if where == "1":  # no filter at all
                rows = con.execute("SELECT facet, value, n FROM facet_counts WHERE n > 0").fetchall()
                total = sum(n for facet, _, n in rows if facet == "archive")
                counted = (total, True, self._facet_rows(rows))
            else:
                found = con.execute(
                    f"SELECT f.rowid, NULL, {_SCAN_COLUMNS} FROM facets f WHERE {where} LIMIT ?",
                    [*fparams, self.scan_limit + 1],
                ).fetchall()
                total, exact, facets, _ = self._count(found)
                counted = (total, exact, facets)
            self._cache_put(key, counted)
        total, exact, facets = counted
        size = max(0, min(query.size, min(total, MAX_WINDOW) - query.offset))
        page: list[tuple[int, float]] = []
        if size:
            order = (
                "f.date_asc ASC, f.rowid ASC"
                if query.sort == "date_asc"
                else "f.date_sort DESC, f.rowid DESC"
            )
            page = [
                (r[0], 0.0)
                for r in con.execute(
                    f"SELECT f.rowid FROM facets f WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                    [*fparams, size, query.offset],
                )
            ]
        return total, exact, facets, page

    def _count(
        self, found: list[tuple[Any, ...]]
    ) -> tuple[int, bool, dict[str, dict[str, int]], list[tuple[Any, ...]]]:
        """Total and facets of scanned rows ``(rowid, score, archive, level, fonds, decade, retention, formats,
        date_sort, date_asc)``; the rows are cut to ``scan_limit``."""
        exact = len(found) <= self.scan_limit
        found = found[: self.scan_limit]
        columns = list(zip(*found, strict=True)) if found else [()] * 10
        counters: dict[str, Counter[str]] = {}
        for i, (facet, _) in enumerate(_FACET_COLUMNS):
            counters[facet] = Counter(columns[i + 2])
        formats: Counter[str] = Counter()
        for value, n in counters.pop("format").items():
            for name in value.split(FORMAT_SEP) if value else ():
                formats[name] += n
        counters["format"] = formats
        facets = {
            k: dict(
                sorted(
                    ((v, n) for v, n in counters[k].items() if v is not None), key=lambda kv: (-kv[1], kv[0])
                )
            )
            for k in FACETS
        }
        return len(found), exact, facets, found

    def _ranked(
        self,
        con: sqlite3.Connection,
        generation: str,
        query: SearchQuery,
        matches: tuple[str | None, str | None],
        where: str,
        fparams: list[Any],
    ) -> tuple[int, bool, dict[str, dict[str, int]], list[tuple[int, float]]]:
        """Query text. Bounded work whatever the query:

        1. the first ``scan_limit`` matches that pass the filters go into the temporary table ``hits`` (code
           prefix matches first, with a score above any text match); for relevance with ``rank_limit`` ≥
           ``scan_limit`` (the default) their ``bm25`` is computed in the same pass;
        2. total and facets are counted from those rows;
        3. otherwise, for relevance, ``bm25`` is computed for the first ``rank_limit`` text matches only (bm25
           costs several µs a row); any others follow them unranked, in index order.

        The ordered ids are cached per index generation, so later pages are slices.
        """
        expr, code = matches
        key = ("ranked", generation, expr, code, where, tuple(fparams), query.sort)
        scanned = self._cache_get(key)
        if scanned is None:
            scanned = self._scan(con, expr, code, where, fparams, query.sort)
            self._cache_put(key, scanned)
        total, exact, facets, rowids, scores = scanned
        end = min(len(rowids), MAX_WINDOW, query.offset + query.size)
        page = [(rowids[i], scores[i]) for i in range(query.offset, end)]
        return total, exact, facets, page

    def _scan(
        self,
        con: sqlite3.Connection,
        expr: str | None,
        code: str | None,
        where: str,
        fparams: list[Any],
        sort: str,
    ) -> tuple[int, bool, dict[str, dict[str, int]], array[int], array[float]]:
        limit = self.scan_limit + 1
        insert = f"INSERT OR IGNORE INTO temp.hits (rowid, score, {_SCAN_COLUMNS.replace('f.', '')}) "
        con.execute("DELETE FROM temp.hits")
        try:
            if code:
                con.execute(
                    f"{insert} SELECT d.rowid, CASE WHEN d.code_key = ? THEN {EXACT_CODE} ELSE {CODE_PREFIX} END, "
                    f"{_SCAN_COLUMNS} FROM docs d CROSS JOIN facets f ON f.rowid = d.rowid "
                    f"WHERE d.code_key >= ? AND d.code_key < ? AND {where} LIMIT ?",
                    [code, code, code + "\\U0010ffff", *fparams, limit],
                )
            found = con.execute("SELECT count(*) FROM temp.hits").fetchone()[0]
            weights = ", ".join(str(x) for x in BM25_WEIGHTS)
            # Every match scanned can be ranked (the default): bm25 in the same pass, evaluated only for the
            # rows that pass the filters, instead of a second MATCH over the same rows.
            inline = sort == "relevance" and self.rank_limit >= self.scan_limit
            if expr and found < limit:
                # CROSS JOIN keeps the FTS match as the outer loop (else SQLite may run MATCH per row).
                score = f"bm25(fts, {weights})" if inline else "NULL"
                con.execute(
                    f"{insert} SELECT fts.rowid, {score}, {_SCAN_COLUMNS} FROM fts "
                    f"CROSS JOIN facets f ON f.rowid = fts.rowid WHERE fts MATCH ? AND {where} LIMIT ?",
                    [expr, *fparams, limit - found],
                )
            rows = con.execute(
                f"SELECT rowid, score, {_SCAN_COLUMNS.replace('f.', '')} FROM temp.hits"
            ).fetchall()
            total, exact, facets, rows = self._count(rows)
            scores: dict[int, float] = {r[0]: r[1] for r in rows if r[1] is not None}
            if sort == "relevance" and expr and rows and not inline:
                unranked = sorted(r[0] for r in rows if r[1] is None)[: self.rank_limit]
                if unranked:
                    # "+rowid" keeps the IN test away from FTS5 (which would run one MATCH per value), so
                    # bm25 is computed only for rows that are in ``hits``.
                    for rowid, score in con.execute(
                        f"SELECT rowid, bm25(fts, {weights}) FROM fts WHERE fts MATCH ? AND rowid <= ? "
                        "AND +rowid IN (SELECT rowid FROM temp.hits WHERE score IS NULL)",
                        (expr, unranked[-1]),
                    ):
                        scores.setdefault(rowid, score)
        finally:
            con.execute("DELETE FROM temp.hits")
        if sort == "relevance":
            rows.sort(key=lambda r: (scores.get(r[0], 1e300), r[0]))
        elif sort == "date_desc":
            rows.sort(key=lambda r: (r[8], r[0]), reverse=True)
        else:
            rows.sort(key=lambda r: (r[9], r[0]))
        return (
            total,
            exact,
            facets,
            array("q", (r[0] for r in rows)),
            array("d", (scores.get(r[0], 0.0) for r in rows)),
        )

    def _hits(
        self, con: sqlite3.Connection, rows: list[tuple[int, float]], parsed: ParsedQuery | None
    ) -> list[Hit]:
        if not rows:
            return []
        rowids = [r[0] for r in rows]
        found = {
            r[0]: r
            for r in con.execute(
                "SELECT rowid, id, archive, archival_code, title, creator, date_text, level, fonds, "
                f"retention, formats, description, keywords FROM docs WHERE rowid IN ({_marks(rowids)})",
                rowids,
            )
        }
        texts: dict[int, bytes] = {}
        if parsed is not None and not parsed.empty:
            texts = dict(
                con.execute(
                    f"SELECT rowid, body FROM texts WHERE rowid IN ({', '.join('?' * len(rowids))})", rowids
                )
            )
        needles = {part.text for term in parsed.terms for part in term.parts} if parsed is not None else set()
        hits = []
        for rowid, score in rows:
            r = found[rowid]
            marks: dict[str, list[str]] = {}
            if parsed is not None and not parsed.empty:
                keywords = json.loads(r[12])
                fields: list[tuple[str, str | None, bool]] = [
                    ("title", r[4], True),
                    ("archival_code", r[3], True),
                    ("creator", r[5], True),
                    ("description", r[11], False),
                    ("keywords", "；".join(keywords), True),
                ]
                if rowid in texts:
                    fields.append(("text", zlib.decompress(texts[rowid]).decode(), False))
                for name, value, whole in fields:
                    # the shared highlighter folds character by character (slow on file text): skip fields
                    # that cannot match, as the Elasticsearch backend does
                    folded = normalise(value) if value else ""
                    snippets = (
                        highlight(value, parsed, whole=whole) if any(n in folded for n in needles) else []
                    )
                    if name == "archival_code" and parsed.code and code_key(r[3]).startswith(parsed.code):
                        n = len(parsed.code)
                        snippets = [f"<mark>{html.escape(r[3][:n])}</mark>{html.escape(r[3][n:])}"]
                    if snippets:
                        marks[name] = snippets
            hits.append(
                Hit(
                    id=r[1], archive=r[2], archival_code=r[3], title=r[4], creator=r[5], date=r[6],
                    score=round(-float(score), 4) if score else 0.0, level=r[7], fonds=r[8], retention=r[9],
                    formats=tuple(json.loads(r[10])), highlights=marks,
                )
            )  # fmt: skip
        return hits

    def count(self, query: SearchQuery | None = None) -> int:
        if query is None:
            return int(self._conn().execute("SELECT count(*) FROM docs").fetchone()[0])
        return self.search(SearchQuery(**{**_fields(query), "size": 1, "highlight": False})).total


def _facet_values(doc: RecordDoc, formats: Iterable[str]) -> list[tuple[str, str]]:
    """The ``facet_counts`` keys a document counts in (``formats``: its format names, sorted and distinct)."""
    values = [("archive", doc.archive), ("level", doc.archive_level), ("fonds", doc.fonds),
              ("year", doc.decade), ("retention", doc.retention), *(("format", f) for f in formats)]  # fmt: skip
    return [(facet, value) for facet, value in values if value is not None]


def _json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False) if values else "[]"


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _fields(query: SearchQuery) -> dict[str, Any]:
    return {k: getattr(query, k) for k in query.__dataclass_fields__}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None
