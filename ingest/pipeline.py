"""The ingest pipeline: from a BagIt transfer to preserved, catalogued records — all or nothing.

Stages (each timed in ``Transfer.timings``)::

    unpack (zip/tar, safely) → open bag (structure, tag files) → read records.csv → check duplicates
    → stream every payload file once: hash all algorithms (the bag's + sha256 + sha512 [+ sm3]) and copy into
      staged OCFL objects → identify formats (PRONOM, MIME, PDF facts) → decide access (Archives Law art. 27)
    → journal the object ids → move objects into the storage root → one catalogue transaction
      (records, files, events, outbox, bag fingerprint) → done

Every problem found on the way is collected; if any is an error, nothing is stored and the transfer is
recorded as rejected with all of them. A process killed anywhere is rolled back by :mod:`archive.journal`.

Object layout (one OCFL object per record, id ``urn:pearl-archive:<ARCHIVE>:<档号>``)::

    originals/<path under data/>   the transferred files, byte for byte
    metadata/record.json           descriptive metadata, the access decision, technical metadata per file
    metadata/premis.xml            the record's PREMIS events

and one object per transfer (``urn:pearl-archive:<ARCHIVE>:transfer:<id>``) holding the bag's tag files and
``data/metadata/``, so the bag as handed over can be rebuilt and re-validated with standard tools.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from archive import db
from archive.access import decide_access
from archive.checks import FileView, Mapped, RecordView, Report, run_checks, store_report
from archive.checks.registry import item_of_problem
from archive.checks.report import Failure
from archive.checks.virus import ScanResult, scan
from archive.config import Settings
from archive.errors import ArchiveError, BadArgument
from archive.events import (
    ACCESS_DECISION,
    DIGEST_CALCULATION,
    FORMAT_IDENTIFICATION,
    INGESTION,
    VALIDATION,
    NewEvent,
    premis_xml,
)
from archive.failpoints import failpoint
from archive.home import store_for
from archive.journal import open_journal
from archive.models import Archive, BagFingerprint, Record, Transfer, TransferStatus, utcnow
from archive.replicas.outbox import enqueue as enqueue_replication
from archive.sealing.anchors import anchor_chain
from archive.sealing.outbox import enqueue as enqueue_seals
from archive.sealing.seals import take_sealed
from archive.services import get_archive
from archive.storage import ObjectBuilder, ObjectExists, OcflStore, StagingBatch
from ingest.bag import Bag, open_bag, verify_bag
from ingest.catalogue import StoredRecord, StoredTransfer, ensure_fonds, finish_transfer, write_stored
from ingest.identify import Identification, identify_files, tool_versions
from ingest.metadata import RecordSpec, read_records
from ingest.problems import Problem, errors, summarise, warnings, write_problem_file
from ingest.unpack import check_directory_transfer, detect_kind, unpack_transfer

log = logging.getLogger(__name__)

AGENT = "pearl-archive ingest 0.1"
METADATA_DIR = "data/metadata/"
#: DA/T 70-2018 四性检测 items checked on receiving every transfer.
DAT_ITEMS = ("1-8", "1-10", "1-14", "2-1", "2-2", "2-4")


class Reporter(Protocol):
    def stage(self, name: str, total_files: int = 0, total_bytes: int = 0) -> None: ...
    def advance(self, files: int, nbytes: int) -> None: ...


class _Silent:
    def stage(self, name: str, total_files: int = 0, total_bytes: int = 0) -> None:
        pass

    def advance(self, files: int, nbytes: int) -> None:
        pass


@dataclass
class IngestResult:
    transfer_id: str
    archive: str
    bag_name: str
    status: str
    records: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: the bounded account of ``problems`` (see :func:`ingest.problems.summarise`)
    summary: dict[str, Any] = field(default_factory=dict)
    #: the receipt checks' run (四性检测): run_id, status, report_sha256, failed_items
    checks: dict[str, Any] | None = None

    @property
    def stored(self) -> bool:
        return self.status == TransferStatus.stored

    def problem_summary(self) -> dict[str, Any]:
        """The bounded account of the problems (all of them if the pipeline did not make one)."""
        return self.summary or summarise(self.problems, len(self.problems) or 1)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` output; its problems are bounded (the first of each code, counts, the file)."""
        summary = self.problem_summary()
        return {
            "ok": self.stored,
            "transfer_id": self.transfer_id,
            "archive": self.archive,
            "bag": self.bag_name,
            "status": self.status,
            "records": len(self.records),
            "record_codes": self.records,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "errors": summary["errors"],
            "warnings": summary["warnings"],
            "problem_counts": summary["counts"],
            "more_problems": summary["more"],
            "problem_file": summary["file"],
            "checks": self.checks,
        }


