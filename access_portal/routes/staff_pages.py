"""The staff workspace's pages under ``/staff``: sign-in, sign-out, dashboard, transfers, upload, users.

Who may see what is decided in :mod:`access_portal.staff` (``StaffPageDep`` and its role variants, then
``check_read`` / ``require_archive`` for the object's archive), the same rules as the staff API. A page of
another helper's part of the workspace is written the same way::

    from access_portal.routes.staff_pages import render_staff
    from access_portal.staff import ActorPageDep, check_read

    @router.get("/staff/reviews")
    def reviews(request: Request, staff: ActorPageDep, settings: SettingsDep) -> HTMLResponse:
        return render_staff(request, "staff/reviews.html", {"nav": "reviews", ...})

and its template ``{% extends "staff/base.html" %}``, with ``{{ csrf_field() }}`` in every form that posts.
CSRF is checked for every non-safe request by :func:`access_portal.staff.csrf_guard` before the handler
runs. Handlers parse the request, call service functions and render; nothing here builds SQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import pass_context
from markupsafe import Markup, escape

from access_portal.deps import SettingsDep, get_limits
from access_portal.i18n import resolve_lang, translator
from access_portal.routes.public import TEMPLATES, render
from access_portal.staff import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SessionDep,
    StaffPageDep,
)
from archive import dashboard
from archive.accounts import sessions
from archive.config import Settings
from archive.errors import ArchiveError, CsrfRejected, LockedOut, SignInFailed

router = APIRouter(prefix="/staff", dependencies=[Depends(get_limits)], include_in_schema=False)

#: The sign-in form's own CSRF token (double submit: this cookie and the form field must match).
LOGIN_CSRF_COOKIE = "archive_login_csrf"
LOGIN_PATH = "/staff/login"


@pass_context
def _csrf_token(context: Mapping[str, Any]) -> str:
    if context.get("login_csrf"):
        return str(context["login_csrf"])
    request = context.get("request")
    signed = getattr(request.state, "signed_in", None) if request is not None else None
    return signed.csrf_token if isinstance(signed, sessions.SignedIn) else ""


@pass_context
def _csrf_field(context: Mapping[str, Any]) -> Markup:
    token = _csrf_token(context)
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')


TEMPLATES.env.globals["csrf_token"] = _csrf_token
TEMPLATES.env.globals["csrf_field"] = _csrf_field


def render_staff(
    request: Request, name: str, context: Mapping[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a staff page (``staff/*.html``) in the request's language, with the signed-in person as
    ``staff``. Staff pages are never cached."""
    signed = getattr(request.state, "signed_in", None)
    staff = signed.staff if isinstance(signed, sessions.SignedIn) else None
    response = render(request, name, {"staff": staff, **context}, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, exc: ArchiveError) -> HTMLResponse:
    """The staff 403/404 page, with the coded reason."""
    lang = resolve_lang(request)
    t = translator(lang)
    title = t("forbidden_title") if status == 403 else t("not_found_title")
    message = exc.zh if lang == "zh" else exc.en
    return render_staff(
        request, "staff/error.html", {"title": title, "message": message, "code": exc.code}, status
    )


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Secure cookies when the node says so, or when the request came by https (behind the proxy too)."""
    return settings.cookie_secure or request.url.scheme == "https"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of the workspace only (never another site)."""
    if not target:
        return "/staff"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/staff") or target.startswith("//"):
        return "/staff"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/staff"
    return target


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request,
    settings: Settings,
    *,
    next_url: str,
    login: str = "",
    error: ArchiveError | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lang = resolve_lang(request)
    token = secrets.token_urlsafe(32)
    response = render_staff(
        request,
        "staff/login.html",
        {
            "login_csrf": token,
            "next": next_url,
            "login": login,
            "error": (error.zh if lang == "zh" else error.en) if error else None,
            "error_code": error.code if error else None,
            "notice": notice,
        },
        status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=LOGIN_PATH,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, settings),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    """The sign-in form (also when signed in already: signing in again starts a new session)."""
    notice = translator(resolve_lang(request))("signed_out") if request.query_params.get("out") else None
    return _login_page(request, settings, next_url=safe_next(next), notice=notice)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    login: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/staff",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not csrf_token or not secrets.compare_digest(expected, csrf_token):
        return error_page(request, 403, CsrfRejected())
    try:
        signed = await run_in_threadpool(
            lambda: sessions.sign_in(
                settings,
                login,
                password,
                address=_address(request),
                previous=request.cookies.get(SESSION_COOKIE),
            )
        )
    except LockedOut as exc:
        return _login_page(
            request, settings, next_url=safe_next(next), login=login, error=exc, status_code=429
        )
    except SignInFailed as exc:
        return _login_page(
            request, settings, next_url=safe_next(next), login=login, error=exc, status_code=401
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed.session_id,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, settings),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/logout")
async def logout(request: Request, settings: SettingsDep) -> Response:
    """End the session (its CSRF token was checked by the guard, as for every form)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await run_in_threadpool(lambda: sessions.sign_out(settings, session_id))
    response = RedirectResponse(f"{LOGIN_PATH}?out=1", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure(request, settings)
    )
    return response


@router.get("", response_class=HTMLResponse)
def dashboard_page(
    request: Request, staff: StaffPageDep, settings: SettingsDep, signed: SessionDep
) -> Response:
    from access_portal.staff import readable_archives
    from archive import db

    with db.read_session(settings) as s:
        tiles = dashboard.archive_figures(s, readable_archives(staff))
    return render_staff(request, "staff/dashboard.html", {"nav": "dashboard", "tiles": tiles})
