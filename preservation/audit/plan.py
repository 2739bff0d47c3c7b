"""Planning one object: read its inventories (checked against their sidecars), choose the one to trust,
and list the content files to hash; then hash them in batches.

Every inventory (root and ``vN/``) is checked against its ``inventory.json.sha512`` sidecar; the root
inventory must be byte-identical to the head version's and name the right object; content paths must stay
inside the object, so a tampered inventory never makes the audit read or write outside it. A version
directory beyond the head and a content file no inventory lists are reported (``extra``). An inventory
mismatch is re-read once after a short pause, since a commit replaces the root inventory and then its
sidecar.

Content is deduplicated, so each content file is read once however many versions and logical paths share
it. Files go to the hashing threads in batches of at most :data:`BATCH_BYTES` / :data:`BATCH_FILES`: small
files cost little each, and big objects still spread over every core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from archive.digests import hash_file
from archive.storage.inventory import (
    INVENTORY,
    OBJECT_NAMASTE,
    fixity_by_path,
    parse,
    read_file,
    version_number,
)
from preservation.audit.report import Failure, FailureKind
from preservation.audit.scope import Target

BATCH_BYTES = 16 * 1024 * 1024
BATCH_FILES = 256


@dataclass
class Content:
    rel: str  # content path relative to the object directory
    sha512: str
    sha256: str | None
    refs: list[tuple[str, str]]  # (version, logical path) of every state entry using this content
    size: int | None  # on disk when planned; None when absent


@dataclass
class Plan:
    failures: list[Failure]
    inventory: dict[str, Any] | None = None
    trusted: bool = False  # the inventory used passed its sidecar check (repairs need that)
    contents: list[Content] = field(default_factory=list)


def _safe_content_path(rel: str) -> bool:
    parts = rel.split("/")
    return (
        len(parts) >= 3
        and version_number(parts[0]) is not None
        and all(p not in ("", ".", "..") for p in parts)
        and "\\" not in rel
        and "\x00" not in rel
    )


def plan_object(obj_dir: Path, target: Target) -> Plan:
    try:
        plan = _plan_once(obj_dir, target)
        if any(f.kind == FailureKind.inventory for f in plan.failures):
            time.sleep(0.2)  # a commit replaces the root inventory, then its sidecar: look once more
            plan = _plan_once(obj_dir, target)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # the directory vanished or cannot be listed, or an inventory is malformed beyond what is checked
        unreadable = isinstance(exc, OSError)
        failure = Failure(
            kind=FailureKind.unreadable if unreadable else FailureKind.inventory,
            object_id=target.object_id,
            archive=target.archive,
            archival_code=target.archival_code,
            detail=f"cannot read the object directory: {exc}"
            if unreadable
            else f"malformed inventory: {exc!r}",
        )
        return Plan(failures=[failure])
    return plan


def _plan_once(obj_dir: Path, target: Target) -> Plan:
    def fail(kind: FailureKind, detail: str, **kw: Any) -> None:
        plan.failures.append(
            Failure(
                kind=kind,
                object_id=target.object_id,
                detail=detail,
                archive=target.archive,
                archival_code=target.archival_code,
                **kw,
            )
        )

    plan = Plan(failures=[])
    if not (obj_dir / OBJECT_NAMASTE).is_file():
        fail(FailureKind.missing, "the object is not in the storage root")
        return plan
    # "" for the root inventory, else the version name -> (bytes, matches its sidecar)
    inventories: dict[str, tuple[bytes, bool]] = {}
    versions = sorted(
        (number, e)
        for e in os.listdir(obj_dir)
        if (number := version_number(e)) is not None and (obj_dir / e).is_dir()
    )
    for where in ["", *(v for _, v in versions)]:
        rel = f"{where}/{INVENTORY}" if where else INVENTORY
        try:
            found = read_file(obj_dir / where if where else obj_dir)
        except FileNotFoundError:
            if not where:
                fail(FailureKind.inventory, "the root inventory.json is missing", content_path=rel)
            continue  # a version inventory is only a SHOULD
        except OSError as exc:
            fail(FailureKind.inventory, f"cannot read the inventory: {exc.strerror}", content_path=rel)
            continue
        if not found.ok:
            fail(
                FailureKind.inventory,
                "inventory.json does not match its sidecar inventory.json.sha512"
                if found.expected
                else "the sidecar inventory.json.sha512 is missing or malformed",
                content_path=rel,
                expected_sha512=found.expected,
                actual_sha512=found.actual,
                actual_size=len(found.data),
            )
        inventories[where] = (found.data, found.ok)

    root_inv = parse(inventories[""][0]) if "" in inventories else None
    if "" in inventories and root_inv is None:
        fail(
            FailureKind.inventory, "the root inventory is not a valid OCFL inventory", content_path=INVENTORY
        )
    head = root_inv["head"] if root_inv else (versions[-1][1] if versions else None)
    head_entry = inventories.get(head) if head else None
    if root_inv is not None and head_entry is not None and head_entry[0] != inventories[""][0]:
        fail(
            FailureKind.inventory,
            f"the root inventory differs from the head version's ({head}/inventory.json)",
            content_path=INVENTORY,
            version=head,
        )
    # the inventory to check content against: the root if sound, else the head version's if sound
    chosen: dict[str, Any] | None = None
    if (
        root_inv is not None
        and inventories[""][1]
        and (head_entry is None or head_entry[0] == inventories[""][0])
    ):
        chosen, plan.trusted = root_inv, True
    elif head_entry is not None and head_entry[1] and (head_inv := parse(head_entry[0])) is not None:
        chosen, plan.trusted = head_inv, True
    elif root_inv is not None:
        chosen = root_inv
    if chosen is None:
        return plan
    if chosen.get("id") != target.object_id and not target.object_id.startswith("?"):
        fail(
            FailureKind.inventory, f"the inventory names object {chosen.get('id')!r}", content_path=INVENTORY
        )
        plan.trusted = False
    head = chosen["head"]
    head_number = version_number(head) or 0
    for number, name in versions:
        if number > head_number:
            fail(
                FailureKind.extra,
                f"version directory {name} is beyond the head {head} (uncommitted)",
                content_path=name,
                version=name,
            )
    plan.inventory = chosen

    try:
        fixity = fixity_by_path(chosen)
        refs: dict[str, list[tuple[str, str]]] = {}
        for version in sorted(chosen["versions"], key=lambda v: version_number(v) or 0):
            for digest, logical_paths in chosen["versions"][version]["state"].items():
                refs.setdefault(digest, []).extend((version, lp) for lp in logical_paths)
        listed: set[str] = set()
        base = f"{obj_dir}/"
        for digest, paths in chosen["manifest"].items():
            for rel in paths:
                if not isinstance(rel, str) or not _safe_content_path(rel):
                    fail(FailureKind.inventory, f"the manifest lists an unsafe content path {rel!r}")
                    continue
                listed.add(rel)
                try:
                    size: int | None = os.stat(base + rel).st_size
                except OSError:
                    size = None
                sha256 = fixity.get(rel, {}).get("sha256")
                plan.contents.append(
                    Content(
                        rel, digest.lower(), sha256.lower() if sha256 else None, refs.get(digest, []), size
                    )
                )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        fail(FailureKind.inventory, f"the inventory is malformed: {exc!r}", content_path=INVENTORY)
        plan.inventory, plan.contents, plan.trusted = None, [], False
        return plan

    content_dir = chosen.get("contentDirectory", "content")
    for number, name in versions:
        if number > head_number:
            continue
        skip = len(str(obj_dir)) + 1
        for dirpath, _dirs, files in os.walk(f"{obj_dir}/{name}/{content_dir}"):
            for fname in files:
                rel = f"{dirpath[skip:]}/{fname}"
                if rel not in listed:
                    try:
                        extra_size: int | None = os.stat(f"{dirpath}/{fname}").st_size
                    except OSError:
                        extra_size = None
                    fail(
                        FailureKind.extra,
                        "a file in the content directory that no inventory lists",
                        content_path=rel,
                        version=name,
                        actual_size=extra_size,
                    )
    return plan


def batches(contents: list[Content]) -> Iterator[tuple[list[str], int]]:
    batch: list[str] = []
    nbytes = 0
    for c in contents:
        batch.append(c.rel)
        nbytes += c.size or 0
        if nbytes >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            yield batch, nbytes
            batch, nbytes = [], 0
    if batch:
        yield batch, nbytes


class Hashed(NamedTuple):
    rel: str
    size: int
    digests: dict[str, str]
    error: str | None  # "missing" / "unreadable: …"


def hash_batch(obj_dir: Path, rels: list[str], algorithms: tuple[str, ...]) -> list[Hashed]:
    out = []
    for rel in rels:
        try:
            size, digests = hash_file(obj_dir / rel, algorithms)
        except FileNotFoundError:
            out.append(Hashed(rel, 0, {}, "missing"))
        except OSError as exc:
            out.append(Hashed(rel, 0, {}, f"unreadable: {exc.strerror or exc}"))
        else:
            out.append(Hashed(rel, size, digests, None))
    return out
