"""One error tree for the whole project: every error has a stable code and a Chinese and English message.

The texts come from the one catalogue, ``archive/codes/*.toml`` (:mod:`archive.codes`), keyed by code; an
error is raised with its parameters only, e.g. ``raise ObjectNotFound(object_id=oid)`` or, where one class
covers several situations, with the catalogue variant of the situation: ``raise PathConflict(variant="added",
path=p, version="v2")`` (code STO007, text of ``STO007.added``). Catch by class at the level you mean::

    ArchiveError                      ARC000  base: ``code``, ``zh``, ``en``, ``details``, ``exit_code`` (1)
    ├── UsageError                    ARC007  the command was asked for something that cannot be (exit 2)
    │   ├── NotInitialised            ARC001  ARCHIVE_HOME has no catalogue yet
    │   ├── UnknownArchive            ARC002  no holding archive with that code
    │   ├── BadArgument               ARC003  an argument or setting is malformed
    │   │   └── TusError              UPL001  a request breaking the tus 1.0.0 protocol (400/412/415)
    │   ├── InsecureSetting           ARC010  a secret setting holds a placeholder or an empty password
    │   └── UnknownHarvestSource      OAI012  no harvest source with that URL
    ├── NotAuthenticated              ACC001  no or a bad token (HTTP 401)
    │   ├── SignInFailed              SES001  a staff sign-in refused (unknown login, wrong password, disabled)
    │   ├── LockedOut                 SES002  too many failed sign-ins on the account or from the address
    │   └── SignInRequired            SES004  a staff page without a live session (→ the sign-in page)
    ├── Forbidden                     ACC002  a role or archive outside the person's scope (HTTP 403)
    │   └── CsrfRejected              SES003  a change with the session cookie but no valid CSRF token
    ├── NotFound                      ARC004  a record/transfer/file does not exist
    │   └── UploadExpired             UPL004  a partial upload past its expiry (410)
    ├── Unhealthy                     ARC011  a health check (``archive health …``) failed
    ├── Conflict                      ARC005  e.g. an archive code registered twice
    │   ├── HarvestSourceExists       OAI011
    │   └── OffsetMismatch UPL002 (409), UploadBusy UPL003 (423): a tus chunk out of step, a second writer
    ├── BeyondUploadLength            UPL005  a tus chunk beyond its Upload-Length (413)
    ├── OaiError                      OAI000  an OAI-PMH protocol error (``oai_code``), answered in the document
    │   └── OaiBadVerb OAI001, OaiBadArgument OAI002, OaiBadResumptionToken OAI003,
    │       OaiCannotDisseminateFormat OAI004, OaiIdDoesNotExist OAI005, OaiNoRecordsMatch OAI006, …
    ├── HarvestError                  OAI010  harvesting a peer's repository failed
    ├── Unavailable                   ARC019  the node cannot do it now; retry when fixed (exit 3)
    │   ├── ServiceUnavailable        ARC020  a service cannot be reached: ``service``, ``url``, ``reason``
    │   │   ├── DatabaseUnavailable   ARC021  the catalogue database (PostgreSQL)
    │   │   ├── BrokerUnavailable     ARC022  the task broker (Redis)
    │   │   └── search.elastic.ElasticUnavailable  SRC001 (also a SearchError)
    │   └── DiskFull                  ARC030  no space left on the device holding ``path``
    ├── archive.storage.StorageError  STO000  the OCFL storage root (archive/storage/errors.py)
    ├── search.SearchError            SRC000  the search index (search/backend.py); NotPublic SRC004 is
    │                                         also a ValueError
    ├── preservation.tools.PreservationError  PRS000  tools, migrations, policy (preservation/tools.py);
    │                                         ToolMissing PRS006 (exit 3)
    └── ingest.identify.SiegfriedFailed  IDN020  the identification child died or hung

A rejected transfer is not an exception: it is a normal outcome with a report of coded problems
(:mod:`ingest.problems`, codes BAG/UNP/META/IDN/ING from the same catalogue), and the CLI exits 1 for it.
(ARC006, once ``RejectedInput``, which nothing raised, is retired; codes are never reused.)

Exit codes of the ``archive`` command: 0 ok, 1 rejected input or nothing found, 2 usage error, 3 the node
could not do it now (a service down, the disk full, a tool missing): the same command may succeed later.

The earlier constructor shapes still work, for code written before the catalogue: ``ArchiveError(zh, en,
**details)`` uses the two texts as given; ``SearchError("why")`` fills the code's ``{reason}``. Moving such
texts into the catalogue is mechanical: add ``[CODE]`` (or ``[CODE.situation]``) with the zh/en templates to a
``archive/codes/*.toml`` (the f-string fields become ``{name}``) and raise with ``variant="situation"`` and the
values as keyword arguments. ``tests/archive/test_errors.py`` lists the raise sites that still carry texts.
"""

from __future__ import annotations

import errno
from typing import Any

from archive.codes import render

EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class ArchiveError(Exception):
    code: str = "ARC000"
    exit_code: int = EXIT_REJECTED

    def __init__(self, *messages: str, variant: str | None = None, **details: Any) -> None:
        if len(messages) == 2:
            zh, en = messages
        elif len(messages) <= 1:
            if messages:
                details = {"reason": messages[0], **details}
            zh, en = render(self.code, details, variant)
        else:
            raise TypeError("ArchiveError takes keyword details, one reason, or (zh, en)")
        super().__init__(en)
        self.variant = variant
        self.zh = zh
        self.en = en
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_zh": self.zh,
            "message_en": self.en,
            **({"variant": self.variant} if self.variant else {}),
            **{k: str(v) for k, v in self.details.items()},
        }

    def __str__(self) -> str:
        return f"{self.code}: {self.zh} / {self.en}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take their own arguments; rebuild from the finished state (Celery pickles results).
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[ArchiveError], state: dict[str, Any]) -> ArchiveError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, state.get("en", ""))
    exc.__dict__.update(state)
    return exc


class UsageError(ArchiveError):
    code = "ARC007"
    exit_code = EXIT_USAGE


class NotInitialised(UsageError):
    code = "ARC001"

    def __init__(self, home: object) -> None:
        super().__init__(home=home)


class UnknownArchive(UsageError):
    code = "ARC002"

    def __init__(self, archive: str) -> None:
        super().__init__(archive=archive)


class BadArgument(UsageError):
    code = "ARC003"


class NotFound(ArchiveError):
    code = "ARC004"


class Conflict(ArchiveError):
    code = "ARC005"


class Unavailable(ArchiveError):
    """The node cannot do this now (a service is down, the disk is full, a tool is missing); retry later."""

    code = "ARC019"
    exit_code = EXIT_UNAVAILABLE


class ServiceUnavailable(Unavailable):
    """A service the node needs cannot be reached. Details: ``service``, ``url`` (no password), ``reason``."""

    code = "ARC020"
    service_name = "service"

    def __init__(
        self, *messages: str, service: str = "", url: object = "", reason: object = "", **details: Any
    ) -> None:
        super().__init__(
            *messages,
            service=service or self.service_name,
            url=redact_url(str(url)),
            reason=_reason(reason),
            **details,
        )


class DatabaseUnavailable(ServiceUnavailable):
    code = "ARC021"
    service_name = "PostgreSQL"


class BrokerUnavailable(ServiceUnavailable):
    code = "ARC022"
    service_name = "Redis"


class DiskFull(Unavailable):
    """No space (or quota) left where the node writes. Details: ``path``, ``reason``."""

    code = "ARC030"

    def __init__(self, *messages: str, path: object = "", reason: object = "", **details: Any) -> None:
        super().__init__(*messages, path=path, reason=_reason(reason), **details)


def is_disk_full(exc: BaseException) -> bool:
    """An OSError saying the device (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _reason(reason: object) -> str:
    """What went wrong underneath, in a few words: the operating system's words when an OSError is at the
    root of the chain ("Connection refused", "No space left on device"), else the first line of the text
    (drivers often add pages of context)."""
    cause: BaseException | None = reason if isinstance(reason, BaseException) else None
    for _ in range(10):
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    text = str(reason) or (type(reason).__name__ if isinstance(reason, BaseException) else "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def redact_url(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``), fit for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    auth, _, host = rest.partition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in auth else url


class InsecureSetting(UsageError):
    """A secret-bearing setting still holds a placeholder (``change-me``) or an empty password.

    The message names the variable and never repeats its value."""

    code = "ARC010"

    def __init__(self, variable: str, problem_zh: str, problem_en: str) -> None:
        super().__init__(variable=variable, problem_zh=problem_zh, problem_en=problem_en)


class Unhealthy(ArchiveError):
    """A health check found a component not serving (the portal, a worker)."""

    code = "ARC011"

    def __init__(self, component: str, reason_zh: str, reason_en: str) -> None:
        super().__init__(component=component, reason_zh=reason_zh, reason_en=reason_en)


# -- OAI-PMH provider and harvester (issue 10; messages also in archive/codes/oai.toml) -------------------


class OaiError(ArchiveError):
    """An OAI-PMH protocol error, answered inside a 200 OAI-PMH document (``oai_code`` is the spec's code)."""

    code = "OAI000"
    oai_code = "badArgument"


class OaiBadVerb(OaiError):
    code = "OAI001"
    oai_code = "badVerb"


class OaiBadArgument(OaiError):
    code = "OAI002"
    oai_code = "badArgument"


class OaiBadResumptionToken(OaiError):
    code = "OAI003"
    oai_code = "badResumptionToken"

    def __init__(self, variant: str | None = None, **details: Any) -> None:
        super().__init__(variant=variant, **details)


class OaiCannotDisseminateFormat(OaiError):
    code = "OAI004"
    oai_code = "cannotDisseminateFormat"

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix=prefix)


class OaiIdDoesNotExist(OaiError):
    code = "OAI005"
    oai_code = "idDoesNotExist"

    def __init__(self, identifier: str) -> None:
        super().__init__(identifier=identifier)


