"""Stored 四性检测 reports rendered to HTML and PDF, and the evidence package of a check run.

    rendered = render_run(settings, session, run)          # report.html + report.pdf beside report.json
    summary = cycle_package(settings, session, run_id, Path("cycle.zip"), agent="li")

The first rendering of a run writes both files next to its ``report.json`` and records their sha256 in an
event (``message digest calculation``, with the run id); later renderings reuse the files. A run's package
holds the report in every form (JSON as stored, every failure, CSV, HTML, PDF), the run's own events, and for
each record a failure names (and, for a transfer's receipt run or the run after a migration or repair, each
record it covered) the record's events and OCFL inventories. A full or sample cycle's package does not carry
every record it checked: its report names the seed, which redraws the sample.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.checks.models import CheckRun
from archive.checks.services import all_failures, get_run, load_report, receipt_run, report_csv
from archive.config import Settings
from archive.errors import ArchiveError, NotFound
from archive.events import DIGEST_CALCULATION, NewEvent, append_events
from archive.evidence.package import Contents, PackageSummary, write_package
from archive.evidence.records import DISSEMINATION, record_events
from archive.evidence.render import find_font, report_html, report_pdf
from archive.models import Archive, Event, Record
from archive.services import split_record_ref, transfer_record_refs
from archive.storage import acquire_lock, release_lock

AGENT = "pearl-archive evidence 0.1"


@dataclass
class RenderedRun:
    report: dict[str, Any]
    html: Path
    pdf: Path | None  # None when no CJK TrueType font is installed
    pdf_sha256: str | None


def _write(path: Path, data: bytes) -> None:
    """Write beside, then rename: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _subject(run: CheckRun) -> tuple[str, str]:
    if run.transfer_id:
        return "transfer", run.transfer_id
    if run.archive is not None:
        return "archive", run.archive.code
    return "node", "node"


def render_run(settings: Settings, session: Session, run: CheckRun) -> RenderedRun:
    """The run's report as HTML and PDF files beside its JSON; the first rendering is logged."""
    report = load_report(run)
    folder = Path(run.report_file or "").parent
    html, pdf = folder / "report.html", folder / "report.pdf"
    font = find_font(settings.report_font)
    lock = acquire_lock(folder / ".render.lock")  # two pages opened at once render (and log) it once
    assert lock is not None
    try:
        fresh = not html.exists() or (font is not None and not pdf.exists())
        if not html.exists():
            _write(html, report_html(report).encode("utf-8"))
        if font is not None and not pdf.exists():
            _write(pdf, report_pdf(report, font))
    finally:
        release_lock(lock)
    have_pdf = pdf.exists()
    if fresh:
        object_type, object_id = _subject(run)
        append_events(
            session,
            [
                NewEvent(
                    event_type=DIGEST_CALCULATION,
                    outcome="success",
                    agent=AGENT,
                    object_type=object_type,
                    object_id=object_id,
                    transfer_id=run.transfer_id,
                    detail=f"四性检测 report {run.id} rendered to HTML and PDF",
                    outcome_detail={
                        "run_id": run.id,
                        "html_sha256": _sha256(html),
                        "pdf_sha256": _sha256(pdf) if have_pdf else None,
                        "font": str(font) if font else None,
                    },
                )
            ],
        )
    return RenderedRun(report, html, pdf if have_pdf else None, _sha256(pdf) if have_pdf else None)


def report_files(
    settings: Settings, session: Session, run: CheckRun, prefix: str = "report"
) -> dict[str, bytes]:
    """The run's report in every form, keyed by payload path (``report/report.json`` …)."""
    rendered = render_run(settings, session, run)
    stored = Path(run.report_file or "")
    files = {
        f"{prefix}/report.json": stored.read_bytes(),  # the bytes whose sha256 the run's event records
        f"{prefix}/report.csv": report_csv(run).encode("utf-8-sig"),
        f"{prefix}/report.html": rendered.html.read_bytes(),
    }
    failures = Path(run.failures_file or "")
    if failures.is_file():
        files[f"{prefix}/failures.jsonl"] = failures.read_bytes()
    if rendered.pdf is not None:
        files[f"{prefix}/report.pdf"] = rendered.pdf.read_bytes()
    return files


def receipt_report_files(settings: Settings, session: Session, transfer_id: str) -> dict[str, bytes]:
    """A transfer's receipt report files, or nothing when the transfer has none (ingested before checks)."""
    try:
        run = receipt_run(session, transfer_id)
    except NotFound:
        return {}
    return report_files(settings, session, run, prefix="report/receipt")


def run_events(session: Session, run: CheckRun) -> list[Event]:
    """The events that carry the run's id (its report's sha256, its rendering, a package of it)."""
    since = run.created_at - dt.timedelta(seconds=1)
    object_type, object_id = _subject(run)
    rows = session.execute(
        select(Event)
        .where(Event.occurred_at >= since, Event.object_type == object_type, Event.object_id == object_id)
        .order_by(Event.id)
    ).scalars()
    return [ev for ev in rows if (ev.outcome_detail or {}).get("run_id") == run.id]


def _records(session: Session, refs: Iterable[str]) -> list[Record]:
    found: dict[int, Record] = {}
    codes = {a.code: a.id for a in session.execute(select(Archive)).scalars()}
    for ref in sorted(set(refs)):
        try:
            archive, code = split_record_ref(ref)
        except ArchiveError:  # a failure about something that is not a record reference
            continue
        row = session.execute(
            select(Record).where(Record.archive_id == codes.get(archive, -1), Record.archival_code == code)
        ).scalar_one_or_none()
        if row is not None:
            found[row.id] = row
    return list(found.values())


def concerned_records(session: Session, run: CheckRun) -> list[Record]:
    """The records a failure names, plus those a transfer's or a post-migration run covered."""
    refs = [str(f["record"]) for f in all_failures(run) if f.get("record")]
    refs += [str(r) for r in (run.extra or {}).get("objects", [])]
    if run.transfer_id:
        refs += transfer_record_refs(session, run.transfer_id)
    return _records(session, refs)


def _dedupe(events: Sequence[Event]) -> list[Event]:
    return sorted({ev.id: ev for ev in events}.values(), key=lambda ev: ev.id)


def cycle_package(
    settings: Settings, session: Session, run_id: str, out: Path, *, agent: str
) -> PackageSummary:
    """Write a check run's evidence package to ``out`` and log it; the caller's transaction commits."""
    run = get_run(session, run_id)
    files = report_files(settings, session, run)
    records = concerned_records(session, run)
    events = list(run_events(session, run))
    for record in records:
        events.extend(record_events(session, record))
    contents = Contents(
        name=f"evidence-{run.id}",
        title=f"四性检测 run {run.id} ({run.stage} {run.scope})",
        events=_dedupe(events),
        object_ids=[r.ocfl_object_id for r in records],
        files=files,
    )
    summary = write_package(settings, session, out, contents)
    object_type, object_id = _subject(run)
    append_events(
        session,
        [
            NewEvent(
                event_type=DISSEMINATION,
                outcome="success",
                agent=agent,
                object_type=object_type,
                object_id=object_id,
                transfer_id=run.transfer_id,
                detail=f"evidence package of 四性检测 run {run.id} exported",
                outcome_detail={
                    "agent_type": "person",
                    "run_id": run.id,
                    "sha256": summary.sha256,
                    "bytes": summary.size,
                    "file": out.name,
                    "head_event_id": summary.head_event_id,
                    "head_hash": summary.head_hash,
                },
            )
        ],
    )
    return summary