def problem_file(settings: Settings, transfer_id: str) -> Path:
    """Where every problem of a transfer is kept, one JSON object a line (its record holds a bounded account)."""
    return settings.home_dir / "transfers" / transfer_id / "problems.jsonl"


def object_id_for(archive: str, archival_code: str) -> str:
    return f"urn:pearl-archive:{archive}:{archival_code}"


def new_transfer_id() -> str:
    now = dt.datetime.now(dt.UTC)
    return f"T{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


class _Rejected(Exception):
    """Internal: stop the pipeline; the problems are already collected."""


@dataclass
class _Plan:
    spec: RecordSpec
    object_id: str
    builder: ObjectBuilder
    logical: dict[str, str]  # bag path -> logical path in the object


class Ingest:
    """One transfer going through the pipeline (use :func:`ingest`)."""

    def __init__(
        self,
        settings: Settings,
        source: Path,
        archive: Archive,
        reporter: Reporter,
        transfer_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.archive = archive
        self.reporter = reporter
        self.store: OcflStore = store_for(settings)
        self.transfer_id = transfer_id or new_transfer_id()
        self.work = settings.staging_dir / self.transfer_id
        self.problems: list[Problem] = []
        self.timings: dict[str, float] = {}
        self.events: list[NewEvent] = []
        self.committed: list[str] = []
        self.builders: list[ObjectBuilder] = []
        self.batch: StagingBatch | None = None  # one staging folder and lock for every object
        self.codes: list[str] = []
        self._warnings_indexed: tuple[int, dict[str, list[str]], dict[str, int]] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="identify")
        self._scan_pool = ThreadPoolExecutor(1, thread_name_prefix="virus-scan")
        self._scanning: Future[ScanResult] | None = None
        self.fingerprint = ""
        self.receipt: Report | None = None  # the 四性检测 receipt report (DA/T 70-2018)
        self.result = IngestResult(self.transfer_id, archive.code, source.name, TransferStatus.received)

    # -- bookkeeping -----------------------------------------------------------------------------------
    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started

    def _check(self) -> None:
        if errors(self.problems):
            raise _Rejected

    def _set_status(self, status: TransferStatus, **values: Any) -> None:
        with db.write_session(self.settings) as s:
            t = s.get(Transfer, self.transfer_id)
            assert t is not None
            t.status = status
            for k, v in values.items():
                setattr(t, k, v)

    # -- the run ---------------------------------------------------------------------------------------
    def run(self) -> IngestResult:
        started = time.perf_counter()
        with db.write_session(self.settings) as s:
            # an upload through the staff API registered its transfer (status received) before queueing it
            registered = s.get(Transfer, self.transfer_id)
            if registered is None:
                s.add(
                    Transfer(
                        id=self.transfer_id,
                        archive_id=self.archive.id,
                        source=str(self.source),
                        bag_name=self.source.name,
                        status=TransferStatus.received,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                    )
                )
            else:
                registered.host = socket.gethostname()
                registered.pid = os.getpid()
        try:
            with open_journal(self.settings.journal_dir, self.transfer_id) as journal:
                try:
                    self._run(journal)
                except _Rejected:
                    self._reject()
                except IntegrityError as exc:
                    self._reject_conflict(exc)
                except BaseException:
                    self._undo()
                    raise
                finally:
                    self._pool.shutdown(wait=True, cancel_futures=True)
                    self._scan_pool.shutdown(wait=True, cancel_futures=True)
                    if self.batch is not None:
                        self.batch.close()
                    shutil.rmtree(self.work, ignore_errors=True)
        finally:
            self.result.seconds = time.perf_counter() - started
            self.result.timings = dict(self.timings)
        return self.result

    def _run(self, journal: Any) -> None:
        bag_root = self._unpack()
        self._set_status(TransferStatus.validating)
        t = time.perf_counter()
        self.reporter.stage("open")
        bag = open_bag(bag_root)
        self.problems.extend(bag.problems)
        payload_paths = sorted(bag.payload)
        specs, meta_problems = read_records(bag_root, payload_paths)
        self.problems.extend(meta_problems)
        self.codes = [spec.archival_code for spec in specs if spec.archival_code]
        self._check_held_codes(specs)
        self._timed("open", t)
        if errors(self.problems):
            # Already refused: still read every file so the report lists every problem; copy nothing.
            self._verify(bag, None)
            self._check_same_bag()
            raise _Rejected
        plans, transfer_builder = self._plan(bag, specs)
        self._verify_and_copy(bag, plans, transfer_builder)
        self._check_same_bag()
        self._check()
        failpoint("ingest:verified")
        self._set_status(TransferStatus.storing)
        self._describe(bag, plans, transfer_builder)
        self._commit(journal, plans, transfer_builder)

    def _unpack(self) -> Path:
        kind = detect_kind(self.source)
        if kind == "dir":  # not copied, but held to the same limits as an archive
            self.problems.extend(check_directory_transfer(self.source, self.settings))
            self._check()
            return self.source
        if kind is None:
            self.problems.append(Problem("ING004", path=str(self.source)))
            raise _Rejected
        t = time.perf_counter()
        self.reporter.stage("unpack")
        size = self.source.stat().st_size
        unpacked = unpack_transfer(self.source, self.work / "unpacked", self.settings)
        self._timed("unpack", t)
        self.problems.extend(unpacked.problems)
        if unpacked.bag_root is None or errors(unpacked.problems):
            raise _Rejected
        self.result.bytes = size
        return unpacked.bag_root

    def _check_held_codes(self, specs: list[RecordSpec]) -> None:
        codes = [s.archival_code for s in specs if s.archival_code]
        if not codes:
            return
        with db.read_session(self.settings) as s:
            held: dict[str, str] = {}
            for i in range(0, len(codes), 500):
                rows = s.execute(
                    select(Record.archival_code, Record.transfer_id).where(
                        Record.archive_id == self.archive.id, Record.archival_code.in_(codes[i : i + 500])
                    )
                ).all()
                held.update({code: tid for code, tid in rows})
        for spec in specs:
            if spec.archival_code in held:
                self.problems.append(
                    Problem(
                        "ING002",
                        path=spec.path,
                        params={
                            "archival_code": spec.archival_code,
                            "archive": self.archive.code,
                            "transfer": held[spec.archival_code],
                            "row": spec.row,
                        },
                    )
                )

    def _plan(self, bag: Bag, specs: list[RecordSpec]) -> tuple[list[_Plan], ObjectBuilder]:
        plans = []
        self.batch = batch = self.store.begin_batch()
        for spec in specs:
            object_id = object_id_for(self.archive.code, spec.archival_code)
            try:
                builder = batch.begin_object(object_id)
            except ObjectExists:  # stored by a concurrent transfer since our catalogue check
                self.problems.append(self._held_elsewhere(spec.path, spec.archival_code))
                raise _Rejected from None
            self.builders.append(builder)
            logical = {p: "originals/" + p.removeprefix("data/") for p in spec.files}
            plans.append(_Plan(spec, object_id, builder, logical))
        transfer_builder = batch.begin_object(
            object_id_for(self.archive.code, f"transfer:{self.transfer_id}")
        )
        self.builders.append(transfer_builder)
        return plans, transfer_builder

    def _verify_and_copy(self, bag: Bag, plans: list[_Plan], transfer_builder: ObjectBuilder) -> None:
        destinations: dict[str, tuple[ObjectBuilder, str]] = {}
        for plan in plans:
            for bag_path, logical in plan.logical.items():
                destinations[bag_path] = (plan.builder, logical)
        for bag_path in bag.payload:
            if bag_path not in destinations:  # data/metadata/… belongs to the transfer object
                destinations[bag_path] = (transfer_builder, "bag/" + bag_path)

        # Every copy's place, reserved before the copying threads start (see ObjectBuilder.content_paths).
        self.content: dict[str, Path] = {}  # bag path -> where its copy is staged
        by_builder: dict[int, tuple[ObjectBuilder, list[tuple[str, str]]]] = {}
        for bag_path, (builder, logical) in destinations.items():
            by_builder.setdefault(id(builder), (builder, []))[1].append((bag_path, logical))
        for builder, pairs in by_builder.values():
            reserved = builder.content_paths(logical for _, logical in pairs)
            self.content.update((bag_path, reserved[logical]) for bag_path, logical in pairs)

        def destination(bag_path: str) -> Path | None:
            return self.content.get(bag_path)

        self.destinations = destinations
        # Identify the bag's files while they are hashed and copied: Siegfried runs in its own process (see
        # ingest.identify) beside the hashing threads. The copies are byte-identical (same digests).
        sources = {bp: bag.root / bp for bp in destinations}
        self._identified_count = 0  # written by the identifying thread, read for the progress bar

        def identified(n: int) -> None:
            self._identified_count = n

        self._identifying = self._pool.submit(
            identify_files,
            list(sources.values()),
            workers=self.settings.workers,
            timeout=self.settings.tool_timeout,
            progress=identified,
            processes=self.settings.siegfried_processes,
        )
        self._sources = sources
        if (
            self.settings.receipt_checks
        ):  # the virus scan (四性检测 4-1) reads the bag beside hashing and Siegfried
            self._scanning = self._scan_pool.submit(scan, list(sources.values()), self.settings)
        self._verify(bag, destination)
        if not errors(self.problems):
            self.store.start_writeback()  # the copies go to disk while identification still runs

    def _verify(self, bag: Bag, destination: Callable[[str], Path | None] | None) -> None:
        total_bytes = sum(e.size for e in bag.payload.values())
        self.reporter.stage("verify", len(bag.payload), total_bytes)
        t = time.perf_counter()
        self.verification = verify_bag(
            bag,
            extra_algorithms=self.settings.recorded_digests,
            destination=destination,
            workers=self.settings.workers,
            progress=self.reporter.advance,
        )
        self._timed("verify+copy" if destination else "verify", t)
        self.problems.extend(self.verification.problems)
        self.result.files = len(bag.payload)
        self.result.bytes = total_bytes

    def _held_elsewhere(self, path: str | None, archival_code: str) -> Problem:
        return Problem(
            "ING002",
            path=path,
            params={"archival_code": archival_code, "archive": self.archive.code, "transfer": "(concurrent)"},
        )

    def _check_same_bag(self) -> None:
        files = self.verification.files
        if any(f.error or "sha256" not in f.digests for f in files.values()):
            return  # unreadable files are already reported
        self.fingerprint = payload_fingerprint({p: f.digests["sha256"] for p, f in files.items()})
        with db.read_session(self.settings) as s:
            first = s.execute(
                select(BagFingerprint.transfer_id).where(BagFingerprint.fingerprint == self.fingerprint)
            ).scalar_one_or_none()
        if first:
            # Every 档号 of a repeated bag is "already held" by the first transfer: say the one thing that matters.
            self.problems = [
                p for p in self.problems if not (p.code == "ING002" and p.params.get("transfer") == first)
            ]
            self.problems.append(Problem("ING003", params={"transfer": first}))

    def _describe(self, bag: Bag, plans: list[_Plan], transfer_builder: ObjectBuilder) -> None:
        t = time.perf_counter()
        found = self._wait_for_identification(bag)
        content = self.content
        self.identified: dict[str, Identification] = {
            bp: found[p] for bp, p in self._sources.items() if p in found
        }
        self._timed("identify", t)
        for bag_path, ident in self.identified.items():  # name the bag's path, not the staged copy's
            self.problems.extend(Problem(p.code, path=bag_path, params=p.params) for p in ident.problems)
        digests = self.verification.files
        for bag_path, path in content.items():  # DA/T 1-10: what was captured equals what was recorded
            recorded = digests[bag_path].size
            actual = path.stat().st_size
            if actual != recorded:
                self.problems.append(
                    Problem(
                        "ING005",
                        path=bag_path,
                        params={"what": "size", "expected": recorded, "actual": actual},
                    )
                )
        self._check()
        if self.settings.receipt_checks:
            t = time.perf_counter()
            self.reporter.stage("check")
            self._receipt_checks(plans)
            self._timed("checks", t)
            self._check()
        for name in bag.tag_files:
            transfer_builder.add_bytes("bag/" + name, (bag.root / name).read_bytes())
        for bag_path, (builder, logical) in self.destinations.items():
            d = digests[bag_path]
            # sm3 and other extras stay in the catalogue: ocfl-py cannot re-check them in an inventory
            builder.add_written(
                logical, sha512=d.digests["sha512"], size=d.size, fixity={"sha256": d.digests["sha256"]}
            )
        today = dt.date.today()
        self.decisions = {}
        for plan in plans:
            spec = plan.spec
            decision = decide_access(
                requested=spec.access_requested,
                security_class=spec.security_class,
                date_end=spec.date_end,
                today=today,
                open_after_years=self.settings.open_after_years,
            )
            self.decisions[plan.object_id] = decision
            events = self._record_events(plan, decision)
            plan.builder.add_bytes("metadata/record.json", self._record_json(plan, decision))
            plan.builder.add_bytes("metadata/premis.xml", premis_xml(events, object_id=plan.object_id))
            self.events.extend(events)
        self.reporter.stage("store")

    # -- 四性检测 at receipt ----------------------------------------------------------------------------
    def _mapped(self) -> Mapped:
        """The ingest's own problems under the DA/T 70 items they belong to (never reported twice)."""
        items = item_of_problem()
        mapped = Mapped({}, {})
        for p in self.problems:
            code = items.get(p.code)
            if code is None or p.code.startswith("CHK"):
                continue
            into = mapped.errors if p.severity == "error" else mapped.warnings
            into.setdefault(code, []).append(Failure(None, p.path, f"{p.code} {p.message_en}"))
        return mapped

    def _views(self, plans: list[_Plan]) -> list[RecordView]:
        digests = self.verification.files
        views = []
        for plan in plans:
            spec = plan.spec
            files = []
            for bp in spec.files:
                ident = self.identified.get(bp)
                files.append(
                    FileView(
                        path=bp,
                        location=self._sources.get(bp),
                        size=digests[bp].size,
                        digests=dict(digests[bp].digests),
                        puid=ident.puid if ident else None,
                        mime=ident.mime if ident else None,
                        format_name=ident.format_name if ident else None,
                        properties=dict(ident.properties) if ident else {},
                    )
                )
            views.append(
                RecordView(
                    archive=self.archive.code,
                    archival_code=spec.archival_code,
                    title=spec.title,
                    creator=spec.creator,
                    date_text=spec.date_text,
                    date_start=spec.date_start,
                    date_end=spec.date_end,
                    retention=spec.retention,
                    security_class=spec.security_class,
                    fonds=spec.fonds,
                    language=spec.language,
                    description=spec.description,
                    keywords="；".join(spec.keywords) or None,
                    files=files,
                    object_id=plan.object_id,
                )
            )
        return views

    def _receipt_checks(self, plans: list[_Plan]) -> None:
        """Every receipt check of DA/T 70 on the transfer before it is stored; a blocking item that fails
        (an infected file) refuses the transfer like any other error."""
        report = run_checks(
            self.settings,
            "receipt",
            self._views(plans),
            scope="transfer",
            archive=self.archive.code,
            transfer=self.transfer_id,
            mapped=self._mapped(),
            scanned=self._scanning,
        )
        self.receipt = report
        virus = report.item("4-1")
        for f in virus.failures:
            if f.detail.startswith("infected: "):
                self.problems.append(
                    Problem("CHK001", path=f.path, params={"signature": f.detail.removeprefix("infected: ")})
                )

    def _store_receipt(self) -> None:
        if not self.settings.receipt_checks:
            return
        report = self.receipt
        if report is None:  # refused before the records could be checked: the ingest's findings only
            report = run_checks(
                self.settings,
                "receipt",
                [],
                scope="transfer",
                archive=self.archive.code,
                transfer=self.transfer_id,
                mapped=self._mapped(),
                not_reached=True,
            )
            self.receipt = report
        store_report(self.settings, report, agent=AGENT)
        self.result.checks = {
            "run_id": report.run_id,
            "status": report.status,
            "report_sha256": report.extra.get("report_sha256"),
            "failed_items": [i.check.code for i in report.items if i.status == "fail"],
        }

    def _wait_for_identification(self, bag: Bag) -> dict[Path, Identification]:
        """The identification started beside verify+copy, with a progress bar of its own meanwhile (files and
        bytes through Siegfried: on big transfers this is the longest stage)."""
        done_bytes = [0]
        for bag_path in self._sources:  # the order identification goes in
            done_bytes.append(done_bytes[-1] + bag.payload[bag_path].size)
        self.reporter.stage("identify", len(self._sources), done_bytes[-1])
        while True:
            n = min(self._identified_count, len(self._sources))
            self.reporter.advance(n, done_bytes[n])
            try:
                found = self._identifying.result(timeout=0.25)
                break
            except TimeoutError:
                continue
        self.reporter.advance(len(self._sources), done_bytes[-1])
        return found

    def _file_facts(self, bag_path: str) -> dict[str, Any]:
        d = self.verification.files[bag_path]
        ident = self.identified.get(bag_path)
        return {
            "bag_path": bag_path,
            "size": d.size,
            "digests": d.digests,
            "format": ident.as_dict() if ident else None,
        }

    def _record_json(self, plan: _Plan, decision: Any) -> bytes:
        body = {
            "archive": self.archive.code,
            "object_id": plan.object_id,
            "transfer": self.transfer_id,
            "record": plan.spec.as_dict(),
            "access": decision.as_dict(),
            "files": {plan.logical[bp]: self._file_facts(bp) for bp in plan.spec.files},
        }
        # One line: json's C encoder (indent= would take the pure-Python one, ~0.2 ms per file described)
        return json.dumps(body, ensure_ascii=False, sort_keys=True, default=str).encode()

    def _warning_index(self) -> tuple[dict[str, list[str]], dict[str, int]]:
        """The transfer's warnings once: their codes by bag path, and the count of each code. A record's
        validation event names its own files' warnings and the transfer's counts — never every warning of
        the transfer, which would grow as records × warnings (100,000 files with a warning each filled
        gigabytes of events)."""
        if self._warnings_indexed is None or self._warnings_indexed[0] != len(self.problems):
            absolute = {str(path): bag_path for bag_path, path in getattr(self, "_sources", {}).items()}
            by_path: dict[str, list[str]] = {}
            counts: Counter[str] = Counter()
            for p in warnings(self.problems):
                counts[p.code] += 1
                if p.path:
                    by_path.setdefault(absolute.get(p.path, p.path), []).append(p.code)
            self._warnings_indexed = (len(self.problems), by_path, dict(sorted(counts.items())))
        return self._warnings_indexed[1], self._warnings_indexed[2]

    def _record_events(self, plan: _Plan, decision: Any) -> list[NewEvent]:
        by_path, transfer_warnings = self._warning_index()
        common: dict[str, Any] = {
            "agent": AGENT,
            "object_type": "record",
            "object_id": plan.object_id,
            "transfer_id": self.transfer_id,
        }
        files = plan.spec.files
        ident = [self.identified.get(bp) for bp in files]
        return [
            NewEvent(
                event_type=VALIDATION,
                outcome="success",
                detail="BagIt validation of the transfer (RFC 8493) and record metadata checks",
                outcome_detail={
                    "dat_70_2018": list(DAT_ITEMS),
                    "warnings": sorted({c for bp in plan.spec.files for c in by_path.get(bp, ())}),
                    "transfer_warnings": transfer_warnings,
                },
                **common,
            ),
            NewEvent(
                event_type=DIGEST_CALCULATION,
                outcome="success",
                detail="fixity of every file checked against the bag manifests and digests recorded",
                outcome_detail={"algorithms": sorted(self.verification.algorithms), "files": len(files)},
                **common,
            ),
            NewEvent(
                event_type=FORMAT_IDENTIFICATION,
                outcome="success" if all(ident) else "warning",
                detail="PRONOM identification (Siegfried), MIME (libmagic), PDF facts (pikepdf)",
                outcome_detail={
                    "tools": tool_versions(),
                    "formats": sorted({i.puid or "UNKNOWN" for i in ident if i}),
                },
                **common,
            ),
            NewEvent(
                event_type=ACCESS_DECISION,
                outcome="success",
                detail=f"access status {decision.status}: {decision.reason_en}",
                outcome_detail=decision.as_dict(),
                **common,
            ),
            NewEvent(
                event_type=INGESTION,
                outcome="success",
                detail=f"stored as OCFL object {plan.object_id} v1",
                outcome_detail={"files": len(files)},
                **common,
            ),
        ]

    def _commit(self, journal: Any, plans: list[_Plan], transfer_builder: ObjectBuilder) -> None:
        t = time.perf_counter()
        journal.record_objects([b.object_id for b in self.builders])
        failpoint("ingest:journaled")
        try:
            for builder in self.store.commit_many(
                self.builders,
                message=f"ingest of transfer {self.transfer_id}",
                user_name=AGENT,
                created=utcnow(),
            ):
                self.committed.append(builder.object_id)
                failpoint("ingest:object-stored")
        except ObjectExists:  # another transfer stored the same 档号 since our check
            failed = self.builders[len(self.committed)].object_id
            plan = next((p for p in plans if p.object_id == failed), None)
            self.problems.append(
                self._held_elsewhere(
                    plan.spec.path if plan else None, plan.spec.archival_code if plan else failed
                )
            )
            raise _Rejected from None
        self._timed("store", t)
        t = time.perf_counter()
        stored = StoredTransfer(
            transfer_id=self.transfer_id,
            archive_id=self.archive.id,
            fingerprint=self.fingerprint,
            records=[
                StoredRecord(p.spec, p.object_id, p.logical, self.decisions[p.object_id]) for p in plans
            ],
            files=self.verification.files,
            identified=self.identified,
            events=self.events,
            file_count=self.result.files,
            byte_count=self.result.bytes,
        )
        with db.write_session(self.settings) as s:
            fonds_ids, created = ensure_fonds(s, self.archive.id, [p.spec.fonds for p in plans])
            self.problems.extend(created)
            record_ids = write_stored(s, stored, fonds_ids)
            enqueue_seals(s, take_sealed(self.store))  # timestamps are fetched after this commit
            enqueue_replication(s, self._replication(plans, record_ids, transfer_builder))
            summary = self._summarise()
            finish_transfer(
                s,
                self.transfer_id,
                TransferStatus.stored,
                problems=summary,
                events=[self._transfer_event("success", summary), *self.events],
                fingerprint=self.fingerprint,
                record_count=len(plans),
                file_count=self.result.files,
                byte_count=self.result.bytes,
                timings={k: round(v, 3) for k, v in self.timings.items()},
            )
            failpoint("ingest:catalogue-flushed")
        failpoint("ingest:committed")
        self._timed("catalogue", t)
        self._anchor()
        self.result.status = TransferStatus.stored
        self.result.records = [p.spec.archival_code for p in plans]
        self.result.problems = list(self.problems)
        self.result.summary = summary
        self._store_receipt()

    def _anchor(self) -> None:
        """Anchor the event chain after the ingest (archive.sealing.anchors). The transfer is stored already:
        a failure here is logged, and the next anchor (beat, ``archive seals sync``) covers these events."""
        try:
            anchor_chain(self.settings)
        except (ArchiveError, OSError) as exc:
            log.warning("event chain not anchored after transfer %s: %s", self.transfer_id, exc)

    def _replication(
        self, plans: list[_Plan], record_ids: dict[str, int], transfer_builder: ObjectBuilder
    ) -> list[dict[str, Any]]:
        """The v1 of every object just stored, for the replication outbox (copied after this commit)."""
        files = self.verification.files
        in_records = {bp for p in plans for bp in p.logical}
        versions: list[dict[str, Any]] = [
            {
                "object_id": p.object_id,
                "version": "v1",
                "bytes": sum(files[bp].size for bp in p.logical if bp in files),
                "record_id": record_ids.get(p.object_id),
                "event_id": f"{self.archive.code}/{p.spec.archival_code}",
            }
            for p in plans
        ]
        versions.append(
            {
                "object_id": transfer_builder.object_id,
                "version": "v1",
                "bytes": sum(f.size for bp, f in files.items() if bp not in in_records),
                "event_type": "transfer",
                "event_id": self.transfer_id,
            }
        )
        return versions

    def _summarise(self) -> dict[str, Any]:
        """The bounded account of the problems; every one goes to ``transfers/<id>/problems.jsonl``."""
        file = None
        if self.problems:
            file = write_problem_file(problem_file(self.settings, self.transfer_id), self.problems)
        return summarise(self.problems, self.settings.problems_shown, file)

    def _transfer_event(self, outcome: str, summary: dict[str, Any]) -> NewEvent:
        codes = sorted({p.code for p in errors(self.problems)})
        return NewEvent(
            event_type=VALIDATION if outcome == "failure" else INGESTION,
            outcome=outcome,
            agent=AGENT,
            object_type="transfer",
            object_id=self.transfer_id,
            transfer_id=self.transfer_id,
            detail=("transfer rejected: " + ", ".join(codes)) if codes else "transfer stored",
            outcome_detail={
                "problems": [*summary["errors"], *summary["warnings"]],
                "problem_counts": summary["counts"],
                "problem_count": summary["total"],
                "problem_file": summary["file"],
                "dat_70_2018": list(DAT_ITEMS),
                "source": str(self.source),
            },
        )

    # -- failure paths ---------------------------------------------------------------------------------
    def _undo(self) -> None:
        committed = set(self.committed)
        for builder in self.builders:
            if builder.object_id not in committed:
                self.store.abort(builder)
        for object_id in self.committed:
            self.store.remove_object(object_id)
        self.committed.clear()

    def _reject(self) -> None:
        self._undo()
        self.result.status = TransferStatus.rejected
        self.result.problems = list(self.problems)
        summary = self._summarise()
        self.result.summary = summary
        with db.write_session(self.settings) as s:
            finish_transfer(
                s,
                self.transfer_id,
                TransferStatus.rejected,
                problems=summary,
                events=[self._transfer_event("failure", summary)],
                file_count=self.result.files,
                byte_count=self.result.bytes,
                timings={k: round(v, 3) for k, v in self.timings.items()},
            )
        self._store_receipt()

    def _reject_conflict(self, exc: IntegrityError) -> None:
        """Another transfer stored the same bag or 档号 between our checks and our commit."""
        self._undo()
        plans_codes = self.codes
        with db.read_session(self.settings) as s:
            first = s.execute(
                select(BagFingerprint.transfer_id).where(BagFingerprint.fingerprint == self.fingerprint)
            ).scalar_one_or_none()
            held = s.execute(
                select(Record.archival_code, Record.transfer_id).where(
                    Record.archive_id == self.archive.id, Record.archival_code.in_(plans_codes)
                )
            ).all()
        if first:
            self.problems.append(Problem("ING003", params={"transfer": first}))
        for code, transfer in held:
            self.problems.append(
                Problem(
                    "ING002",
                    params={"archival_code": code, "archive": self.archive.code, "transfer": transfer},
                )
            )
        if not first and not held:
            raise exc
        self._reject()


def ingest(
    source: Path,
    archive_code: str,
    settings: Settings,
    reporter: Reporter | None = None,
    *,
    transfer_id: str | None = None,
) -> IngestResult:
    """Ingest one transfer (a bag directory, .zip, .tar or .tar.gz) into ``archive_code``; ``transfer_id``
    is that of a transfer already registered by an upload (:func:`archive.services.register_upload`)."""
    if not source.exists():
        raise BadArgument(variant="no_path", path=source)
    with db.read_session(settings) as s:
        archive = get_archive(s, archive_code)
    return Ingest(settings, source.resolve(), archive, reporter or _Silent(), transfer_id).run()


def payload_fingerprint(files: dict[str, str]) -> str:
    """sha256 over the sorted ``sha256  path`` lines of a payload: the same bag gives the same value."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{files[path]}  {path}\n".encode())
    return h.hexdigest()
