"""Running the checks: at receipt (called by the ingest pipeline on a transfer's records before they are
stored), in preservation cycles (``archive check --cycle full|sample``) and on the objects a migration or
repair touched. Each run gives a :class:`~archive.checks.report.Report`; :func:`store_report` keeps it.

Per-file work (re-hashing in preservation, opening, rendering) runs on ``ARCHIVE_HASH_WORKERS`` threads
(one per core by default), and the virus scan beside it (clamscan is one child process for the whole run;
clamd gets the files streamed concurrently), so the expensive items share the machine's cores.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import stat
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from archive import db
from archive.checks import history
from archive.checks.content import Findings, examine
from archive.checks.items import CHECKS, Context
from archive.checks.models import CheckItem, CheckRun, ManualCheck
from archive.checks.registry import CheckDef, Stage, for_stage
from archive.checks.report import Failure, ItemResult, Report, Status, new_run_id, write_files
from archive.checks.seals import SealFindings, check_seals
from archive.checks.subjects import FileView, RecordView, from_catalogue
from archive.checks.virus import ScanResult, scan
from archive.config import Settings
from archive.events import VALIDATION, NewEvent, append_events
from archive.home import store_for
from archive.models import Archive, Record, utcnow

AGENT = "pearl-archive checks 0.1"
#: Items decided by the per-file pass.
FILE_ITEMS = ("1-1", "1-10", "1-14", "2-5", "3-2", "3-3", "3-4")


@dataclass
class Mapped:
    """Ingest problems (receipt) by item code: errors fail the item, warnings make it warn."""

    errors: dict[str, list[Failure]]
    warnings: dict[str, list[Failure]]


def _file_pass(
    ctx: Context, pool: Executor, *, rehash: bool, probed: bool
) -> tuple[dict[str, list[Failure]], dict[str, int], int]:
    """Findings by item, files checked by item, files with an opener. ``probed``: the files' properties
    are the ingest's identification of these bytes (receipt), not the catalogue's record of them."""
    settings = ctx.settings
    accepted = frozenset(m.lower() for m in settings.check_accepted_formats) | frozenset(
        settings.check_accepted_formats
    )
    jobs = [(r, f) for r in ctx.records for f in r.files]
    # biggest first, so that the last file does not leave a core idle
    jobs.sort(key=lambda rf: -rf[1].size)

    def some(batch: list[tuple[RecordView, FileView]]) -> list[Findings]:
        return [
            examine(f, rehash=rehash, accepted=accepted, timeout=settings.tool_timeout, probed=probed)
            for _, f in batch
        ]

    # small files go in batches, so that a thread's hand-over does not cost more than the file
    batches: list[list[tuple[RecordView, FileView]]] = []
    for job in jobs:
        if not batches or len(batches[-1]) >= 64 or job[1].size > 1 << 20:
            batches.append([])
        batches[-1].append(job)
    found: dict[str, list[Failure]] = {code: [] for code in FILE_ITEMS}
    opened = 0
    for batch, results in zip(batches, pool.map(some, batches), strict=True):
        for (r, f), findings in zip(batch, results, strict=True):
            opened += findings.opened
            for code, details in findings.by_item.items():
                found[code].extend(Failure(r.ref, f.path, d) for d in details)
    checked = dict.fromkeys(FILE_ITEMS, len(jobs))
    checked["3-2"] = opened
    return found, checked, opened


def _scan_stored(records: Sequence[RecordView], settings: Settings) -> ScanResult:
    """The virus scan of the records' files that are there (a missing one is 2-5's)."""
    present: dict[Path, int] = {}
    for r in records:
        for f in r.files:
            if f.location is not None:
                try:
                    st = os.stat(f.location)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    present[f.location] = st.st_size
    return scan(list(present), settings, present)


def run_checks(
    settings: Settings,
    stage: Stage,
    records: list[RecordView],
    *,
    scope: str,
    archive: str | None = None,
    transfer: str | None = None,
    seed: int | None = None,
    fraction: float | None = None,
    mapped: Mapped | None = None,
    not_reached: bool = False,
    full_chain: bool = False,
    manual: Sequence[ManualCheck] = (),
    scanned: Future[ScanResult] | None = None,
) -> Report:
    """Every check of ``stage`` on ``records``. At receipt ``mapped`` carries the ingest's problems;
    ``not_reached``: the transfer was refused before its records could be read, so only mapped items count;
    ``scanned``: a virus scan of the records' files the caller started earlier (the ingest starts it beside
    hashing and identification)."""
    mapped = mapped or Mapped({}, {})
    ctx = Context(settings, stage, records, mapped=mapped.errors)
    checks = for_stage(stage)
    file_found: dict[str, list[Failure]] = {}
    file_checked: dict[str, int] = {}
    virus = ScanResult()
    events: history.EventFindings | None = None
    sealed: SealFindings | None = None
    if not not_reached:
        # the virus scan, the event log and the seals run beside the file pass; the seals' objects and the
        # files share the pool's threads
        with (
            ThreadPoolExecutor(settings.workers, thread_name_prefix="check") as pool,
            ThreadPoolExecutor(3, thread_name_prefix="check-side") as side,
        ):
            scanning = scanned or side.submit(_scan_stored, records, settings)
            preserving = stage == "preservation"
            checking = (
                side.submit(history.check_events, settings, records, full_chain) if preserving else None
            )
            sealing = (
                side.submit(check_seals, settings, records, pool)
                if preserving and any(c.code == "1-1" for c in checks)
                else None
            )
            file_found, file_checked, _ = _file_pass(ctx, pool, rehash=preserving, probed=stage == "receipt")
            virus = scanning.result()
            events = checking.result() if checking else None
            sealed = sealing.result() if sealing else None
    elif stage == "preservation":
        events = history.check_events(settings, records, full_chain)
    by_path = {f.location: (r.ref, f.path) for r in records for f in r.files if f.location is not None}
    items: list[ItemResult] = []
    for c in checks:
        warned = mapped.warnings.get(c.code, [])
        if not c.automatic:
            items.append(_manual_item(c, [m for m in manual if m.code == c.code]))
            continue
        if not_reached:
            errs = mapped.errors.get(c.code, [])
            status: Status = "fail" if errs else ("warn" if warned else "n/a")
            note = None if errs or warned else "not reached: the transfer was refused before this check"
            items.append(ItemResult(c, status, 0, [*errs, *warned], note))
            continue
        if c.code == "1-9" and scope in ("sample", "objects"):  # gaps between drawn records mean nothing
            items.append(ItemResult(c, "n/a", 0, [], "continuity needs every record: see the full cycle"))
            continue
        result = _decide(ctx, c, file_found, file_checked, virus, by_path, events, sealed, stage)
        if warned and result.status == "pass":
            result.status = "warn"
            result.failures.extend(warned)
        items.append(result)
    report = Report(
        run_id=new_run_id(),
        stage=stage,
        scope=scope,
        items=items,
        archive=archive,
        transfer=transfer,
        seed=seed,
        fraction=fraction,
        records=len(records),
        files=sum(len(r.files) for r in records),
    )
    if virus.engine:
        report.extra["virus_engine"] = virus.engine
    return report


def _decide(
    ctx: Context,
    c: CheckDef,
    file_found: dict[str, list[Failure]],
    file_checked: dict[str, int],
    virus: ScanResult,
    by_path: dict[Path, tuple[str, str]],
    events: history.EventFindings | None,
    sealed: SealFindings | None,
    stage: str,
) -> ItemResult:
    errs = list(ctx.mapped.get(c.code, []))
    if c.code == "4-1":
        if virus.unavailable:
            return ItemResult(c, "warn", 0, errs, f"no virus scan: {virus.unavailable}")
        found = [Failure(*by_path[p], f"infected: {sig}") for p, sig in virus.infected.items()]
        found += [Failure(*by_path[p], f"not scanned: {e}") for p, e in virus.errors.items()]
        status: Status = "fail" if found or errs else "pass"
        return ItemResult(c, status, file_checked.get("1-1", 0), [*errs, *found], virus.engine)
    if c.code == "1-1":
        found = [*errs, *file_found.get(c.code, [])]
        if stage == "receipt":
            note = (
                "digests verified against the bag's manifests while receiving (mismatches under 1-14); "
                "signatures and timestamps: n/a (the versions are sealed when they are stored)"
            )
            return ItemResult(c, "fail" if found else "pass", file_checked.get(c.code, 0), found, note)
        sealed = sealed if sealed is not None else check_seals(ctx.settings, ctx.records)
        found += sealed.failures
        status = "fail" if found else "warn" if sealed.warnings else "pass"
        note = sealed.note(ctx.settings.tsa_url is not None)
        return ItemResult(c, status, file_checked.get(c.code, 0), [*found, *sealed.warnings], note)
    if c.code in ("2-6", "4-5"):
        found = [*errs, *(events.by_item.get(c.code, []) if events else [])]
        checked = events.checked if events else 0
        return ItemResult(
            c, "fail" if found else "pass", checked, found, events.notes.get(c.code) if events else None
        )
    if c.code in ("3-1", "4-4") and stage == "preservation":
        found = [*errs, *_object_findings(ctx.records, c.code)]
        return ItemResult(c, "fail" if found else "pass", len(ctx.records), found)
    if c.code in FILE_ITEMS:
        found = [*errs, *file_found.get(c.code, [])]
        if c.code == "1-14" and stage == "preservation":
            found += _object_findings(ctx.records, c.code)
        checked = file_checked.get(c.code, 0)
        if c.code == "3-2" and not checked and not found:
            return ItemResult(c, "n/a", 0, [], "no file of a format this node can open")
        return ItemResult(c, "fail" if found else "pass", checked, found)
    fn = CHECKS.get(c.key)
    if fn is None:  # decided at receipt by the ingest's own checks alone (mapped problems)
        return ItemResult(c, "fail" if errs else "pass", len(ctx.records), errs)
    return fn(ctx, c)


def _object_findings(records: Iterable[RecordView], code: str) -> list[Failure]:
    out: list[Failure] = []
    for r in records:
        if code == "4-4":
            out += [Failure(r.ref, r.object_id, p) for p in r.problems]
        elif code == "3-1" and not r.problems:
            out += _metadata_readable(r)
        elif code == "1-14" and not r.problems and r.metadata_path is None:
            out.append(Failure(r.ref, "metadata/record.json", "not in the object's head version"))
    return out


def _metadata_readable(r: RecordView) -> list[Failure]:
    if r.metadata_path is None:
        return [Failure(r.ref, "metadata/record.json", "missing")]
    try:
        body = json.loads(r.metadata_path.read_bytes())
        code = body["record"]["archival_code"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [Failure(r.ref, "metadata/record.json", f"unreadable: {str(exc)[:200]}")]
    if code != r.archival_code:
        return [Failure(r.ref, "metadata/record.json", f"names {code!r}, the catalogue {r.archival_code!r}")]
    return []


def _manual_item(c: CheckDef, results: Sequence[ManualCheck]) -> ItemResult:
    if not results:
        return ItemResult(c, "manual", 0, [], "to be recorded by hand: archive check record-manual")
    last = max(results, key=lambda m: m.recorded_at)
    note = f"recorded by {last.agent} at {last.recorded_at:%Y-%m-%d %H:%M}: {last.status}"
    failures = [Failure(None, None, last.note or "failed inspection")] if last.status == "fail" else []
    return ItemResult(c, "manual", len(results), failures, note + (f" — {last.note}" if last.note else ""))


# -- preservation cycles ---------------------------------------------------------------------------------


def choose_records(
    settings: Settings, cycle: str, archive: str | None, seed: int | None, fraction: float | None
) -> tuple[list[int], int | None, float | None]:
    """The record ids a cycle covers: all of them, or a seeded random sample (the same seed, the same
    records, as long as the archive holds the same records)."""
    with db.read_session(settings) as s:
        q = select(Record.id).order_by(Record.id)
        if archive:
            q = q.join(Archive, Record.archive_id == Archive.id).where(Archive.code == archive)
        ids = list(s.execute(q).scalars())
    if cycle == "full":
        return ids, None, None
    fraction = fraction or settings.check_sample_fraction
    seed = seed if seed is not None else secrets.randbits(48)
    k = min(len(ids), math.ceil(len(ids) * fraction))
    return sorted(random.Random(seed).sample(ids, k)), seed, fraction


def load_views(settings: Settings, record_ids: Sequence[int]) -> list[RecordView]:
    """Views of the records, their objects' inventories read on ``ARCHIVE_HASH_WORKERS`` threads."""
    store = store_for(settings)
    views: list[RecordView] = []
    with db.read_session(settings) as s, ThreadPoolExecutor(settings.workers) as pool:
        for i in range(0, len(record_ids), 500):
            views.extend(from_catalogue(s, store, record_ids[i : i + 500], map_fn=pool.map))
    return views


