"""Replica audit: the catalogue against every copy — files missing, extra or different at each replica.

The catalogue says which versions each replica holds (``replica_copies``); the storage root's inventories
(checked by the fixity audit that runs first) say which files those versions are and their digests. Every
expected file is read back from the replica and hashed, so a copy that rotted is found whatever the
replica's own metadata says. A missing or different file is copied again from the storage root (verified at
the replica as in replication); a file the replica should not hold is reported, never deleted. Files of a
version still being copied are neither expected nor extra. Every repair is a ``recovery`` event.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.errors import ArchiveError
from archive.events import RECOVERY, NewEvent, append_events
from archive.models import Outbox
from archive.replicas.models import ReplicaCopy
from archive.replicas.outbox import TOPIC
from archive.replicas.target import TMP_PREFIX, Target
from archive.storage.inventory import INVENTORY, OBJECT_NAMASTE, SIDECAR, parse, version_number
from archive.storage.layout import object_relpath
from preservation.audit.judge import AGENT


@dataclass
class CopyProblem:
    replica: str
    kind: str  # missing / different / extra
    path: str  # relative to the storage root
    object_id: str | None = None
    repaired: bool = False
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ReplicaCheck:
    replica: str
    objects: int = 0
    files: int = 0
    problems: list[CopyProblem] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.unavailable is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "ok": self.ok,
            "objects": self.objects,
            "files": self.files,
            "problems": [p.as_dict() for p in self.problems],
            "unavailable": self.unavailable,
        }


def _expected(settings: Settings, object_id: str, held: int) -> dict[str, tuple[str, str] | None]:
    """The files of versions v1..v``held`` of ``object_id``: relative path → (algorithm, digest) to check, or
    None for a file checked by its bytes against the storage root's (namaste, sidecars)."""
    rel = object_relpath(object_id).as_posix()
    obj = settings.ocfl_root / rel
    data = (obj / f"v{held}" / INVENTORY).read_bytes()
    inventory = parse(data)
    if inventory is None:
        raise ValueError(f"{rel}/v{held}/{INVENTORY} is not an inventory")
    algorithm = inventory["digestAlgorithm"]
    found: dict[str, tuple[str, str] | None] = {f"{rel}/{OBJECT_NAMASTE}": None}
    for digest, paths in inventory["manifest"].items():
        for p in paths:
            if (version_number(p.split("/", 1)[0]) or 0) <= held:
                found[f"{rel}/{p}"] = (algorithm, digest)
    for n in range(1, held + 1):
        found[f"{rel}/v{n}/{INVENTORY}"] = None
        found[f"{rel}/v{n}/{SIDECAR}"] = None
    # the replica's root inventory is the held version's
    found[f"{rel}/{INVENTORY}"] = None
    found[f"{rel}/{SIDECAR}"] = None
    return found


def _primary_bytes(settings: Settings, key: str, held: int) -> bytes:
    obj_rel, _, name = key.rpartition("/")
    if name in (INVENTORY, SIDECAR) and version_number(obj_rel.rpartition("/")[2]) is None:
        return (
            settings.ocfl_root / obj_rel / f"v{held}" / name
        ).read_bytes()  # root inventory = held version's
    return (settings.ocfl_root / key).read_bytes()


