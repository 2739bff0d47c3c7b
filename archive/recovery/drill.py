"""``archive drill``: prove that the copies can be restored, before a disaster has to.

A drill picks a random sample of records (the seed is recorded, so a drill can be repeated exactly), and for
each source — the primary storage root and every replica target, file system or S3 (:func:`drill_sources`) —
restores each sampled object into a scratch area (read through the target, as a restore after a disaster
would), checks its fixity there (every content file against the inventory's sha512, the inventory against
its sidecar), checks its evidence (:func:`verify_evidence`: every version's seal and timestamp token, by the
sealing's own verification), rebuilds the record's catalogue rows from that source's catalogue journal (for
an S3 replica, restored into the scratch area too) with the rebuild's own row reader, and compares
them with the live rows (local columns aside, see :data:`archive.recovery.rows.LOCAL_COLUMNS`). The result is
one PREMIS event (outcome failure on any mismatch) and a JSON report under ``$ARCHIVE_HOME/drills/``.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.errors import ArchiveError
from archive.events import VALIDATION, NewEvent, append_events
from archive.models import utcnow
from archive.recovery.journal import EXTENSION as JOURNAL_EXTENSION
from archive.recovery.journal import read_lines, segments
from archive.recovery.rows import LOCAL_COLUMNS, TABLES, encode_row
from archive.replicas.target import TMP_PREFIX, TMP_SUFFIX, FsTarget, Target, targets
from archive.sealing.keys import trusted_key_ids
from archive.sealing.verify import verify_object_at
from archive.storage._fs import locked
from archive.storage.inventory import INVENTORY, SIDECAR, sidecar_matches
from archive.storage.layout import object_relpath
from archive.storage.ocfl import ROOT_NAMASTE

AGENT = "pearl-archive drill"
JOURNAL_PREFIX = f"extensions/{JOURNAL_EXTENSION}"
DETAIL = (
    "recovery drill: sampled objects restored from each copy, verified, catalogue rows rebuilt and compared"
)


@dataclass
class Source:
    name: str  # "primary", or the replica target's ARCHIVE_REPLICAS entry
    target: Target


def drill_sources(settings: Settings) -> list[Source]:
    """Every copy a drill restores from: the primary root and each replica target
    (:func:`archive.replicas.targets`: the ``ARCHIVE_REPLICAS`` entries, file systems and S3 buckets, and
    ``ARCHIVE_REPLICA_ROOT``). The one place that knows where the copies are."""
    return [Source("primary", FsTarget(settings.ocfl_root, "primary"))] + [
        Source(t.name, t) for t in targets(settings)
    ]


def verify_evidence(
    settings: Settings, object_dir: Path, object_id: str, *, trusted: set[str] | None = None
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a restored object's evidence: each version's seal (its signature over that
    version's inventory digest, by one of this node's keys) and timestamp token (its imprint, its TSA chain
    against ``ARCHIVE_TSA_TRUST``), checked by :func:`archive.sealing.verify_object_at` as ``archive verify``
    checks them. A version still waiting for its token is a warning (SIG013), not a problem."""
    found = verify_object_at(settings, object_dir, object_id, fixity=False, trusted=trusted)
    return [p["message_en"] for p in found["failures"]], [p["message_en"] for p in found["warnings"]]


def _holds(target: Target, key: str) -> bool:
    try:
        with target.open(key):
            return True
    except FileNotFoundError:
        return False


