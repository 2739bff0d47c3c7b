"""Fixity audit runs as auditors see them: the list, one run with every failure, and asking for a run.

Runs are the directories ``$ARCHIVE_HOME/audits/<run-id>/`` (:mod:`preservation.audit.ledger`); a finished
one has its ``report.json`` (:mod:`preservation.audit.report`). :func:`request_audit` queues a run for a
worker (the audit is long work: never inside a web request) and logs who asked, as a PREMIS event.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from archive.config import Settings
from archive.errors import BrokerUnavailable
from archive.events import FIXITY_CHECK, NewEvent, append_events
from archive.evidence.errors import UnknownAuditRun

AUDIT_REQUEST_TASK = "preservation.audit_requested"
RUN_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def _audits(settings: Settings) -> Path:
    return settings.home_dir / "audits"


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return {}


def run_summary(folder: Path) -> dict[str, Any]:
    state = _read(folder / "run.json")
    report = _read(folder / "report.json")
    totals = report.get("totals", {})
    sessions = state.get("sessions", [])
    return {
        "run_id": state.get("run_id", folder.name),
        "status": state.get("status", "unknown"),
        "archive": (state.get("scope") or {}).get("archive"),
        "since": (state.get("scope") or {}).get("since"),
        "algorithms": (state.get("scope") or {}).get("algorithms", []),
        "started_at": sessions[0].get("started_at") if sessions else None,
        "finished_at": report.get("finished_at"),
        "ok": report.get("ok"),
        "files": totals.get("files", sum(int(s.get("files", 0)) for s in sessions)),
        "objects": totals.get("objects"),
        "failures": totals.get("failures"),
        "repaired": totals.get("repaired"),
        "report_sha256": state.get("report_sha256", {}),
    }


def list_audit_runs(settings: Settings, *, archives: list[str] | None = None) -> list[dict[str, Any]]:
    """Every run, newest first; ``archives`` limits the list to runs scoped to those archives."""
    root = _audits(settings)
    if not root.is_dir():
        return []
    runs = [run_summary(d) for d in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True)]
    if archives is not None:
        runs = [r for r in runs if r["archive"] in archives]
    return runs


def get_audit_run(settings: Settings, run_id: str) -> dict[str, Any]:
    """One run's summary with its report (every failure) when it has finished."""
    folder = _audits(settings) / run_id
    if not RUN_ID.match(run_id) or not (folder / "run.json").is_file():
        raise UnknownAuditRun(run_id=run_id)
    return {**run_summary(folder), "report": _read(folder / "report.json") or None}


def audit_file(settings: Settings, run_id: str, name: str) -> Path:
    """``report.json`` / ``report.csv`` / ``report.sha256`` / ``summary.txt`` of a run, for download."""
    get_audit_run(settings, run_id)
    path = _audits(settings) / run_id / name
    if name not in {"report.json", "report.csv", "report.sha256", "summary.txt"} or not path.is_file():
        raise UnknownAuditRun(variant="file", run_id=run_id, name=name)
    return path


def request_audit(settings: Settings, session: Session, *, archive: str | None, agent: str) -> str:
    """Queue a fixity audit (of one archive, or every object) for a worker; the event says who asked.
    Returns the task id."""
    from kombu.exceptions import OperationalError as KombuOperationalError

    from preservation.celery_app import QUEUE, app_for, broker_url_and_options

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*noload.*", category=DeprecationWarning)  # as jobs.send
        try:
            result = app_for(settings).send_task(AUDIT_REQUEST_TASK, args=[archive, agent], queue=QUEUE)
        except (KombuOperationalError, OSError) as exc:  # the broker (Redis) cannot be reached: a 503
            raise BrokerUnavailable(url=broker_url_and_options(settings)[0], reason=exc) from exc
    append_events(
        session,
        [
            NewEvent(
                event_type=FIXITY_CHECK,
                outcome="success",
                agent=agent,
                object_type="archive" if archive else "node",
                object_id=archive or "node",
                detail="fixity audit requested" + (f" for {archive}" if archive else ""),
                outcome_detail={"agent_type": "person", "requested": True, "task_id": str(result.id)},
            )
        ],
    )
    return str(result.id)
