"""The OAI-PMH 2.0 repository of this node (``/oai``): the protocol's six verbs over the open records.

The route (:mod:`access_portal.routes.oai`) hands the request's arguments to :func:`respond`, which answers
with a complete OAI-PMH document (protocol errors included: they are answers, not exceptions, and always
come with HTTP 200 as the protocol says). Choices where the protocol leaves them open:

- **What is shown.** Only records whose status passes :func:`archive.access.is_public`, with their metadata;
  a record that was public once (``Record.public_changed_at`` is set) and is not open now — closed again,
  withdrawn — is a *deleted* record (``deletedRecord=persistent``): its header only, ``status="deleted"``,
  in ListRecords, ListIdentifiers and GetRecord, never its metadata. A record never public does not exist
  here (``idDoesNotExist``), exactly like a record that does not exist at all.
- **Datestamps** are the record's last public change (``public_changed_at``), at seconds granularity;
  ``from``/``until`` are inclusive and may be days or seconds (both of one kind).
- **Identifiers**: ``oai:<ARCHIVE_OAI_REPOSITORY_ID, default pearl-node>:<ARCHIVE>/<档号 percent-encoded (UTF-8)>``;
  ``repositoryName`` is ``ARCHIVE_OAI_REPOSITORY_NAME`` or the names of the archives on the node.
- **Sets**: ``archive:<CODE>`` for each holding archive, ``archive:<CODE>:fonds:<全宗号>`` for each fonds with a
  record that was ever public; characters a setSpec cannot hold are written ``~XX`` (UTF-8 bytes in hex).
  A set holds the records of that archive (not of the archives under it) / that fonds.
- **Formats**: ``oai_dc`` and ``pearl_archive``, the native format with the Chinese archival fields
  (schema ``access_portal/static/oai/pearl_archive.xsd``, served at ``/oai/pearl_archive.xsd``; described
  in docs/oai.md).
- **Resumption tokens** are stateless: the list's arguments, the last record id sent, the cursor, the
  complete list size and an expiry (``ARCHIVE_OAI_TOKEN_TTL``), signed with HMAC-SHA256 by a key kept in
  ``$ARCHIVE_HOME/oai-token.key`` (made on first use, mode 0600). Lists are in record-id order, so a page
  never repeats or skips a record that stays put; a record that changes during a harvest has a datestamp
  after the harvest began, so the next incremental harvest (``from`` = this one's first responseDate)
  picks it up. ``completeListSize`` is counted when the list starts.
- Page size: ``ARCHIVE_OAI_PAGE_SIZE`` (default 500).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session, aliased

from access_portal.schemas import record_url
from access_portal.services import PUBLIC_STATUSES
from archive.access import is_public
from archive.config import Settings
from archive.errors import (
    OaiBadArgument,
    OaiBadResumptionToken,
    OaiBadVerb,
    OaiCannotDisseminateFormat,
    OaiError,
    OaiIdDoesNotExist,
    OaiNoRecordsMatch,
)
from archive.models import Archive, Fonds, Record

NS_OAI = "http://www.openarchives.org/OAI/2.0/"
NS_OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_PEARL = "urn:pearl-archive:oai:record:1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NATIVE_PREFIX = "pearl_archive"
NATIVE_SCHEMA_PATH = Path(__file__).resolve().parent / "static" / "oai" / "pearl_archive.xsd"

VERBS = ("Identify", "ListMetadataFormats", "ListSets", "GetRecord", "ListIdentifiers", "ListRecords")
#: Arguments each verb takes: (required, optional, exclusive).
_ARGS: dict[str, tuple[frozenset[str], frozenset[str], str | None]] = {
    "Identify": (frozenset(), frozenset(), None),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"}), None),
    "ListSets": (frozenset(), frozenset(), "resumptionToken"),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset(), None),
    "ListIdentifiers": (
        frozenset({"metadataPrefix"}),
        frozenset({"from", "until", "set"}),
        "resumptionToken",
    ),
    "ListRecords": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"}), "resumptionToken"),
}
_PREFIX_SYNTAX = re.compile(r"^[A-Za-z0-9\-_.!~*'()]+$")
_SET_SYNTAX = re.compile(r"^[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*$")
_SET_CHAR = re.compile(r"[A-Za-z0-9\-_.!*'()]")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
#: Characters XML 1.0 cannot carry (control characters but tab/newline/CR, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_KEYWORD_SPLIT = re.compile(r"[；;，,]")
_MAX_ARG_CHARS = 2048


def _x(text: object) -> str:
    """Text content, escaped and stripped of what XML cannot carry (the common case — nothing to strip,
    nothing to escape — costs three scans, no copy: this runs a dozen times per record)."""
    t = str(text)
    if _NOT_XML.search(t):
        t = _NOT_XML.sub("", t)
    if "&" in t:
        t = t.replace("&", "&amp;")
    if "<" in t:
        t = t.replace("<", "&lt;")
    if ">" in t:
        t = t.replace(">", "&gt;")
    return t


def _a(text: object) -> str:
    """An attribute value (without its quotes)."""
    t = _x(text)
    return t.replace('"', "&quot;") if '"' in t else t


def _utc(value: dt.datetime) -> dt.datetime:
    """The catalogue's datetimes in UTC (SQLite hands them back without a zone; they were written in UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def datestamp(value: dt.datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- identifiers and sets ---------------------------------------------------------------------------------


