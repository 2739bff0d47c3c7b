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

import csv
import datetime as dt
import io
import json
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import pass_context
from markupsafe import Markup, escape

from access_portal.deps import SettingsDep, get_limits
from access_portal.i18n import resolve_lang, translator
from access_portal.routes.public import CSP, TEMPLATES, content_disposition, render
from access_portal.schemas import record_url
from access_portal.staff import (
    CSRF_FIELD,
    SESSION_COOKIE,
    AdminPageDep,
    ArchivistPageDep,
    StaffPageDep,
    check_read,
    readable_archives,
    require_archive,
    require_archive_read,
)
from access_portal.transfers import receive_bag
from archive import dashboard, db, services, transfer_views
from archive.accounts import Staff, add_user, disable_user, list_users, sessions
from archive.config import Settings
from archive.errors import (
    ArchiveError,
    BadArgument,
    CsrfRejected,
    LockedOut,
    NotFound,
    SignInFailed,
    UploadTooLarge,
    UsageError,
    UserExists,
)
from archive.models import Role, TransferStatus
from archive.transfer_views import TransferFilter

router = APIRouter(prefix="/staff", dependencies=[Depends(get_limits)], include_in_schema=False)

#: The sign-in form's own CSRF token (double submit: this cookie and the form field must match).
LOGIN_CSRF_COOKIE = "archive_login_csrf"
LOGIN_PATH = "/staff/login"
LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


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


#: The policy of a page that runs the workspace's own scripts (the upload page): scripts and requests to
#: this origin only, nothing inline.
CSP_SCRIPTS = f"{CSP}; script-src 'self'; connect-src 'self'"