def _restore(target: Target, prefix: str, dest: Path) -> int:
    """Copy every file under ``prefix`` at ``target`` into ``dest`` (keys relative to ``prefix``); bytes."""
    total = 0
    for key in sorted(target.list(prefix)):
        name = key.rpartition("/")[2]
        if name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX):
            continue  # a copy in progress at the replica, not part of it
        out = dest / key[len(prefix) :].lstrip("/")
        out.parent.mkdir(parents=True, exist_ok=True)
        with target.open(key) as fin, open(out, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
                total += len(chunk)
    return total


def _sha512(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_fixity(object_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The restored object's inventory and every problem found: a sidecar that does not match, a content
    file missing or whose sha512 differs from the manifest."""
    try:
        inv_bytes = (object_dir / INVENTORY).read_bytes()
        inventory = json.loads(inv_bytes)
        if not sidecar_matches(inv_bytes, (object_dir / SIDECAR).read_bytes()):
            return inventory, ["inventory.json does not match its sidecar"]
    except (OSError, ValueError) as exc:
        return None, [f"inventory unreadable: {exc}"]
    problems = []
    for digest, paths in inventory["manifest"].items():
        for content in paths:
            target = object_dir / content
            if not target.is_file():
                problems.append(f"{content}: missing")
            elif _sha512(target) != digest:
                problems.append(f"{content}: sha512 differs from the manifest")
    return inventory, problems


def _compare(name: str, live: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    skip = set(LOCAL_COLUMNS.get(name, ()))
    return [
        f"{name}.{column}: live {live.get(column)!r}, rebuilt {rebuilt.get(column)!r}"
        for column in sorted(set(live) | set(rebuilt))
        if column not in skip and live.get(column) != rebuilt.get(column)
    ]


def _rebuilt_records(root: Path, object_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The last journal line of each sampled record (row and files), read from the source's own journal."""
    found: dict[str, dict[str, Any]] = {}
    for line in read_lines(root):
        if line.get("t") == "record" and line["row"]["ocfl_object_id"] in object_ids:
            found[line["row"]["ocfl_object_id"]] = line
    return found


@dataclass
class DrillReport:
    run_id: str
    seed: int
    sample: int
    started_at: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    report_file: str | None = None

    @property
    def ok(self) -> bool:
        return all(not s["problems"] for s in self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "seed": self.seed,
            "sample": self.sample,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "sources": self.sources,
            "report_file": self.report_file,
        }


def _sample(settings: Settings, size: int, seed: int) -> list[int]:
    """Record ids by reservoir sampling over the ids, in id order: memory stays ``size`` ids."""
    rng = random.Random(seed)
    chosen: list[int] = []
    records = TABLES["records"]
    with db.read_session(settings) as s:
        for n, record_id in enumerate(s.execute(select(records.c.id).order_by(records.c.id)).scalars()):
            if n < size:
                chosen.append(record_id)
            else:
                k = rng.randrange(n + 1)
                if k < size:
                    chosen[k] = record_id
    return sorted(chosen)


def _live_rows(settings: Settings, record_ids: list[int]) -> dict[str, dict[str, Any]]:
    records, files = TABLES["records"], TABLES["files"]
    live: dict[str, dict[str, Any]] = {}
    with db.read_session(settings) as s:
        for row in s.execute(select(records).where(records.c.id.in_(record_ids))).mappings():
            live[row["ocfl_object_id"]] = {"row": encode_row(records, row), "files": []}
        by_id = {v["row"]["id"]: v for v in live.values()}
        query = select(files).where(files.c.record_id.in_(record_ids)).order_by(files.c.id)
        for row in s.execute(query).mappings():
            by_id[row["record_id"]]["files"].append(encode_row(files, row))
    return live


def _drill_source(
    settings: Settings, source: Source, scratch: Path, live: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    started = time.perf_counter()
    problems: list[str] = []
    warnings: list[str] = []
    restored_bytes = 0
    target = source.target
    local = target.local_root
    trusted = trusted_key_ids(settings)
    try:
        declared = _holds(target, ROOT_NAMASTE)
        if declared and local is None:  # an object store: restore the catalogue journal to read it here
            local = scratch / "root"
            restored_bytes += _restore(target, JOURNAL_PREFIX, local / JOURNAL_PREFIX)
    except (OSError, ArchiveError) as exc:
        return {
            "source": source.name,
            "objects": 0,
            "problems": [f"{source.name}: {getattr(exc, 'en', exc)}"],
        }
    if not declared or local is None:
        return {"source": source.name, "objects": 0, "problems": [f"{source.name}: not an OCFL storage root"]}
    rebuilt = _rebuilt_records(local, set(live)) if segments(local) else {}
    for object_id, expected in sorted(live.items()):
        copy = scratch / hashlib.sha256(object_id.encode()).hexdigest()
        try:
            got = _restore(target, object_relpath(object_id).as_posix(), copy)
        except (OSError, ArchiveError) as exc:
            problems.append(f"{object_id}: not restored: {getattr(exc, 'en', exc)}")
            continue
        if not got and not copy.is_dir():
            problems.append(f"{object_id}: object missing")
            continue
        restored_bytes += got
        inventory, found = verify_fixity(copy)
        problems.extend(f"{object_id}: {p}" for p in found)
        if inventory is not None:
            bad, waiting = verify_evidence(settings, copy, object_id, trusted=trusted)
            problems.extend(f"{object_id}: {p}" for p in bad)
            warnings.extend(f"{object_id}: {p}" for p in waiting)
        line = rebuilt.get(object_id)
        if line is None:
            problems.append(f"{object_id}: no catalogue rows for it in the journal")
            continue
        problems.extend(f"{object_id}: {p}" for p in _compare("records", expected["row"], line["row"]))
        live_files = {f["id"]: f for f in expected["files"]}
        rebuilt_files = {f["id"]: f for f in line.get("files", [])}
        if set(live_files) != set(rebuilt_files):
            problems.append(f"{object_id}: files {sorted(live_files)} live, {sorted(rebuilt_files)} rebuilt")
        for file_id in sorted(set(live_files) & set(rebuilt_files)):
            f = rebuilt_files[file_id]
            problems.extend(f"{object_id}: {p}" for p in _compare("files", live_files[file_id], f))
            state = (inventory or {}).get("versions", {}).get(f["ocfl_version"], {}).get("state", {})
            if f["logical_path"] not in state.get(f["sha512"], []):
                problems.append(
                    f"{object_id}: {f['logical_path']} is not in {f['ocfl_version']} with its sha512"
                )
        shutil.rmtree(copy, ignore_errors=True)
    return {
        "source": source.name,
        "objects": len(live),
        "bytes": restored_bytes,
        "seconds": round(time.perf_counter() - started, 3),
        "problems": problems,
        "warnings": warnings,
    }


def run_drill(settings: Settings, *, sample: int = 20, seed: int | None = None) -> DrillReport:
    """Run one drill over every source (see the module docstring); record its event and report."""
    started = time.perf_counter()
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    report = DrillReport(uuid.uuid4().hex[:12], seed, sample, utcnow().isoformat())
    record_ids = _sample(settings, sample, seed)
    live = _live_rows(settings, record_ids)
    drills = settings.home_dir / "drills"
    scratch = drills / f"scratch-{report.run_id}"
    (settings.staging_dir / "ocfl-locks").mkdir(parents=True, exist_ok=True)
    with locked(settings.staging_dir / "ocfl-locks" / "drill.lock"):
        try:
            for source in drill_sources(settings):
                area = scratch / hashlib.sha256(source.name.encode()).hexdigest()[:12]
                area.mkdir(parents=True)
                report.sources.append(_drill_source(settings, source, area, live))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    out = drills / f"{report.run_id}.json"
    report.report_file = str(out)
    out.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    with db.write_session(settings) as s:
        append_events(
            s,
            [
                NewEvent(
                    event_type=VALIDATION,
                    outcome="success" if report.ok else "failure",
                    agent=AGENT,
                    object_type="node",
                    object_id=f"drill:{report.run_id}",
                    detail=DETAIL,
                    outcome_detail={
                        "seed": seed,
                        "sample": sample,
                        "records": len(live),
                        "sources": [
                            {"source": x["source"], "objects": x["objects"], "problems": len(x["problems"])}
                            for x in report.sources
                        ],
                        "report": str(out),
                    },
                )
            ],
        )
    return report