def repository_id(settings: Settings) -> str:
    return settings.oai_repository_id


def make_identifier(settings: Settings, archive: str, code: str) -> str:
    return f"oai:{repository_id(settings)}:{archive}/{quote(code, safe='')}"


def parse_identifier(settings: Settings, identifier: str) -> tuple[str, str] | None:
    prefix = f"oai:{repository_id(settings)}:"
    if not identifier.startswith(prefix):
        return None
    archive, sep, code = identifier[len(prefix) :].partition("/")
    if not sep or not archive or not code:
        return None
    try:
        return archive, unquote(code, errors="strict")
    except UnicodeDecodeError:
        return None


def set_part(code: str) -> str:
    """A code as a setSpec part: characters a setSpec cannot hold (and ``~``) as ``~XX`` per UTF-8 byte."""
    return "".join(
        ch if _SET_CHAR.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode()) for ch in code
    )


def set_spec(archive: str, fonds: str | None = None) -> str:
    spec = f"archive:{set_part(archive)}"
    return f"{spec}:fonds:{set_part(fonds)}" if fonds else spec


# -- resumption tokens ------------------------------------------------------------------------------------


def token_key(settings: Settings) -> bytes:
    """The node's token key, made on first use (``O_EXCL``, so two processes starting at once agree)."""
    path = settings.oai_secret_file
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
        fh.flush()
        os.fsync(fh.fileno())
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class ListArgs:
    verb: str
    prefix: str
    start: dt.datetime | None  # inclusive
    stop: dt.datetime | None  # exclusive (until + its granularity)
    set: str | None
    after_id: int = 0
    cursor: int = 0
    size: int | None = None  # completeListSize, counted when the list started