def run_cycle(
    settings: Settings,
    cycle: str,
    *,
    archive: str | None = None,
    seed: int | None = None,
    fraction: float | None = None,
    agent: str = AGENT,
) -> Report:
    """A preservation cycle (``full`` or ``sample``), stored with its event."""
    if archive:
        from archive.services import get_archive

        with db.read_session(settings) as s:
            get_archive(s, archive)  # ARC… for an unknown archive
    ids, seed, fraction = choose_records(settings, cycle, archive, seed, fraction)
    views = load_views(settings, ids)
    report = run_checks(
        settings,
        "preservation",
        views,
        scope=cycle,
        archive=archive,
        seed=seed,
        fraction=fraction,
        full_chain=cycle == "full",
    )
    store_report(settings, report, agent=agent)
    return report


def check_objects(
    settings: Settings, record_ids: Sequence[int], *, reason: str, agent: str = AGENT
) -> Report:
    """The preservation checks on the records a migration or repair just touched."""
    views = load_views(settings, sorted(set(record_ids)))
    report = run_checks(settings, "preservation", views, scope="objects")
    report.extra["reason"] = reason
    report.extra["objects"] = [v.ref for v in views]
    store_report(settings, report, agent=agent)
    return report


# -- keeping reports -----------------------------------------------------------------------------------


