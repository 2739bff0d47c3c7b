"""Reading what the checks kept: runs, reports (JSON, CSV), a transfer's receipt report, pass rates per
archive over time; and recording a manual item's result. Pages (access_portal) and the CLI call these."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from archive.checks.errors import NoReceiptReport, NotManualItem, UnknownCheckRun
from archive.checks.models import CheckItem, CheckRun, ManualCheck
from archive.checks.registry import registry
from archive.checks.report import csv_from_json
from archive.events import VALIDATION, NewEvent, append_events
from archive.models import Archive
from archive.services import get_archive


def get_run(session: Session, run_id: str) -> CheckRun:
    run = session.get(CheckRun, run_id)
    if run is None:
        raise UnknownCheckRun(run_id=run_id)
    return run


def load_report(run: CheckRun) -> dict[str, Any]:
    """The stored JSON report of a run (with ``report_sha256``); its sha256 is checked against the run's."""
    import hashlib

    body = Path(run.report_file or "").read_bytes()
    report = json.loads(body)
    report["report_sha256"] = run.report_sha256
    report["report_sha256_ok"] = hashlib.sha256(body).hexdigest() == run.report_sha256
    return report


def all_failures(run: CheckRun) -> list[dict[str, Any]]:
    """Every failure of a run (the report shows the first few of each item)."""
    path = Path(run.failures_file or "")
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def report_csv(run: CheckRun) -> str:
    return csv_from_json(load_report(run), all_failures(run))


def receipt_run(session: Session, transfer_id: str) -> CheckRun:
    run = session.execute(
        select(CheckRun)
        .where(CheckRun.transfer_id == transfer_id, CheckRun.stage == "receipt")
        .order_by(CheckRun.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if run is None:
        raise NoReceiptReport(transfer=transfer_id)
    return run


def transfer_report(session: Session, transfer_id: str) -> dict[str, Any]:
    """A transfer's receipt report, in the same shape as a cycle's; manual items show the results recorded
    by hand since (``record_manual``), the newest first."""
    report = load_report(receipt_run(session, transfer_id))
    recorded = manual_results(session, archive_id=None, transfer=transfer_id)
    for item in report["items"]:
        mine = [m for m in recorded if m.code == item["code"]]
        if item["status"] != "manual" or not mine:
            continue
        item["recorded"] = [
            {"status": m.status, "agent": m.agent, "note": m.note, "recorded_at": m.recorded_at.isoformat()}
            for m in reversed(mine)
        ]
        if mine[-1].status == "fail":
            item["failures"] = [
                {"record": None, "path": None, "detail": mine[-1].note or "failed inspection"}
            ]
            item["failure_count"] = 1
    return report


def run_summary(run: CheckRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "stage": run.stage,
        "scope": run.scope,
        "archive": run.archive.code if run.archive else None,
        "transfer": run.transfer_id,
        "status": run.status,
        "seed": run.seed,
        "records": run.record_count,
        "files": run.file_count,
        "created": run.created_at.isoformat(),
        "report_sha256": run.report_sha256,
        "failed_items": [i.code for i in run.items if i.status == "fail"],
    }


def list_runs(
    session: Session,
    *,
    archive: str | None = None,
    stage: str | None = None,
    transfer: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first."""
    q = select(CheckRun).options(selectinload(CheckRun.items), selectinload(CheckRun.archive))
    if archive:
        q = q.where(CheckRun.archive_id == get_archive(session, archive).id)
    if stage:
        q = q.where(CheckRun.stage == stage)
    if transfer:
        q = q.where(CheckRun.transfer_id == transfer)
    runs = session.execute(q.order_by(CheckRun.created_at.desc()).limit(limit)).scalars()
    return [run_summary(r) for r in runs]


def pass_rates(
    session: Session, archive: str | None = None, *, since: dt.datetime | None = None, period: str = "month"
) -> list[dict[str, Any]]:
    """Per archive, period (``month`` or ``day``), stage and property: how many automatic item results
    passed, warned and failed, and the pass rate (warnings count as passed). Manual and n/a items are left
    out."""
    q = (
        select(CheckRun.archive_id, CheckRun.created_at, CheckRun.stage, CheckItem.property, CheckItem.status)
        .join(CheckItem, CheckItem.run_id == CheckRun.id)
        .where(CheckItem.status.in_(("pass", "warn", "fail")))
    )
    if archive:
        q = q.where(CheckRun.archive_id == get_archive(session, archive).id)
    if since:
        q = q.where(CheckRun.created_at >= since)
    codes = {a.id: a.code for a in session.execute(select(Archive)).scalars()}
    fmt = "%Y-%m" if period == "month" else "%Y-%m-%d"
    counts: dict[tuple[str | None, str, str, str], dict[str, int]] = defaultdict(
        lambda: {"pass": 0, "warn": 0, "fail": 0}
    )
    for archive_id, created, stage, prop, status in session.execute(q):
        key = (codes.get(archive_id) if archive_id else None, created.strftime(fmt), stage, prop)
        counts[key][status] += 1
    out = []
    for (code, when, stage, prop), c in sorted(counts.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        total = c["pass"] + c["warn"] + c["fail"]
        out.append(
            {
                "archive": code,
                "period": when,
                "stage": stage,
                "property": prop,
                "passed": c["pass"] + c["warn"],
                "warned": c["warn"],
                "failed": c["fail"],
                "total": total,
                "pass_rate": round((c["pass"] + c["warn"]) / total, 4) if total else None,
            }
        )
    return out


def record_manual(
    session: Session,
    *,
    code: str,
    archive: str,
    status: str,
    agent: str,
    transfer: str | None = None,
    note: str | None = None,
) -> ManualCheck:
    """Record a manual item's result (pass or fail) for an archive or a transfer, with its event."""
    check = registry().get(code)
    if check is None or check.automatic:
        manual = ", ".join(c.code for c in registry().values() if not c.automatic)
        raise NotManualItem(code=code, manual=manual)
    arch = get_archive(session, archive)
    row = ManualCheck(
        code=code, archive_id=arch.id, transfer_id=transfer, status=status, note=note, agent=agent
    )
    session.add(row)
    append_events(
        session,
        [
            NewEvent(
                event_type=VALIDATION,
                outcome="success" if status == "pass" else "failure",
                agent=agent,
                object_type="transfer" if transfer else "archive",
                object_id=transfer or archive,
                transfer_id=transfer,
                detail=f"四性检测 manual item {code} ({check.name_en}): {status}",
                outcome_detail={"dat_70_2018": code, "status": status, "note": note},
            )
        ],
    )
    session.flush()
    return row


def manual_results(session: Session, *, archive_id: int | None, transfer: str | None) -> list[ManualCheck]:
    q = select(ManualCheck)
    if transfer:
        q = q.where(ManualCheck.transfer_id == transfer)
    elif archive_id is not None:
        q = q.where(ManualCheck.archive_id == archive_id)
    return list(session.execute(q.order_by(ManualCheck.recorded_at)).scalars())