class OaiNoRecordsMatch(OaiError):
    code = "OAI006"
    oai_code = "noRecordsMatch"

    def __init__(self) -> None:
        super().__init__()


class OaiNoSetHierarchy(OaiError):
    """Kept for completeness: this repository has sets, so it never answers this code."""

    code = "OAI007"
    oai_code = "noSetHierarchy"


class HarvestError(ArchiveError):
    """A harvest of a peer's OAI-PMH repository failed (unreachable, not OAI-PMH, an OAI error)."""

    code = "OAI010"


class HarvestSourceExists(Conflict):
    code = "OAI011"

    def __init__(self, url: str) -> None:
        super().__init__(url=url)


class UnknownHarvestSource(UsageError):
    code = "OAI012"

    def __init__(self, url: str) -> None:
        super().__init__(url=url)


# -- staff accounts and the staff API's authorisation (texts in archive/codes/accounts.toml) ----------------


class NotAuthenticated(ArchiveError):
    """No token, or one that is unknown, expired, revoked or belongs to a disabled account (HTTP 401).

    One message for every case, so a caller cannot tell which tokens exist."""

    code = "ACC001"


class Forbidden(ArchiveError):
    """The person is known but no role of theirs allows this action (HTTP 403).

    Variants: ``role`` (no role of theirs may do it), ``act`` / ``see`` (the archive is outside their scope;
    ``archive``)."""

    code = "ACC002"


class UnknownUser(NotFound):
    code = "ACC003"

    def __init__(self, login: str) -> None:
        super().__init__(login=login)


class UserExists(Conflict):
    code = "ACC004"

    def __init__(self, login: str) -> None:
        super().__init__(login=login)


class UploadTooLarge(ArchiveError):
    """An uploaded bag is larger than ``ARCHIVE_MAX_TRANSFER_BYTES`` (HTTP 413); nothing of it is kept."""

    code = "ACC006"

    def __init__(self, limit: int) -> None:
        super().__init__(limit=limit)


class UnknownToken(NotFound):
    code = "ACC005"

    def __init__(self, ref: str) -> None:
        super().__init__(token=ref)


# -- opening review and descriptive metadata (texts in archive/codes/review.toml) ----------------------------


class InvalidMetadata(UsageError):
    """A descriptive-metadata edit or a review request with a field out of bounds (HTTP 422, exit 2).

    Variants: ``empty`` / ``too_long`` (``field``, ``limit``), ``date`` (``value``), ``keywords``
    (``limit``), ``no_change``, ``policy`` (``value``), ``review_on`` (``value``)."""

    code = "REV001"


class UnknownReview(NotFound):
    """No review with that id (or one of an archive outside the person's scope: the same answer)."""

    code = "REV002"

    def __init__(self, review_id: int) -> None:
        super().__init__(review_id=review_id)


class ReviewNotPending(Conflict):
    """A decision or an opinion for a review that is not waiting for one (already decided, or scheduled)."""

    code = "REV003"

    def __init__(self, review_id: int, state: str) -> None:
        super().__init__(review_id=review_id, state=state)


class MetadataBusy(Conflict):
    """Another edit of the same record's metadata moved its OCFL head meanwhile; try again."""

    code = "REV004"

    def __init__(self, record: str) -> None:
        super().__init__(record=record)


class SignInFailed(NotAuthenticated):
    """A staff sign-in was refused: unknown login, wrong password or disabled account, one answer for all."""

    code = "SES001"


class LockedOut(NotAuthenticated):
    """Too many failed sign-ins on this account or from this address; refused until the lockout ends."""

    code = "SES002"

    def __init__(self, minutes: int) -> None:
        super().__init__(minutes=minutes)


class CsrfRejected(Forbidden):
    """A change sent with the session cookie but without this session's CSRF token (HTTP 403)."""

    code = "SES003"


class SignInRequired(NotAuthenticated):
    """A staff page asked for without a live session (none, ended, or idle too long): sign in first."""

    code = "SES004"


class TusError(BadArgument):
    """A request that breaks the tus 1.0.0 protocol (a missing ``Tus-Resumable``, a bad header): HTTP 400,
    or 412/415 for the version and the chunk's content type (``variant``)."""

    code = "UPL001"


class OffsetMismatch(Conflict):
    """A chunk that does not start where the upload stands (HTTP 409); the client asks with HEAD and resumes."""

    code = "UPL002"

    def __init__(self, expected: int, given: int) -> None:
        super().__init__(expected=expected, given=given)


class UploadBusy(Conflict):
    """Another request is writing to the same upload right now (HTTP 423)."""

    code = "UPL003"


class UploadExpired(NotFound):
    """A partial upload past its expiry (HTTP 410); its bytes are gone or about to be."""

    code = "UPL004"

    def __init__(self, upload: str) -> None:
        super().__init__(upload=upload)


class BeyondUploadLength(ArchiveError):
    """A chunk that would carry the upload beyond its declared ``Upload-Length`` (HTTP 413)."""

    code = "UPL005"

    def __init__(self, length: int) -> None:
        super().__init__(length=length)