def encode_token(key: bytes, args: ListArgs, expires: dt.datetime) -> str:
    body = {
        "v": args.verb,
        "p": args.prefix,
        "f": args.start.timestamp() if args.start else None,
        "u": args.stop.timestamp() if args.stop else None,
        "s": args.set,
        "k": args.after_id,
        "c": args.cursor,
        "n": args.size,
        "e": int(expires.timestamp()),
    }
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def decode_token(key: bytes, token: str, verb: str, now: dt.datetime) -> ListArgs:
    """The list a token continues, or :class:`OaiBadResumptionToken` (forged, altered, expired, other verb)."""
    try:
        payload_text, mac_text = token.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, UnicodeEncodeError):
        raise OaiBadResumptionToken("malformed") from None
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()[:16]):
        raise OaiBadResumptionToken("foreign") from None
    try:
        body = json.loads(payload)
        if body["v"] != verb:
            raise OaiBadResumptionToken("other_verb", issued_for=body["v"], verb=verb)
        if body["e"] < now.timestamp():
            raise OaiBadResumptionToken("expired")
        return ListArgs(
            verb=body["v"],
            prefix=body["p"],
            start=dt.datetime.fromtimestamp(body["f"], dt.UTC) if body["f"] is not None else None,
            stop=dt.datetime.fromtimestamp(body["u"], dt.UTC) if body["u"] is not None else None,
            set=body["s"],
            after_id=int(body["k"]),
            cursor=int(body["c"]),
            size=int(body["n"]) if body["n"] is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OaiBadResumptionToken("malformed") from exc


# -- the request ------------------------------------------------------------------------------------------


def _bad(argument: str, variant: str, **details: str) -> OaiBadArgument:
    """badArgument for ``argument``; ``variant`` names the situation's text in ``archive/codes/oai.toml``."""
    return OaiBadArgument(variant=variant, argument=argument, **details)


def parse_args(pairs: Sequence[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """The verb and its arguments, checked against what the verb takes (badVerb / badArgument)."""
    verbs = [v for k, v in pairs if k == "verb"]
    if len(verbs) != 1 or verbs[0] not in VERBS:
        shown = verbs[0][:64] if len(verbs) == 1 else ("repeated" if verbs else "missing")
        raise OaiBadVerb(verb=shown)
    verb = verbs[0]
    args: dict[str, str] = {}
    for k, v in pairs:
        if k == "verb":
            continue
        if k in args:
            raise _bad(k, "repeated")
        if len(v) > _MAX_ARG_CHARS or _NOT_XML.search(v):
            raise _bad(k, "unsafe")
        args[k] = v
    required, optional, exclusive = _ARGS[verb]
    if exclusive and exclusive in args:
        if len(args) > 1:
            raise _bad(exclusive, "token_alone")
        return verb, args
    unknown = sorted(set(args) - required - optional)
    if unknown:
        raise _bad(unknown[0], "not_taken", verb=verb)
    missing = sorted(required - set(args))
    if missing:
        raise _bad(missing[0], "missing")
    if "metadataPrefix" in args and not _PREFIX_SYNTAX.match(args["metadataPrefix"]):
        raise _bad("metadataPrefix", "prefix_syntax")
    if "set" in args and not _SET_SYNTAX.match(args["set"]):
        raise _bad("set", "set_syntax")
    return verb, args


def _parse_time(name: str, value: str) -> tuple[dt.datetime, str]:
    try:
        if _DAY.match(value):
            return dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC), "day"
        if _SECOND.match(value):
            return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC), "second"
    except ValueError:
        pass
    raise _bad(name, "date_syntax")


def time_window(args: dict[str, str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``from`` (inclusive) and ``until`` as an exclusive bound, both of one granularity."""
    start = stop = None
    kinds = set()
    if "from" in args:
        start, kind = _parse_time("from", args["from"])
        kinds.add(kind)
    if "until" in args:
        until, kind = _parse_time("until", args["until"])
        kinds.add(kind)
        stop = until + (dt.timedelta(days=1) if kind == "day" else dt.timedelta(seconds=1))
    if len(kinds) > 1:
        raise _bad("from", "granularity")
    if start and stop and start >= stop:
        raise _bad("from", "from_after_until")
    return start, stop


# -- the catalogue ----------------------------------------------------------------------------------------

_Query = Select[*tuple[Any, ...]]
_F = aliased(Fonds)
_COLUMNS = (
    Record.id,
    Archive.code,
    Archive.name_zh,
    Archive.level,
    Record.archival_code,
    Record.access_status,
    Record.public_changed_at,
    _F.code,
    Record.title,
    Record.creator,
    Record.date_text,
    Record.retention,
    Record.description,
    Record.keywords,
    Record.language,
)


@dataclass(frozen=True)
class Row:
    id: int
    archive: str
    archive_name: str
    level: str
    code: str
    status: str
    changed: dt.datetime
    fonds: str | None
    title: str
    creator: str | None
    date: str | None
    retention: str | None
    description: str | None
    keywords: str | None
    language: str | None

    @property
    def deleted(self) -> bool:
        return not is_public(self.status)


def _base() -> _Query:
    return (
        select(*_COLUMNS)
        .join(Archive, Record.archive_id == Archive.id)
        .outerjoin(_F, Record.fonds_id == _F.id)
        .where(Record.public_changed_at.is_not(None))
    )


def _set_filter(query: _Query, spec: str | None) -> _Query | None:
    """``query`` kept to the set, or None when no such set can exist."""
    if spec is None:
        return query
    parts = spec.split(":")
    decoded = [_unset(p) for p in parts]
    if len(parts) == 2 and parts[0] == "archive" and decoded[1] is not None:
        return query.where(Archive.code == decoded[1])
    if (
        len(parts) == 4
        and parts[0] == "archive"
        and parts[2] == "fonds"
        and decoded[1] is not None
        and decoded[3] is not None
    ):
        return query.where(and_(Archive.code == decoded[1], _F.code == decoded[3]))
    return None


def _unset(part: str) -> str | None:
    try:
        raw = re.sub(r"~([0-9A-F]{2})", lambda m: "%" + m.group(1), part)
        return unquote(raw, errors="strict") if "~" not in raw else None
    except UnicodeDecodeError:
        return None


def _window(query: _Query, args: ListArgs) -> _Query:
    if args.start is not None:
        query = query.where(Record.public_changed_at >= args.start)
    if args.stop is not None:
        query = query.where(Record.public_changed_at < args.stop)
    return query


# -- rendering --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    settings: Settings
    base_url: str  # this endpoint, e.g. http://node/oai
    now: dt.datetime

    @property
    def node_url(self) -> str:
        return self.base_url.removesuffix("/oai")


def _header(ctx: Context, row: Row) -> str:
    sets = f"<setSpec>{_x(set_spec(row.archive))}</setSpec>"
    if row.fonds:
        sets += f"<setSpec>{_x(set_spec(row.archive, row.fonds))}</setSpec>"
    status = ' status="deleted"' if row.deleted else ""
    return (
        f"<header{status}><identifier>{_x(make_identifier(ctx.settings, row.archive, row.code))}</identifier>"
        f"<datestamp>{datestamp(row.changed)}</datestamp>{sets}</header>"
    )


def _keywords(row: Row) -> list[str]:
    return [k.strip() for k in _KEYWORD_SPLIT.split(row.keywords or "") if k.strip()]


def _oai_dc(ctx: Context, row: Row) -> str:
    out = [
        f'<oai_dc:dc xmlns:oai_dc="{NS_OAI_DC}" xmlns:dc="{NS_DC}" xmlns:xsi="{XSI}" '
        f'xsi:schemaLocation="{NS_OAI_DC} http://www.openarchives.org/OAI/2.0/oai_dc.xsd">',
        f"<dc:title>{_x(row.title)}</dc:title>",
    ]
    if row.creator:
        out.append(f"<dc:creator>{_x(row.creator)}</dc:creator>")
    out.extend(f"<dc:subject>{_x(k)}</dc:subject>" for k in _keywords(row))
    if row.description:
        out.append(f"<dc:description>{_x(row.description)}</dc:description>")
    out.append(f"<dc:publisher>{_x(row.archive_name)}</dc:publisher>")
    if row.date:
        out.append(f"<dc:date>{_x(row.date)}</dc:date>")
    out.append("<dc:type>archival record (档案)</dc:type>")
    out.append(f"<dc:identifier>{_x(row.archive)}/{_x(row.code)}</dc:identifier>")
    out.append(f"<dc:identifier>{_x(ctx.node_url + record_url(row.archive, row.code))}</dc:identifier>")
    if row.fonds:
        out.append(f"<dc:relation>全宗 {_x(row.fonds)}</dc:relation>")
    if row.language:
        out.append(f"<dc:language>{_x(row.language)}</dc:language>")
    out.append("</oai_dc:dc>")
    return "".join(out)


def _native(ctx: Context, row: Row) -> str:
    out = [
        f'<pa:record xmlns:pa="{NS_PEARL}" xmlns:xsi="{XSI}" '
        f'xsi:schemaLocation="{NS_PEARL} {_a(ctx.base_url)}/pearl_archive.xsd">',
        f'<pa:archive code="{_a(row.archive)}" level="{_a(row.level)}">{_x(row.archive_name)}</pa:archive>',
        f"<pa:archivalCode>{_x(row.code)}</pa:archivalCode>",
        f"<pa:title>{_x(row.title)}</pa:title>",
    ]
    if row.creator:
        out.append(f"<pa:creator>{_x(row.creator)}</pa:creator>")
    if row.date:
        out.append(f"<pa:date>{_x(row.date)}</pa:date>")
    if row.retention:
        out.append(f"<pa:retention>{_x(row.retention)}</pa:retention>")
    if row.fonds:
        out.append(f"<pa:fonds>{_x(row.fonds)}</pa:fonds>")
    if row.description:
        out.append(f"<pa:description>{_x(row.description)}</pa:description>")
    out.extend(f"<pa:keyword>{_x(k)}</pa:keyword>" for k in _keywords(row))
    if row.language:
        out.append(f"<pa:language>{_x(row.language)}</pa:language>")
    out.append(f"<pa:url>{_x(ctx.node_url + record_url(row.archive, row.code))}</pa:url>")
    out.append("</pa:record>")
    return "".join(out)


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    namespace: str

    def schema(self, ctx: Context) -> str:
        if self.prefix == "oai_dc":
            return "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
        return f"{ctx.base_url}/pearl_archive.xsd"

    def render(self, ctx: Context, row: Row) -> str:
        return _oai_dc(ctx, row) if self.prefix == "oai_dc" else _native(ctx, row)


FORMATS = {
    "oai_dc": MetadataFormat("oai_dc", NS_OAI_DC),
    NATIVE_PREFIX: MetadataFormat(NATIVE_PREFIX, NS_PEARL),
}


def _format(prefix: str) -> MetadataFormat:
    fmt = FORMATS.get(prefix)
    if fmt is None:
        raise OaiCannotDisseminateFormat(prefix)
    return fmt


def _record(ctx: Context, row: Row, fmt: MetadataFormat) -> str:
    if row.deleted:  # never its metadata
        return f"<record>{_header(ctx, row)}</record>"
    return f"<record>{_header(ctx, row)}<metadata>{fmt.render(ctx, row)}</metadata></record>"


def _envelope(ctx: Context, request_attrs: dict[str, str], body: str) -> str:
    attrs = "".join(f' {k}="{_a(v)}"' for k, v in request_attrs.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<OAI-PMH xmlns="{NS_OAI}" xmlns:xsi="{XSI}" '
        f'xsi:schemaLocation="{NS_OAI} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">'
        f"<responseDate>{datestamp(ctx.now)}</responseDate>"
        f"<request{attrs}>{_x(ctx.base_url)}</request>{body}</OAI-PMH>\n"
    )


# -- the verbs --------------------------------------------------------------------------------------------


def _identify(ctx: Context, session: Session) -> str:
    earliest = session.execute(select(func.min(Record.public_changed_at))).scalar_one_or_none()
    s = ctx.settings
    names = session.execute(select(Archive.name_zh).order_by(Archive.code)).scalars().all()
    name = s.oai_repository_name or " / ".join(names) or "Pearl River Delta digital archives"
    return (
        "<Identify>"
        f"<repositoryName>{_x(name)}</repositoryName>"
        f"<baseURL>{_x(ctx.base_url)}</baseURL>"
        "<protocolVersion>2.0</protocolVersion>"
        f"<adminEmail>{_x(s.oai_admin_email)}</adminEmail>"
        f"<earliestDatestamp>{datestamp(earliest or ctx.now)}</earliestDatestamp>"
        "<deletedRecord>persistent</deletedRecord>"
        "<granularity>YYYY-MM-DDThh:mm:ssZ</granularity>"
        "</Identify>"
    )


def _find(ctx: Context, session: Session, identifier: str) -> Row:
    """The record an identifier names, if it was ever public; idDoesNotExist otherwise (never public,
    unknown, or not an identifier of this repository: one answer for all three)."""
    parsed = parse_identifier(ctx.settings, identifier)
    if parsed is None:
        raise OaiIdDoesNotExist(identifier)
    archive, code = parsed
    found = session.execute(
        _base().where(Archive.code == archive, Record.archival_code == code)
    ).one_or_none()
    if found is None:
        raise OaiIdDoesNotExist(identifier)
    return Row(*found)


def _list_formats(ctx: Context, session: Session, args: dict[str, str]) -> str:
    if "identifier" in args:
        _find(ctx, session, args["identifier"])
    items = "".join(
        f"<metadataFormat><metadataPrefix>{f.prefix}</metadataPrefix>"
        f"<schema>{_x(f.schema(ctx))}</schema><metadataNamespace>{f.namespace}</metadataNamespace>"
        "</metadataFormat>"
        for f in FORMATS.values()
    )
    return f"<ListMetadataFormats>{items}</ListMetadataFormats>"


def _list_sets(ctx: Context, session: Session, args: dict[str, str]) -> str:
    if "resumptionToken" in args:  # ListSets is answered in one response, so no token was ever issued
        raise OaiBadResumptionToken("foreign")
    archives = session.execute(select(Archive.code, Archive.name_zh).order_by(Archive.code)).all()
    fonds = session.execute(
        select(Archive.code, Fonds.code, Fonds.name)
        .join(Archive, Fonds.archive_id == Archive.id)
        .where(
            select(Record.id)
            .where(Record.fonds_id == Fonds.id, Record.public_changed_at.is_not(None))
            .exists()
        )
        .order_by(Archive.code, Fonds.code)
    ).all()
    items = [
        f"<set><setSpec>{_x(set_spec(code))}</setSpec><setName>{_x(name)}</setName></set>"
        for code, name in archives
    ]
    items += [
        f"<set><setSpec>{_x(set_spec(a, f))}</setSpec><setName>{_x(name or f'{a} 全宗 {f}')}</setName></set>"
        for a, f, name in fonds
    ]
    return f"<ListSets>{''.join(items)}</ListSets>"


def _get_record(ctx: Context, session: Session, args: dict[str, str]) -> str:
    fmt = _format(args["metadataPrefix"])
    row = _find(ctx, session, args["identifier"])
    return f"<GetRecord>{_record(ctx, row, fmt)}</GetRecord>"


def _list(ctx: Context, session: Session, verb: str, args: dict[str, str]) -> str:
    key = token_key(ctx.settings)
    if "resumptionToken" in args:
        listing = decode_token(key, args["resumptionToken"], verb, ctx.now)
        fmt = _format(listing.prefix)
    else:
        fmt = _format(args["metadataPrefix"])
        start, stop = time_window(args)
        listing = ListArgs(verb, fmt.prefix, start, stop, args.get("set"))
    query = _set_filter(_window(_base(), listing), listing.set)
    if query is None:
        raise OaiNoRecordsMatch()
    size = listing.size
    if size is None:
        size = int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    page_size = ctx.settings.oai_page_size
    rows = [
        Row(*r)
        for r in session.execute(
            query.where(Record.id > listing.after_id).order_by(Record.id).limit(page_size + 1)
        ).all()
    ]
    if not rows:  # also when a list shrank under its token: an empty list is not a valid answer
        raise OaiNoRecordsMatch()
    more = len(rows) > page_size
    rows = rows[:page_size]
    if verb == "ListRecords":
        items = "".join(_record(ctx, row, fmt) for row in rows)
    else:
        items = "".join(_header(ctx, row) for row in rows)
    token = ""
    if more or listing.cursor > 0:
        size = max(size, listing.cursor + len(rows) + (1 if more else 0))
        attrs = f'completeListSize="{size}" cursor="{listing.cursor}"'
        if more:
            expires = ctx.now + dt.timedelta(seconds=ctx.settings.oai_token_ttl)
            following = ListArgs(
                verb,
                fmt.prefix,
                listing.start,
                listing.stop,
                listing.set,
                after_id=rows[-1].id,
                cursor=listing.cursor + len(rows),
                size=size,
            )
            value = encode_token(key, following, expires)
            token = (
                f'<resumptionToken expirationDate="{datestamp(expires)}" {attrs}>{value}</resumptionToken>'
            )
        else:
            token = f"<resumptionToken {attrs}/>"
    return f"<{verb}>{items}{token}</{verb}>"


def respond(
    settings: Settings,
    session: Session,
    pairs: Sequence[tuple[str, str]],
    base_url: str,
    now: dt.datetime | None = None,
) -> str:
    """The OAI-PMH document answering a request's arguments (``pairs``, in the order given)."""
    ctx = Context(settings, base_url, (now or dt.datetime.now(dt.UTC)).replace(microsecond=0))
    try:
        verb, args = parse_args(pairs)
    except OaiError as exc:  # badVerb / badArgument: the request element carries no attributes
        return _envelope(ctx, {}, _error(exc))
    request_attrs = {"verb": verb, **args}
    try:
        if verb == "Identify":
            body = _identify(ctx, session)
        elif verb == "ListMetadataFormats":
            body = _list_formats(ctx, session, args)
        elif verb == "ListSets":
            body = _list_sets(ctx, session, args)
        elif verb == "GetRecord":
            body = _get_record(ctx, session, args)
        else:
            body = _list(ctx, session, verb, args)
    except OaiBadArgument as exc:
        return _envelope(ctx, {}, _error(exc))
    except OaiError as exc:
        return _envelope(ctx, request_attrs, _error(exc))
    return _envelope(ctx, request_attrs, body)


def _error(exc: OaiError) -> str:
    return f'<error code="{exc.oai_code}">{_x(exc.en)} / {_x(exc.zh)}</error>'


def open_record_count(session: Session) -> int:
    """How many records OAI-PMH shows with their metadata (open ones), for tests and the benchmark."""
    return int(
        session.execute(
            select(func.count())
            .select_from(Record)
            .where(Record.public_changed_at.is_not(None), Record.access_status.in_(PUBLIC_STATUSES))
        ).scalar_one()
    )
