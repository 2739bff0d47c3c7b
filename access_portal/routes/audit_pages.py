"""The auditor's workspace: fixity audit runs, 四性检测 reports, the event log, a record's history, exports.

Every page is for the signed-in staff (``StaffPageDep``): admins and auditors see the whole node, an
archivist sees the runs, reports, events and records of their own archives (another archive's object is the
404 page, as if missing). Everything here only reads, except ``POST /staff/audits`` (asking a worker for a
fixity audit), which auditors may do too. Downloading an evidence package writes it and logs who took it.

    GET  /staff/audits                          runs, newest first; the form to request one
    POST /staff/audits                          request a run (an archive, or the node)
    GET  /staff/audits/{run}                    one run, every failure; …/{run}/report.json|csv|sha256
    GET  /staff/reports                         四性检测 runs (?archive=&stage=&transfer=)
    GET  /staff/reports/summary                 pass rates per archive, period, stage and property
    GET  /staff/reports/{run}                   one report; …/{run}/report.json|csv|html|pdf, …/evidence.zip
    GET  /staff/events                          the log (?record=ARCHIVE/CODE&type=&agent=&since=&until=)
    GET  /staff/events/verify                   the whole chain recomputed
    GET  /staff/records/{archive}/{code}/history     a record's full history
    GET  /staff/records/{archive}/{code}/premis.xml | mets.xml | evidence.zip
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.background import BackgroundTask

from access_portal.deps import SettingsDep, get_limits
from access_portal.routes.staff_pages import render_staff
from access_portal.staff import StaffPageDep, check_read, readable_archives, require_archive_read
from archive import db
from archive.accounts import Staff
from archive.config import Settings
from archive.errors import BadArgument, Forbidden, NotFound
from archive.models import Record

router = APIRouter(prefix="/staff", dependencies=[Depends(get_limits)], include_in_schema=False)

AUDIT_FILES = {"report.json", "report.csv", "report.sha256", "summary.txt"}
REPORT_FILES = {
    "report.json": "application/json",
    "report.csv": "text/csv; charset=utf-8",
    "report.html": "text/html; charset=utf-8",
    "report.pdf": "application/pdf",
}


def _sees(staff: Staff, archive: str | None) -> None:
    """An object of ``archive`` (None: node-wide) is visible to ``staff``; the 404 page otherwise."""
    check_read(staff, archive)


def _record(session: Any, staff: Staff, archive: str, code: str) -> Record:
    from archive.services import get_record

    require_archive_read(staff, archive)
    return get_record(session, archive, code)


def _day(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)
    except ValueError:
        raise BadArgument(variant="since", value=text) from None


# -- fixity audits -----------------------------------------------------------------------------------------


@router.get("/audits", response_class=HTMLResponse)
def audits(request: Request, staff: StaffPageDep, settings: SettingsDep) -> HTMLResponse:
    from preservation.audit.listing import list_audit_runs

    scope = readable_archives(staff)
    runs = list_audit_runs(settings, archives=scope)
    may_request_node = scope is None
    return render_staff(
        request,
        "staff/audits.html",
        {"nav": "audits", "runs": runs, "archives": scope, "may_request_node": may_request_node},
    )


@router.post("/audits")
def request_audit(
    staff: StaffPageDep, settings: SettingsDep, archive: Annotated[str, Form()] = ""
) -> RedirectResponse:
    from preservation.audit.listing import request_audit as queue

    target = archive.strip() or None
    if target is None:
        if readable_archives(staff) is not None:
            raise Forbidden(variant="role")  # a node-wide audit is for admins and auditors
    else:
        require_archive_read(staff, target)
    with db.write_session(settings) as s:
        if target is not None:
            from archive.services import get_archive

            get_archive(s, target)
        queue(settings, s, archive=target, agent=staff.login)
    return RedirectResponse("/staff/audits?requested=1", status_code=303)


@router.get("/audits/{run_id}", response_class=HTMLResponse)
def audit_run(request: Request, run_id: str, staff: StaffPageDep, settings: SettingsDep) -> HTMLResponse:
    from preservation.audit.listing import get_audit_run

    run = get_audit_run(settings, run_id)
    _sees(staff, run["archive"])
    return render_staff(request, "staff/audit_run.html", {"nav": "audits", "run": run})


@router.get("/audits/{run_id}/{name}")
def audit_run_file(run_id: str, name: str, staff: StaffPageDep, settings: SettingsDep) -> FileResponse:
    from preservation.audit.listing import audit_file, get_audit_run

    _sees(staff, get_audit_run(settings, run_id)["archive"])
    path = audit_file(settings, run_id, name)
    media = "application/json" if name.endswith(".json") else "text/plain; charset=utf-8"
    if name.endswith(".csv"):
        media = "text/csv; charset=utf-8"
    return FileResponse(path, media_type=media, filename=f"audit-{run_id}-{name}")


# -- 四性检测 reports ---------------------------------------------------------------------------------------


@router.get("/reports", response_class=HTMLResponse)
def reports(
    request: Request,
    staff: StaffPageDep,
    settings: SettingsDep,
    archive: Annotated[str | None, Query()] = None,
    stage: Annotated[str | None, Query()] = None,
    transfer: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    from archive.checks.services import list_runs

    scope = readable_archives(staff)
    if archive:
        require_archive_read(staff, archive)
    stage = stage if stage in ("receipt", "preservation") else None
    with db.read_session(settings) as s:
        runs = list_runs(s, archive=archive or None, stage=stage, transfer=transfer or None, limit=200)
    if scope is not None:
        runs = [r for r in runs if r["archive"] in scope]
    return render_staff(
        request,
        "staff/reports.html",
        {"nav": "audits", "runs": runs, "archive": archive, "stage": stage, "transfer": transfer},
    )


@router.get("/reports/summary", response_class=HTMLResponse)
def reports_summary(
    request: Request,
    staff: StaffPageDep,
    settings: SettingsDep,
    archive: Annotated[str | None, Query()] = None,
    period: Annotated[str, Query()] = "month",
) -> HTMLResponse:
    from archive.checks.services import pass_rates

    scope = readable_archives(staff)
    if archive:
        require_archive_read(staff, archive)
    with db.read_session(settings) as s:
        rates = pass_rates(s, archive or None, period="day" if period == "day" else "month")
    if scope is not None:
        rates = [r for r in rates if r["archive"] in scope]
    return render_staff(
        request, "staff/reports_summary.html", {"nav": "audits", "rates": rates, "archive": archive}
    )


def _run(session: Any, staff: Staff, run_id: str) -> Any:
    from archive.checks.services import get_run

    run = get_run(session, run_id)
    _sees(staff, run.archive.code if run.archive else None)
    return run


@router.get("/reports/{run_id}", response_class=HTMLResponse)
def report(request: Request, run_id: str, staff: StaffPageDep, settings: SettingsDep) -> HTMLResponse:
    from archive.evidence.render import report_body_html
    from archive.evidence.reports import render_run

    with db.write_session(settings) as s:  # the first rendering writes the HTML/PDF and logs their sha256
        run = _run(s, staff, run_id)
        rendered = render_run(settings, s, run)
    body = Markup(report_body_html(rendered.report))
    return render_staff(
        request,
        "staff/report.html",
        {"nav": "audits", "report": rendered.report, "body": body, "has_pdf": rendered.pdf is not None},
    )


@router.get("/reports/{run_id}/evidence.zip")
def report_evidence(run_id: str, staff: StaffPageDep, settings: SettingsDep) -> FileResponse:
    from archive.evidence.reports import cycle_package

    with db.read_session(settings) as s:
        _run(s, staff, run_id)
    with _package_folder(settings) as folder, db.write_session(settings) as s:
        out = folder / f"evidence-{run_id}.zip"
        cycle_package(settings, s, run_id, out, agent=staff.login)
    return _download(out, folder)


@router.get("/reports/{run_id}/{name}")
def report_file(run_id: str, name: str, staff: StaffPageDep, settings: SettingsDep) -> Response:
    from archive.evidence.reports import report_files

    if name not in REPORT_FILES:
        raise NotFound()
    with db.write_session(settings) as s:
        run = _run(s, staff, run_id)
        files = report_files(settings, s, run)
    body = files.get(f"report/{name}")
    if body is None:
        raise NotFound()
    headers = {"Content-Disposition": f'attachment; filename="{run_id}-{name}"'}
    return Response(body, media_type=REPORT_FILES[name], headers=headers)


# -- the event log -----------------------------------------------------------------------------------------


@router.get("/events", response_class=HTMLResponse)
def events(
    request: Request,
    staff: StaffPageDep,
    settings: SettingsDep,
    record: Annotated[str | None, Query()] = None,
    type: Annotated[str | None, Query()] = None,
    agent: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query()] = None,
    until: Annotated[str | None, Query()] = None,
    before: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    from archive.evidence.eventlog import PAGE, EventFilter, event_row, event_types, find_events
    from archive.services import split_record_ref

    until_day = _day(until)
    wanted = EventFilter(
        event_type=type or None,
        agent=agent or None,
        since=_day(since),
        until=until_day + dt.timedelta(days=1) if until_day else None,
        before_id=before,
    )
    with db.read_session(settings) as s:
        if record:
            archive, code = split_record_ref(record)
            wanted.record_id = _record(s, staff, archive, code).id
        rows = find_events(s, wanted, archive_ids=_scope_ids(s, staff))
        types = event_types(s)
    listed = [event_row(ev) for ev in rows]
    filters = {
        "record": record or "",
        "type": type or "",
        "agent": agent or "",
        "since": since or "",
        "until": until or "",
    }
    older = None
    if len(listed) >= PAGE:
        older = "/staff/events?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "before": listed[-1]["id"]}
        )
    return render_staff(
        request,
        "staff/events.html",
        {"nav": "events", "events": listed, "types": types, "filters": filters, "older_url": older},
    )


def _scope_ids(session: Any, staff: Staff) -> list[int] | None:
    from archive.evidence.eventlog import archive_ids

    scope = readable_archives(staff)
    return None if scope is None else archive_ids(session, scope)


@router.get("/events/verify", response_class=HTMLResponse)
def events_verify(request: Request, staff: StaffPageDep, settings: SettingsDep) -> HTMLResponse:
    from archive.events import verify_chain

    if readable_archives(staff) is not None:
        raise Forbidden(variant="role")  # the whole log: admins and auditors
    with db.read_session(settings) as s:
        result = verify_chain(s)
    return render_staff(request, "staff/events_verify.html", {"nav": "events", "result": result.as_dict()})


# -- a record's history and exports -----------------------------------------------------------------------


@router.get("/records/{archive}/{code}/history", response_class=HTMLResponse)
def record_history(
    request: Request, archive: str, code: str, staff: StaffPageDep, settings: SettingsDep
) -> HTMLResponse:
    from archive.evidence.eventlog import event_row
    from archive.evidence.records import record_events

    with db.read_session(settings) as s:
        rec = _record(s, staff, archive, code)
        rows = [event_row(ev) for ev in record_events(s, rec)]
        title = rec.title
    return render_staff(
        request,
        "staff/record_history.html",
        {"nav": "events", "archive": archive, "code": code, "title": title, "events": rows},
    )


@router.get("/records/{archive}/{code}/premis.xml")
def record_premis(archive: str, code: str, staff: StaffPageDep, settings: SettingsDep) -> Response:
    from archive.evidence.records import record_premis as premis

    with db.read_session(settings) as s:
        body = premis(s, _record(s, staff, archive, code))
    return Response(body, media_type="application/xml")


@router.get("/records/{archive}/{code}/mets.xml")
def record_mets(archive: str, code: str, staff: StaffPageDep, settings: SettingsDep) -> Response:
    from archive.evidence.records import record_mets as mets

    with db.read_session(settings) as s:
        body = mets(settings, s, _record(s, staff, archive, code))
    return Response(body, media_type="application/xml")


@router.get("/records/{archive}/{code}/evidence.zip")
def record_evidence(archive: str, code: str, staff: StaffPageDep, settings: SettingsDep) -> FileResponse:
    from archive.evidence.records import package_name, record_package

    with _package_folder(settings) as folder, db.write_session(settings) as s:
        rec = _record(s, staff, archive, code)
        out = folder / f"{package_name(rec)}.zip"
        record_package(settings, s, rec, out, agent=staff.login)
    return _download(out, folder)


@contextmanager
def _package_folder(settings: Settings) -> Iterator[Path]:
    """A temporary folder for a package being written; removed at once if writing it fails."""
    folder = Path(tempfile.mkdtemp(prefix="evidence-", dir=settings.staging_dir))
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _download(out: Path, folder: Path) -> FileResponse:
    """The package as a download; the temporary folder goes once it is sent."""
    return FileResponse(
        out,
        media_type="application/zip",
        filename=out.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