def render_staff(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    *,
    scripts: bool = False,
) -> HTMLResponse:
    """Render a staff page (``staff/*.html``) in the request's language, with the signed-in person as
    ``staff``. Staff pages are never cached; ``scripts`` lets the page load scripts from /static."""
    signed = getattr(request.state, "signed_in", None)
    staff = signed.staff if isinstance(signed, sessions.SignedIn) else None
    response = render(request, name, {"staff": staff, **context}, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    if scripts:
        response.headers["Content-Security-Policy"] = CSP_SCRIPTS
    return response


ERROR_TITLES = {403: "forbidden_title", 404: "not_found_title"}


def error_page(request: Request, status: int, exc: ArchiveError | None = None) -> HTMLResponse:
    """The staff error page (403, 404; 422 for a malformed form) in the workspace's frame, with the coded
    reason where there is one."""
    lang = resolve_lang(request)
    t = translator(lang)
    title = t(ERROR_TITLES.get(status, "bad_request_title"))
    message = (exc.zh if lang == "zh" else exc.en) if exc else t("bad_request_body")
    return render_staff(
        request,
        "staff/error.html",
        {"title": title, "message": message, "code": exc.code if exc else None},
        status,
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
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not LOGIN_TOKEN.fullmatch(token):
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
    if not expected or not csrf_token or not secrets.compare_digest(expected.encode(), csrf_token.encode()):
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
def dashboard_page(request: Request, staff: StaffPageDep, settings: SettingsDep) -> Response:
    with db.read_session(settings) as s:
        tiles = dashboard.archive_figures(s, readable_archives(staff))
    return render_staff(request, "staff/dashboard.html", {"nav": "dashboard", "tiles": tiles})


STATUSES = tuple(s.value for s in TransferStatus)


def _archive_choices(settings: Settings, codes: list[str] | None) -> list[dict[str, Any]]:
    with db.read_session(settings) as s:
        return [a for a in services.list_archives(s) if codes is None or a["code"] in codes]


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/transfers", response_class=HTMLResponse)
def transfers_page(
    request: Request,
    staff: StaffPageDep,
    settings: SettingsDep,
    archive: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[str | None, Query(max_length=10, alias="from")] = None,
    until: Annotated[str | None, Query(max_length=10, alias="to")] = None,
) -> Response:
    """Transfers of the archives the person may see, by archive, status and date, with totals."""
    archive = _plain(archive) if archive else None
    if archive:
        require_archive_read(staff, archive)
    scope = readable_archives(staff)
    f = TransferFilter(
        archives=[archive] if archive else scope,
        status=status if status in STATUSES else None,
        since=_date(since),
        until=_date(until),
    )
    with db.read_session(settings) as s:
        rows = transfer_views.find_transfers(s, f)
        totals = transfer_views.transfer_totals(s, f)
        who = transfer_views.uploaders(s, [t.id for t in rows])
        listed = [{**services.transfer_summary(t), "uploader": who.get(t.id)} for t in rows]
    return render_staff(
        request,
        "staff/transfers.html",
        {
            "nav": "transfers",
            "transfers": listed,
            "totals": totals,
            "archives": _archive_choices(settings, scope),
            "statuses": STATUSES,
            "chosen": {
                "archive": archive or "",
                "status": f.status or "",
                "from": f.since.isoformat() if f.since else "",
                "to": f.until.isoformat() if f.until else "",
            },
        },
    )


#: How far along a transfer is, for the progress bar (of 3 steps).
STEPS = {"received": 0, "validating": 1, "storing": 2, "stored": 3, "rejected": 3, "interrupted": 3}


def _plain(value: str) -> str:
    """A path or query value as it may reach the catalogue: one with control characters (PostgreSQL cannot
    even compare NUL) names nothing, so it is not found."""
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise NotFound()
    return value


def _readable_transfer(settings: Settings, staff: Staff, transfer_id: str) -> dict[str, Any]:
    _plain(transfer_id)
    with db.read_session(settings) as s:
        transfer = services.get_transfer(s, transfer_id)
        check_read(staff, transfer.archive.code if transfer.archive else None)
        summary = services.transfer_summary(transfer)
        summary["records_stored"] = services.transfer_record_refs(s, transfer_id)
        summary["uploader"] = transfer_views.uploaders(s, [transfer_id]).get(transfer_id)
        summary["events"] = transfer_views.transfer_events(s, transfer_id)
    return summary


@router.get("/transfers/{transfer_id}", response_class=HTMLResponse)
def transfer_page(request: Request, transfer_id: str, staff: StaffPageDep, settings: SettingsDep) -> Response:
    """A transfer's stage and progress; when refused, its problems (bounded as the API's, with the
    "and K more" lines) and the CSV of every one; when stored, links to its records."""
    summary = _readable_transfer(settings, staff, transfer_id)
    records = [
        {"ref": ref, "url": record_url(*services.split_record_ref(ref))} for ref in summary["records_stored"]
    ]
    return render_staff(
        request,
        "staff/transfer.html",
        {
            "nav": "transfers",
            "transfer": summary,
            "step": STEPS.get(summary["status"], 0),
            "records": records,
            "done": summary["status"] in ("stored", "rejected", "interrupted"),
        },
    )


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


@router.get("/transfers/{transfer_id}/problems.csv")
def transfer_problems_csv(transfer_id: str, staff: StaffPageDep, settings: SettingsDep) -> Response:
    """Every problem of a transfer as CSV (UTF-8 with BOM, for spreadsheet programs), streamed from its
    ``problems.jsonl``; the transfer's bounded list where no such file was written."""
    from ingest.pipeline import problem_file

    summary = _readable_transfer(settings, staff, transfer_id)
    path = problem_file(settings, transfer_id)
    bounded = [*summary["problems"], *summary["warnings"]]

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        yield "\ufeff" + out.getvalue()
        problems: Iterable[dict[str, Any]] = _jsonl(path) if path.is_file() else bounded
        for problem in problems:
            out.seek(0)
            out.truncate()
            writer.writerow([problem.get(c) or "" for c in CSV_COLUMNS])
            yield out.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": content_disposition(f"{transfer_id}-problems.csv"),
            "Cache-Control": "no-store",
        },
    )


