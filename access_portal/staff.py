"""The staff API's authorisation, in one place.

A route states who may call it with the dependencies here::

    @router.get("/transfers/{transfer_id}")
    def transfer(staff: ReaderDep, ...) -> ...:          # any staff role
        staff_scope.check_read(staff, transfer.archive)   # another archive's transfer → 404

* no token, or a malformed, unknown, expired or revoked one, or a disabled user's → **401**
  (``application/problem+json``, ``WWW-Authenticate: Bearer``), one answer for all of them;
* a role that may not do this at all (an auditor changing access, an archivist of GZ naming GD in the
  request) → **403**; the answer depends only on the request, never on whether the object exists;
* an object found by its id that belongs to an archive outside the person's scope → **404**, the same
  answer as for an object that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from access_portal.deps import SettingsDep
from archive import db
from archive.accounts import Staff, authenticate
from archive.config import Settings
from archive.errors import Forbidden, NotAuthenticated, NotFound
from archive.models import Role

PROBLEM = "application/problem+json"


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _lookup(settings: Settings, token: str) -> Staff | None:
    with db.read_session(settings) as session:
        return authenticate(session, token)


async def require_staff(request: Request, settings: SettingsDep) -> Staff:
    """The person the bearer token belongs to; 401 otherwise."""
    token = _bearer(request)
    staff = await run_in_threadpool(_lookup, settings, token) if token else None
    if staff is None:
        raise NotAuthenticated()
    return staff


StaffDep = Annotated[Staff, Depends(require_staff)]


def require_role(*roles: str) -> Callable[[Staff], Coroutine[Any, Any, Staff]]:
    """A dependency: the person holds one of ``roles`` (403 otherwise)."""

    async def dependency(staff: StaffDep) -> Staff:
        if not staff.has_role(*roles):
            raise Forbidden(variant="role")
        return staff

    return dependency


#: An archivist (of some archive; each route then checks :func:`require_archive`): submitting transfers.
ArchivistDep = Annotated[Staff, Depends(require_role(Role.archivist))]
#: Anyone on the staff (read routes; each then checks the object's archive with :func:`check_read`).
ReaderDep = Annotated[Staff, Depends(require_role(Role.admin, Role.archivist, Role.auditor))]
#: Someone who may change things (admin, archivist; each then checks :func:`require_archive`).
ActorDep = Annotated[Staff, Depends(require_role(Role.admin, Role.archivist))]


def require_archive(staff: Staff, archive: str) -> None:
    """The archive named in the request is one ``staff`` may act for (403 otherwise, before any lookup)."""
    if not staff.may_act_for(archive):
        raise Forbidden(variant="act", archive=archive)


def require_archive_read(staff: Staff, archive: str) -> None:
    """The archive named in the request is one ``staff`` may read (403 otherwise, before any lookup)."""
    if not staff.may_read(archive):
        raise Forbidden(variant="see", archive=archive)


def check_read(staff: Staff, archive: str | None) -> None:
    """An object found by id belongs to an archive ``staff`` may read; a 404 otherwise, as if missing."""
    if not (staff.may_read(archive) if archive else staff.is_admin or Role.auditor in staff.roles):
        raise NotFound()


def readable_archives(staff: Staff) -> list[str] | None:
    """The archives whose objects ``staff`` may list; None for all (admin, auditor)."""
    if staff.is_admin or Role.auditor in staff.roles:
        return None
    return sorted(staff.archives)


def _problem(status: int, title: str, exc: NotAuthenticated | Forbidden, **headers: str) -> Response:
    return JSONResponse(
        {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": exc.en,
            "detail_zh": exc.zh,
            "code": exc.code,
        },
        status_code=status,
        media_type=PROBLEM,
        headers=headers or None,
    )


async def on_not_authenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotAuthenticated)
    return _problem(401, "Unauthorized", exc, **{"WWW-Authenticate": 'Bearer realm="archive"'})


async def on_forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    return _problem(403, "Forbidden", exc)
