"""Running an audit: plan objects ahead, hash their content on every core, judge, record, report.

Objects are planned and their content files hashed in a thread pool of ``workers`` threads (default
``Settings.workers``: one per core; ``hashlib`` and file reads release the GIL). Up to
:data:`LOOKAHEAD_OBJECTS` objects (or :data:`LOOKAHEAD_FILES` files) are planned ahead and their batches run
largest first, so a big file does not end up hashing alone at the end while the other cores idle. Memory stays
bounded by that look-ahead whatever the root holds (only the list of object ids in scope is kept whole).

The run ends with the report files and one summary ``fixity check`` event (object_type ``node``,
object_id ``audit:<run-id>``) carrying the totals and the sha256 of ``report.json``, ``report.csv`` and
``summary.txt``. When anything failed, the summary event *is the alert*: outcome ``failure`` and a detail
starting with ``ALERT:``; the same line is logged at ERROR level (logger ``preservation.audit``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.config import Settings
from archive.errors import BadArgument
from archive.events import FIXITY_CHECK, NewEvent
from archive.replicas.target import FsTarget
from archive.replicas.target import Target as Replica
from archive.storage import object_relpath
from archive.storage.ocfl import ROOT_NAMASTE
from preservation.audit.judge import AGENT, failure_event, judge
from preservation.audit.ledger import Ledger, RunDir, now_text
from preservation.audit.plan import Hashed, Plan, batches, hash_batch, plan_object
from preservation.audit.replica import repair_inventory, repair_object
from preservation.audit.report import AuditReport, Failure, FailureKind, Session, write_report_files
from preservation.audit.scope import CATALOGUE_CHUNK, Target, as_utc, load_catalogue, scope_targets

log = logging.getLogger("preservation.audit")

#: Algorithms an audit may compute: sha512 is the OCFL content digest, sha256 the fixity block's.
ALGORITHMS = ("sha512", "sha256")
LOOKAHEAD_OBJECTS = 64
LOOKAHEAD_FILES = 50_000


@dataclass
class AuditProgress:
    """Handed to the ``progress`` callback after every hashed batch and every finished object."""

    run_id: str
    objects_total: int
    objects_done: int
    files_done: int
    bytes_done: int
    failures: int


ProgressCallback = Callable[[AuditProgress], None]


def run_audit(
    settings: Settings,
    *,
    archive: str | None = None,
    since: dt.datetime | None = None,
    replica_root: Path | None = None,
    replicas: Sequence[Replica] | None = None,
    report_dir: Path | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    algorithms: Sequence[str] = ("sha512",),
) -> AuditReport:
    """Audit the objects in scope (see :mod:`preservation.audit`); write the report; record the events.
    Damaged files are repaired from ``replicas`` (:func:`archive.replicas.targets`), or from the one
    file-system replica at ``replica_root`` (the older form of the same thing)."""
    algos = tuple(dict.fromkeys(a.lower() for a in algorithms))
    if not algos or any(a not in ALGORITHMS for a in algos):
        raise BadArgument(variant="audit_algorithms", known=", ".join(ALGORITHMS), given=algorithms)
    if archive is not None:
        archive = archive.strip().upper()
    if since is not None:
        since = as_utc(since)
    root = settings.ocfl_root
    if not (root / ROOT_NAMASTE).is_file():
        raise BadArgument(variant="not_ocfl_root", root=root)
    chosen = list(replicas or [])
    if replica_root is not None:
        replica = Path(replica_root).absolute()
        if not (replica / ROOT_NAMASTE).is_file():
            raise BadArgument(variant="replica_not_ocfl_root", root=replica)
        chosen.append(FsTarget(replica))
    scope = {"archive": archive, "since": since.isoformat() if since else None, "algorithms": list(algos)}
    run, resumed = RunDir.open(settings.home_dir / "audits", scope, resume)
    try:
        return _run(
            settings, run, resumed, scope, archive, since, chosen, report_dir, workers, progress, algos
        )
    finally:
        run.close()


def _run(
    settings: Settings,
    run: RunDir,
    resumed: bool,
    scope: dict[str, Any],
    archive: str | None,
    since: dt.datetime | None,
    replicas: list[Replica],
    report_dir: Path | None,
    workers: int | None,
    progress: ProgressCallback | None,
    algos: tuple[str, ...],
) -> AuditReport:
    root = settings.ocfl_root
    session = Session(started_at=now_text())
    run.state["sessions"].append(dataclasses.asdict(session))
    run.save()
    clock = time.perf_counter()
    targets, odd_dirs = scope_targets(settings, archive, since)
    done = run.done_objects() if resumed else set()
    todo = [t for t in targets if t.object_id not in done]
    counters = AuditProgress(run.run_id, len(todo) + len(done), len(done), 0, 0, 0)
    ledger = Ledger(settings, run)
    n_workers = max(1, workers or settings.workers)
    try:
        with ThreadPoolExecutor(n_workers, thread_name_prefix="audit") as pool:
            try:
                _drive(
                    pool,
                    settings,
                    root,
                    todo,
                    odd_dirs,
                    replicas,
                    algos,
                    run.run_id,
                    ledger,
                    counters,
                    progress,
                    n_workers,
                )
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    except BaseException:
        try:
            ledger.flush()
        finally:
            _end_session(run, session, clock, counters, interrupted=True)
            run.save()
        raise
    _end_session(run, session, clock, counters, interrupted=False)
    return _finish(settings, run, report_dir or run.dir, ledger)


def _end_session(
    run: RunDir, session: Session, clock: float, counters: AuditProgress, *, interrupted: bool
) -> None:
    session.finished_at = now_text()
    session.seconds = round(time.perf_counter() - clock, 6)
    session.files, session.bytes = counters.files_done, counters.bytes_done
    session.interrupted = interrupted
    run.state["sessions"][-1] = dataclasses.asdict(session)


def _drive(
    pool: ThreadPoolExecutor,
    settings: Settings,
    root: Path,
    todo: list[Target],
    odd_dirs: dict[str, Path],
    replicas: list[Replica],
    algos: tuple[str, ...],
    run_id: str,
    ledger: Ledger,
    counters: AuditProgress,
    progress: ProgressCallback | None,
    n_workers: int,
) -> None:
    """Plan objects ahead (up to LOOKAHEAD_OBJECTS / LOOKAHEAD_FILES), hash their batches largest first
    (so a big file never runs alone at the end while other cores idle), judge each object when its last
    batch is in."""

    class _Open:
        def __init__(self, target: Target, obj_dir: Path) -> None:
            self.target = target
            self.obj_dir = obj_dir
            self.plan: Plan | None = None
            self.hashed: dict[str, Hashed] = {}
            self.pending = 0
            self.files = 0

    in_flight: dict[Future[Any], tuple[str, _Open]] = {}
    ready: list[tuple[int, int, _Open, list[str]]] = []  # heap: (-bytes, seq, object, content paths)
    seq = itertools.count()
    next_target = loaded = open_objects = open_files = planning = hashing = 0

    def object_dir(t: Target) -> Path:
        return odd_dirs.get(t.object_id) or root / object_relpath(t.object_id)

    def finalize(o: _Open) -> None:
        nonlocal open_objects, open_files
        assert o.plan is not None
        rel_obj = o.obj_dir.relative_to(root).as_posix() if o.obj_dir.is_relative_to(root) else str(o.obj_dir)
        result = judge(o.target, o.plan, o.hashed, rel_obj)
        events: list[NewEvent] = []
        if replicas and result.failures and o.obj_dir.is_relative_to(root):
            tmp_dir = settings.staging_dir / "audit-repair"
            fixed, repairs = repair_inventory(settings, result, o.obj_dir, rel_obj, replicas, tmp_dir, run_id)
            events += repairs
            if fixed:  # audit the object again against its restored inventory
                restored = [f for f in result.failures if f.kind == FailureKind.inventory and f.repaired]
                o.plan = plan_object(o.obj_dir, o.target)
                again: dict[str, Hashed] = {}
                for rels, _nbytes in batches(o.plan.contents):
                    again.update((h.rel, h) for h in hash_batch(o.obj_dir, rels, algos))
                result = judge(o.target, o.plan, again, rel_obj)
                result.failures[:0] = restored
            events += repair_object(result, o.plan, o.obj_dir, rel_obj, replicas, tmp_dir, run_id)
        if result.failures:
            events.insert(0, failure_event(result, run_id))
        ledger.add(result, events)
        o.target.files = []  # the catalogue rows are no longer needed
        open_objects -= 1
        open_files -= o.files
        counters.objects_done += 1
        counters.failures += len(result.failures)
        if ledger.due():
            ledger.flush()
        if progress is not None:
            progress(counters)

    while True:
        while (
            planning < n_workers
            and next_target < len(todo)
            and open_objects < LOOKAHEAD_OBJECTS
            and (open_files < LOOKAHEAD_FILES or open_objects == 0)
        ):
            if next_target >= loaded:  # catalogue rows are read before the object is planned (see races)
                load_catalogue(settings, todo[loaded : loaded + CATALOGUE_CHUNK])
                loaded += CATALOGUE_CHUNK
            t = todo[next_target]
            next_target += 1
            o = _Open(t, object_dir(t))
            open_objects += 1
            planning += 1
            in_flight[pool.submit(plan_object, o.obj_dir, t)] = ("plan", o)
        while ready and hashing < 2 * n_workers:
            _neg, _seq, o, rels = heapq.heappop(ready)
            hashing += 1
            in_flight[pool.submit(hash_batch, o.obj_dir, rels, algos)] = ("hash", o)
        if not in_flight:
            break
        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for fut in finished:
            kind, o = in_flight.pop(fut)
            if kind == "plan":
                planning -= 1
                o.plan = fut.result()
                o.files = len(o.plan.contents)
                open_files += o.files
                for rels, nbytes in batches(o.plan.contents):
                    heapq.heappush(ready, (-nbytes, next(seq), o, rels))
                    o.pending += 1
                if o.pending == 0:
                    finalize(o)
            else:
                hashing -= 1
                batch: list[Hashed] = fut.result()
                for h in batch:
                    o.hashed[h.rel] = h
                    if h.error is None:
                        counters.files_done += 1
                        counters.bytes_done += h.size
                o.pending -= 1
                if o.pending == 0:
                    finalize(o)
                elif progress is not None:
                    progress(counters)


def _finish(settings: Settings, run: RunDir, report_dir: Path, ledger: Ledger) -> AuditReport:
    """Report over every finished object of the run (committed lines + the ledger's pending ones), then one
    transaction: the pending catalogue updates and events, and the summary event with the report's sha256."""
    objects = files = nbytes = uncatalogued = 0
    failures: list[Failure] = []
    for line in itertools.chain(run.lines(), (json.loads(raw) for raw in ledger.lines)):
        objects += 1
        files += line["files"]
        nbytes += line["bytes"]
        uncatalogued += line.get("kind") == "object"
        failures.extend(Failure.from_dict(f) for f in line["failures"])
    sessions = [Session(**s) for s in run.state["sessions"]]
    report = AuditReport(
        run_id=run.run_id,
        scope=run.state["scope"],
        started_at=sessions[0].started_at,
        finished_at=sessions[-1].finished_at or now_text(),
        objects=objects,
        files=files,
        bytes=nbytes,
        seconds=sum(s.seconds for s in sessions),
        failures=failures,
        sessions=sessions,
        uncatalogued_objects=uncatalogued,
    )
    digests = write_report_files(report, report_dir)
    n = len(failures)
    if n:
        detail = (
            f"ALERT: fixity audit {run.run_id} found {n} problem(s) "
            f"({', '.join(f'{k} {c}' for k, c in report.by_kind().items())}); "
            f"{report.repaired} repaired from the replica, {n - report.repaired} not; "
            f"report {report_dir / 'report.json'} sha256 {digests['report.json']}"
        )
        log.error(detail)
    else:
        detail = (
            f"fixity audit {run.run_id}: {objects} objects, {files} files, {nbytes} bytes verified; "
            f"report {report_dir / 'report.json'} sha256 {digests['report.json']}"
        )
    event = NewEvent(
        event_type=FIXITY_CHECK,
        outcome="failure" if n else "success",
        agent=AGENT,
        object_type="node",
        object_id=f"audit:{run.run_id}",
        detail=detail,
        outcome_detail={
            "run": run.run_id,
            "scope": report.scope,
            "objects": objects,
            "files": files,
            "bytes": nbytes,
            "failures": n,
            "repaired": report.repaired,
            "by_kind": report.by_kind(),
            "alert": bool(n),
            "report_dir": str(report_dir),
            "report_sha256": digests,
        },
    )
    ledger.events.append(event)
    ledger.flush()
    report.event_identifier = event.identifier
    run.state.update(
        status="finished", report_dir=str(report_dir), report_sha256=digests, event=event.identifier
    )
    run.save()
    return report