CSV_COLUMNS = ("code", "severity", "path", "message_zh", "message_en")


def _upload_form(
    request: Request,
    settings: Settings,
    staff: Staff,
    error: ArchiveError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lang = resolve_lang(request)
    return render_staff(
        request,
        "staff/upload.html",
        {
            "nav": "upload",
            "archives": _archive_choices(settings, sorted(staff.archives)),
            "error": (error.zh if lang == "zh" else error.en) if error else None,
            "error_code": error.code if error else None,
            "chunk_size": request.query_params.get("chunk", ""),
        },
        status_code,
        scripts=True,
    )


@router.get("/upload", response_class=HTMLResponse)
def upload_page(request: Request, staff: ArchivistPageDep, settings: SettingsDep) -> Response:
    return _upload_form(request, settings, staff)


@router.post("/upload", response_class=HTMLResponse)
async def upload(
    request: Request,
    staff: ArchivistPageDep,
    settings: SettingsDep,
    archive: Annotated[str, Form(max_length=64)],
    file: UploadFile,
) -> Response:
    """The plain form's upload: stored, registered and queued exactly as ``POST /api/v1/transfers`` does
    (the ingest runs on a worker, never in this request); then the transfer's page."""
    require_archive(staff, _plain(archive))
    try:
        accepted = await run_in_threadpool(
            receive_bag, settings, archive, file.file, file.filename, actor=staff.login
        )
    except BadArgument as exc:
        return _upload_form(request, settings, staff, exc, 422)
    except UploadTooLarge as exc:
        return _upload_form(request, settings, staff, exc, 413)
    # the same bytes uploaded before: the first transfer's page (accept_bag recorded the repeat)
    return RedirectResponse(f"/staff/transfers/{accepted.transfer_id}", status_code=303)


def _users_page(
    request: Request, settings: Settings, error: ArchiveError | None = None, status_code: int = 200
) -> HTMLResponse:
    lang = resolve_lang(request)
    with db.read_session(settings) as s:
        users = list_users(s)
    return render_staff(
        request,
        "staff/users.html",
        {
            "nav": "users",
            "users": users,
            "roles": [r.value for r in Role],
            "archives": _archive_choices(settings, None),
            "error": (error.zh if lang == "zh" else error.en) if error else None,
            "error_code": error.code if error else None,
        },
        status_code,
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, staff: AdminPageDep, settings: SettingsDep) -> Response:
    return _users_page(request, settings)


@router.post("/users", response_class=HTMLResponse)
def add_user_page(
    request: Request,
    staff: AdminPageDep,
    settings: SettingsDep,
    login: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(min_length=12, max_length=1024)],
    role: Annotated[list[str], Form()],
    archive: Annotated[list[str] | None, Form()] = None,
    display_name: Annotated[str | None, Form(max_length=255)] = None,
) -> Response:
    """Add a person (an event whose agent is the administrator); the same rules as ``archive users add``."""
    try:
        with db.write_session(settings) as s:
            add_user(
                s,
                login,
                roles=role,
                archives=[_plain(code) for code in archive or []],
                password=password,
                display_name="".join(c for c in display_name if c >= " ") if display_name else None,
                actor=staff.login,
            )
    except (UsageError, UserExists) as exc:
        return _users_page(request, settings, exc, 409 if isinstance(exc, UserExists) else 422)
    return RedirectResponse("/staff/users", status_code=303)


@router.post("/users/{login}/disable", response_class=HTMLResponse)
def disable_user_page(request: Request, login: str, staff: AdminPageDep, settings: SettingsDep) -> Response:
    """Disable a person: their sessions and tokens stop working at once (an event)."""
    _plain(login)
    with db.write_session(settings) as s:
        disable_user(s, login, actor=staff.login)
    return RedirectResponse("/staff/users", status_code=303)
