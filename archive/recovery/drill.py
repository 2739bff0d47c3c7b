"""``archive drill``: prove that the copies can be restored, before a disaster has to.

A drill picks a random sample of records (the seed is recorded, so a drill can be repeated exactly), and for
each source — the primary storage root and every file-system replica (:func:`drill_sources`) — copies each
sampled object into a scratch area, checks its fixity there (every content file against the inventory's
sha512, the inventory against its sidecar), checks its evidence (:func:`verify_evidence`), rebuilds the
record's catalogue rows from that source's catalogue journal with the rebuild's own row reader, and compares
them with the live rows (local columns aside, see :data:`archive.recovery.rows.LOCAL_COLUMNS`). The result is
one PREMIS event (outcome failure on any mismatch) and a JSON report under ``$ARCHIVE_HOME/drills/``.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from archive.events import VALIDATION, NewEvent, append_events
from archive.models import utcnow
from archive.recovery.journal import read_lines, segments
from archive.recovery.rows import LOCAL_COLUMNS, TABLES, encode_row
from archive.storage import OcflStore
from archive.storage._fs import locked
from archive.storage.inventory import INVENTORY, SIDECAR, sidecar_matches

AGENT = "pearl-archive drill"
DETAIL = (
    "recovery drill: sampled objects restored from each copy, verified, catalogue rows rebuilt and compared"
)


@dataclass
class Source:
    name: str  # "primary", or the replica's path
    root: Path


def drill_sources(settings: Settings) -> list[Source]:
    """Every copy a drill restores from: the primary root and each file-system replica. The one place that
    knows where the copies are (``ARCHIVE_REPLICA_ROOT``, and the path entries of ``ARCHIVE_REPLICAS``;
    its ``s3://`` entries are drilled once the replica targets land — they are skipped here)."""
    found = [Source("primary", settings.ocfl_root)]
    paths: list[Path] = []
    if settings.replica_root is not None:
        paths.append(settings.replica_root)
    for entry in os.environ.get("ARCHIVE_REPLICAS", "").split(","):
        entry = entry.strip()
        if entry and "://" not in entry:
            paths.append(Path(entry))
        elif entry.startswith("file://"):
            paths.append(Path(entry.removeprefix("file://")))
    for path in dict.fromkeys(p.expanduser().resolve() for p in paths):
        if path != settings.ocfl_root:
            found.append(Source(str(path), path))
    return found


def verify_evidence(object_dir: Path) -> list[str]:
    """Problems with a restored object's evidence (inventory signatures, timestamp tokens). Signed and
    timestamped versions come with the evidence work (issue 13): its checks are called from here."""
    return []


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
    source: Source, scratch: Path, live: dict[str, dict[str, Any]], staging: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    problems: list[str] = []
    restored_bytes = 0
    if not (source.root / "0=ocfl_1.1").exists():
        return {"source": source.name, "objects": 0, "problems": [f"{source.root}: not an OCFL storage root"]}
    store = OcflStore(source.root, staging)
    rebuilt = _rebuilt_records(source.root, set(live)) if segments(source.root) else {}
    for object_id, expected in sorted(live.items()):
        where = store.object_path(object_id)
        copy = scratch / hashlib.sha256(object_id.encode()).hexdigest()
        if not where.is_dir():
            problems.append(f"{object_id}: object missing")
            continue
        shutil.copytree(where, copy)
        restored_bytes += sum(p.stat().st_size for p in copy.rglob("*") if p.is_file())
        inventory, found = verify_fixity(copy)
        problems.extend(f"{object_id}: {p}" for p in found + verify_evidence(copy))
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
                report.sources.append(_drill_source(source, area, live, settings.staging_dir))
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