def check_replica(settings: Settings, replica: Target, *, repair: bool = True) -> ReplicaCheck:
    """Compare one replica with what the catalogue says it holds; repair what is missing or different."""
    check = ReplicaCheck(replica.name)
    with db.read_session(settings) as s:
        copies = s.execute(
            select(ReplicaCopy.object_id, ReplicaCopy.version).where(ReplicaCopy.replica == replica.name)
        ).all()
        pending = s.execute(
            select(Outbox.payload)
            .outerjoin(
                ReplicaCopy, (ReplicaCopy.outbox_key == Outbox.key) & (ReplicaCopy.replica == replica.name)
            )
            .where(Outbox.topic == TOPIC, ReplicaCopy.id.is_(None))
        ).scalars()
        in_flight = {f"{object_relpath(p['object_id']).as_posix()}/{p['version']}/" for p in pending}
    held: dict[str, int] = defaultdict(int)
    for object_id, version in copies:
        held[object_id] = max(held[object_id], version_number(version) or 0)
    try:
        listing = replica.list()
    except ArchiveError as exc:
        check.unavailable = exc.en
        return check
    expected_all: set[str] = set()
    events: list[NewEvent] = []
    for object_id, n in sorted(held.items()):
        check.objects += 1
        try:
            expected = _expected(settings, object_id, n)
        except (OSError, ValueError) as exc:
            check.problems.append(
                CopyProblem(
                    replica.name,
                    "unchecked",
                    object_relpath(object_id).as_posix(),
                    object_id,
                    detail=f"the storage root's own copy cannot be read: {exc}",
                )
            )
            continue
        expected_all.update(expected)
        for key, digest in expected.items():
            check.files += 1
            problem: CopyProblem | None = None
            if key not in listing:
                problem = CopyProblem(replica.name, "missing", key, object_id)
            else:
                try:
                    if digest is not None:
                        same = replica.hash(key, digest[0]) == digest[1]
                    else:
                        same = replica.read_bytes(key) == _primary_bytes(settings, key, n)
                except (OSError, ArchiveError) as exc:
                    same = False
                    detail = f"unreadable: {getattr(exc, 'en', exc)}"
                else:
                    detail = ""
                if not same:
                    problem = CopyProblem(replica.name, "different", key, object_id, detail=detail)
            if problem is None:
                continue
            if repair:
                _repair(settings, replica, problem, n, digest)
                events.append(_event(problem))
            check.problems.append(problem)
    root_files = ("0=ocfl_1.1", "ocfl_layout.json")
    for key in sorted(listing):
        if key in expected_all or key in root_files or key.startswith("extensions/"):
            continue
        if "/extensions/" in key and key.split("/extensions/")[0] + "/" + OBJECT_NAMASTE in expected_all:
            continue
        if any(key.startswith(prefix) for prefix in in_flight) and TMP_PREFIX not in key.rpartition("/")[2]:
            continue  # a version being copied
        if key.endswith(f"/{INVENTORY}") or key.endswith(f"/{SIDECAR}") or key.endswith(OBJECT_NAMASTE):
            obj_rel = key.rpartition("/")[0]
            if any(k.startswith(obj_rel + "/") for k in in_flight):
                continue  # the object of a version being copied, not yet counted
        check.problems.append(CopyProblem(replica.name, "extra", key, detail="not removed: a person decides"))
    if events:
        with db.write_session(settings) as s:
            append_events(s, events)
    return check


def _repair(
    settings: Settings, replica: Target, problem: CopyProblem, held: int, digest: tuple[str, str] | None
) -> None:
    obj_rel, _, name = problem.path.rpartition("/")
    src = settings.ocfl_root / problem.path
    if name in (INVENTORY, SIDECAR) and version_number(obj_rel.rpartition("/")[2]) is None:
        src = settings.ocfl_root / obj_rel / f"v{held}" / name
    try:
        replica.put_file(problem.path, src, digest)
    except (OSError, ArchiveError) as exc:
        problem.detail = f"{problem.detail}; not repaired: {getattr(exc, 'en', exc)}".lstrip("; ")
        return
    problem.repaired = True
    problem.detail = (problem.detail + "; " if problem.detail else "") + "copied again from the storage root"


def _event(problem: CopyProblem) -> NewEvent:
    return NewEvent(
        event_type=RECOVERY,
        outcome="success" if problem.repaired else "failure",
        agent=AGENT,
        object_type="object",
        object_id=problem.object_id or problem.path,
        detail=f"{'repaired' if problem.repaired else 'could not repair'} {problem.path} ({problem.kind}) "
        f"at the replica {problem.replica}: {problem.detail}",
        outcome_detail={"replica": problem.replica, "path": problem.path, "kind": problem.kind},
    )


def check_replicas(settings: Settings, replicas: list[Target], *, repair: bool = True) -> list[ReplicaCheck]:
    return [check_replica(settings, r, repair=repair) for r in replicas]
