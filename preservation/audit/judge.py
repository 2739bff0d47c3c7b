"""Judging one object: its hashed content against the inventory and the catalogue, as failures.

A content file is checked against the inventory manifest's sha512 (and, when computed, sha256 against the
fixity block) and, when the catalogue has a File row for it (originals and derivatives), against the row's
digests and size. A file shorter than recorded is ``truncated``, otherwise a differing digest is ``bitrot``.
A failing object gets one ``fixity check`` event (outcome ``failure``, the first
:data:`MAX_EVENT_FAILURES` failures in ``outcome_detail``); objects that pass get none, so the event log
grows with what happened, not with the size of the root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archive.events import FIXITY_CHECK, NewEvent
from preservation.audit.plan import Content, Hashed, Plan
from preservation.audit.report import Failure, FailureKind
from preservation.audit.scope import CatFile, Target

AGENT = "pearl-archive audit 0.1"
MAX_EVENT_FAILURES = 50


@dataclass
class ObjectResult:
    target: Target
    failures: list[Failure]
    ok_file_ids: list[int]
    files: int
    bytes: int


def _content_failure(
    target: Target,
    object_path: str,
    c: Content,
    version: str,
    logical: str | None,
    cats: list[CatFile],
    kind: FailureKind,
    detail: str,
    **actual: Any,
) -> Failure:
    return Failure(
        kind=kind,
        detail=detail,
        object_id=target.object_id,
        archive=target.archive,
        archival_code=target.archival_code,
        object_path=object_path,
        version=version,
        logical_path=logical,
        content_path=c.rel,
        expected_sha512=c.sha512,
        expected_sha256=c.sha256,
        expected_size=cats[0].size if cats else None,
        file_id=cats[0].id if cats else None,
        **actual,
    )


def judge(target: Target, plan: Plan, hashed: dict[str, Hashed], object_path: str) -> ObjectResult:
    failures = list(plan.failures)
    ok_ids: list[int] = []
    files = nbytes = 0
    inv = plan.inventory
    cat_for_rel: dict[str, list[CatFile]] = {}
    if inv is not None:
        for cf in target.files:
            state = inv["versions"].get(cf.version, {}).get("state", {})
            digest = next((d for d, lps in state.items() if cf.logical_path in lps), None)
            paths = inv["manifest"].get(digest) if digest else None
            if not paths:
                failures.append(
                    Failure(
                        kind=FailureKind.catalogue,
                        object_id=target.object_id,
                        archive=target.archive,
                        archival_code=target.archival_code,
                        version=cf.version,
                        logical_path=cf.logical_path,
                        expected_sha512=cf.sha512,
                        expected_sha256=cf.sha256,
                        expected_size=cf.size,
                        file_id=cf.id,
                        detail=f"listed by the catalogue in {cf.version} but not held by the inventory",
                    )
                )
                continue
            cat_for_rel.setdefault(paths[0], []).append(cf)
    for c in plan.contents:
        h = hashed[c.rel]
        own_version = c.rel.split("/", 1)[0]
        version, logical = next(
            ((v, lp) for v, lp in c.refs if v == own_version), c.refs[0] if c.refs else (own_version, None)
        )
        cats = cat_for_rel.get(c.rel, [])

        def failure(kind: FailureKind, detail: str, **actual: Any) -> Failure:
            return _content_failure(target, object_path, c, version, logical, cats, kind, detail, **actual)  # noqa: B023

        if h.error is not None:
            missing = h.error == "missing"
            failures.append(
                failure(
                    FailureKind.missing if missing else FailureKind.unreadable,
                    "the content file is missing" if missing else f"the content file is {h.error}",
                )
            )
            continue
        files += 1
        nbytes += h.size
        got512, got256 = h.digests.get("sha512"), h.digests.get("sha256")
        if got512 is None and (got256 is None or c.sha256 is None):
            detail = "the inventory has no sha256 fixity for this file; audit it with sha512"
            failures.append(failure(FailureKind.inventory, detail, actual_sha256=got256, actual_size=h.size))
            continue
        if (got512 is not None and got512 != c.sha512) or (
            got256 is not None and c.sha256 is not None and got256 != c.sha256
        ):
            expected_size = cats[0].size if cats else None
            if h.size == 0 or (expected_size is not None and h.size < expected_size):
                kind = FailureKind.truncated
                detail = f"the content file is shorter than recorded ({h.size} of {expected_size} bytes)"
            else:
                kind = FailureKind.bitrot
                detail = "the content file's digest differs from the inventory's"
            failures.append(
                failure(kind, detail, actual_sha512=got512, actual_sha256=got256, actual_size=h.size)
            )
            continue
        for cf in cats:
            wrong = [
                name
                for name, ok in (
                    ("sha512", got512 is None or got512 == cf.sha512),
                    ("sha256", got256 is None or got256 == cf.sha256),
                    ("size", h.size == cf.size),
                )
                if not ok
            ]
            if wrong:
                failures.append(
                    Failure(
                        kind=FailureKind.catalogue,
                        object_id=target.object_id,
                        archive=target.archive,
                        archival_code=target.archival_code,
                        object_path=object_path,
                        version=cf.version,
                        logical_path=cf.logical_path,
                        content_path=c.rel,
                        expected_sha512=cf.sha512,
                        actual_sha512=got512,
                        expected_sha256=cf.sha256,
                        actual_sha256=got256,
                        expected_size=cf.size,
                        actual_size=h.size,
                        file_id=cf.id,
                        detail=f"the file matches its inventory but not the catalogue ({', '.join(wrong)})",
                    )
                )
            else:
                ok_ids.append(cf.id)
    return ObjectResult(target, failures, ok_ids, files, nbytes)


def failure_event(result: ObjectResult, run_id: str) -> NewEvent:
    t = result.target
    kinds: dict[str, int] = {}
    for f in result.failures:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    listed = [
        {
            k: v
            for k, v in f.as_dict().items()
            if k
            in (
                "kind",
                "version",
                "logical_path",
                "content_path",
                "expected_sha512",
                "actual_sha512",
                "expected_size",
                "actual_size",
            )
            and v is not None
        }
        for f in result.failures[:MAX_EVENT_FAILURES]
    ]
    return NewEvent(
        event_type=FIXITY_CHECK,
        outcome="failure",
        agent=AGENT,
        object_type=t.object_type,
        object_id=t.object_id,
        record_id=t.record_id,
        transfer_id=t.transfer_id,
        detail=f"fixity audit {run_id}: {len(result.failures)} problem(s): "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        outcome_detail={
            "run": run_id,
            "files": result.files,
            "bytes": result.bytes,
            "failures": listed,
            "failures_total": len(result.failures),
        },
    )
