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

The staff **pages** (``/staff/…``) use the same rules with a signed-in session instead of a token
(:mod:`archive.accounts.sessions`: an HttpOnly, SameSite=Lax cookie, Secure behind HTTPS)::

    @router.get("/staff/transfers/{transfer_id}")
    def transfer_page(request: Request, staff: StaffPageDep, ...) -> HTMLResponse:
        check_read(staff, transfer.archive)              # another archive's transfer → the 404 page

* no live session → **303** to ``/staff/login?next=<the page>``;
* a role that may not → the **403** page; another archive's object → the **404** page (as for the API).

**CSRF**: every request with a non-safe method (POST, PUT, PATCH, DELETE) that carries a live session
cookie must carry that session's token, as the form field ``csrf_token`` (templates write it with
``{{ csrf_field() }}``) or the ``X-CSRF-Token`` header (scripts; the page holds it in
``<meta name="csrf-token">``); otherwise it is refused with a 403 (SES003) before the handler runs.
:func:`csrf_guard` enforces this for *every route of the app* (it is an app-wide dependency), so a new form
is protected without doing anything. A request with a bearer token is not cookie-authenticated and is exempt.
The API routes accept a session as well as a token, so the workspace's scripts (the upload client) call them
from the signed-in browser.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from access_portal.deps import SettingsDep
from archive import db
from archive.accounts import Staff, authenticate, sessions
from archive.accounts.sessions import SignedIn
from archive.config import Settings
from archive.errors import CsrfRejected, Forbidden, NotAuthenticated, NotFound, SignInRequired
from archive.models import Role

PROBLEM = "application/problem+json"
#: The session cookie (HttpOnly, SameSite=Lax, Secure behind HTTPS; no Max-Age: the server ends it).
SESSION_COOKIE = "archive_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: The refusals every bearer-token route of the staff API may answer, for its OpenAPI description.
TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or an unknown, expired or revoked one (application/problem+json)"},
    403: {"description": "A role or an archive the token's person may not act for"},
}
#: Routes that check their own CSRF token (the sign-in form: there is no session yet).
CSRF_OWN_CHECK = frozenset({"/staff/login"})


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _lookup(settings: Settings, token: str) -> Staff | None:
    with db.read_session(settings) as session:
        return authenticate(session, token)


async def signed_in(request: Request, settings: Settings) -> SignedIn | None:
    """The live session of the request's cookie (looked up once per request), or None."""
    found: SignedIn | bool | None = getattr(request.state, "signed_in", False)
    if found is False:
        session_id = request.cookies.get(SESSION_COOKIE)
        found = await run_in_threadpool(sessions.current, settings, session_id) if session_id else None
        request.state.signed_in = found
    assert found is not True
    return found


async def csrf_guard(request: Request, settings: SettingsDep) -> None:
    """Refuse (403, SES003) a non-safe request authenticated by the session cookie without its CSRF token.

    An app-wide dependency (:func:`access_portal.app.create_app`): it runs before every handler."""
    if request.method in SAFE_METHODS or _bearer(request) is not None:
        return
    if SESSION_COOKIE not in request.cookies or request.url.path in CSRF_OWN_CHECK:
        return
    signed = await signed_in(request, settings)
    if signed is None:
        return  # the cookie authenticates nothing: the route's own dependency refuses or ignores it
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not sessions.csrf_valid(signed.session_id, token):
        raise CsrfRejected()


async def require_staff(request: Request, settings: SettingsDep) -> Staff:
    """The person the bearer token belongs to, or else the signed-in session's; 401 otherwise."""
    token = _bearer(request)
    if token:
        staff = await run_in_threadpool(_lookup, settings, token)
    else:
        signed = await signed_in(request, settings)
        staff = signed.staff if signed else None
    if staff is None:
        raise NotAuthenticated()
    return staff


async def require_session(request: Request, settings: SettingsDep) -> SignedIn:
    """The signed-in session of a staff page; the sign-in page (303) otherwise."""
    signed = await signed_in(request, settings)
    if signed is None:
        raise SignInRequired()
    return signed


SessionDep = Annotated[SignedIn, Depends(require_session)]


def require_page_role(*roles: str) -> Callable[[SignedIn], Coroutine[Any, Any, Staff]]:
    """A page dependency: a signed-in person holding one of ``roles`` (the 403 page otherwise)."""

    async def dependency(signed: SessionDep) -> Staff:
        if not signed.staff.has_role(*roles):
            raise Forbidden(variant="role")
        return signed.staff

    return dependency


#: Anyone on the staff, signed in (each page then checks the object's archive with :func:`check_read`).
StaffPageDep = Annotated[Staff, Depends(require_page_role(Role.admin, Role.archivist, Role.auditor))]
#: An archivist (submitting transfers; the page then checks :func:`require_archive`).
ArchivistPageDep = Annotated[Staff, Depends(require_page_role(Role.archivist))]
#: Someone who may change things (admin, archivist; the page then checks :func:`require_archive`).
ActorPageDep = Annotated[Staff, Depends(require_page_role(Role.admin, Role.archivist))]
#: An administrator (users).
AdminPageDep = Annotated[Staff, Depends(require_page_role(Role.admin))]
#: An auditor or an administrator (read-only views of the whole node).
AuditorPageDep = Annotated[Staff, Depends(require_page_role(Role.admin, Role.auditor))]


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


def is_page(request: Request) -> bool:
    """A staff page (answered with HTML pages), not the JSON API."""
    return request.url.path == "/staff" or request.url.path.startswith("/staff/")


async def on_not_authenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotAuthenticated)
    if is_page(request):
        return RedirectResponse(login_url(request), status_code=303)
    return _problem(401, "Unauthorized", exc, **{"WWW-Authenticate": 'Bearer realm="archive"'})


def login_url(request: Request) -> str:
    """``/staff/login?next=<this page>`` (a GET page; after a refused POST, the page it came from)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = request.url.path
    return "/staff/login?" + urlencode({"next": target})


async def on_forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    if is_page(request):
        from access_portal.routes.staff_pages import error_page

        return error_page(request, 403, exc)
    return _problem(403, "Forbidden", exc)