def store_report(settings: Settings, report: Report, *, agent: str = AGENT) -> CheckRun:
    """Write the report files, the run and item rows, and the event carrying the report's sha256."""
    path, failures, digest = write_files(report, settings.home_dir, settings.problems_shown)
    report.extra["report_sha256"] = digest
    if report.transfer:
        object_type, object_id = "transfer", report.transfer
    elif report.archive:
        object_type, object_id = "archive", report.archive
    else:
        object_type, object_id = "node", "node"
    outcome = {"pass": "success", "warn": "warning"}.get(report.status, "failure")
    with db.write_session(settings) as s:
        archive_id = None
        if report.archive:
            archive_id = s.execute(
                select(Archive.id).where(Archive.code == report.archive)
            ).scalar_one_or_none()
        run = CheckRun(
            id=report.run_id,
            stage=report.stage,
            scope=report.scope,
            archive_id=archive_id,
            transfer_id=report.transfer,
            seed=report.seed,
            fraction=report.fraction,
            status=report.status,
            record_count=report.records,
            file_count=report.files,
            agent=agent,
            created_at=report.created,
            finished_at=utcnow(),
            report_file=str(path),
            failures_file=str(failures),
            report_sha256=digest,
            extra={k: v for k, v in report.extra.items() if k != "report_sha256"},
        )
        run.items = [
            CheckItem(
                code=i.check.code,
                property=i.check.property,
                status=i.status,
                checked=i.checked,
                failure_count=len(i.failures),
            )
            for i in report.items
        ]
        s.add(run)
        append_events(
            s,
            [
                NewEvent(
                    event_type=VALIDATION,
                    outcome=outcome,
                    agent=agent,
                    object_type=object_type,
                    object_id=object_id,
                    transfer_id=report.transfer,
                    detail=f"四性检测 (DA/T 70-2018) {report.stage} {report.scope}: {report.status}",
                    outcome_detail={
                        "run_id": report.run_id,
                        "report_sha256": digest,
                        "stage": report.stage,
                        "scope": report.scope,
                        "status": report.status,
                        "failed_items": [i.check.code for i in report.items if i.status == "fail"],
                        "seed": report.seed,
                    },
                )
            ],
        )
    return run
