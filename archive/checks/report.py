"""A check run's report: items keyed by DA/T 70 item code, kept as JSON (and CSV) under ``$ARCHIVE_HOME``.

JSON shape (other tools rely on it)::

    {"run_id", "stage", "scope", "archive", "transfer", "seed", "fraction", "created", "status",
     "records", "files",
     "items": [{"code", "name_zh", "name_en", "property", "status", "mode", "uncertain", "checked",
                "failure_count", "more_failures", "note", "failures": [{"record", "path", "detail"}]}],
     "failures_file"}

An item's ``failures`` holds at most ``ARCHIVE_PROBLEMS_SHOWN`` entries; ``more_failures`` says how many
more there are, all of them in ``failures.jsonl`` (one ``{"code", "record", "path", "detail"}`` a line).
``report.json``'s sha256 is kept on the run and recorded as an event.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from archive.checks.registry import CheckDef

Status = Literal["pass", "fail", "warn", "manual", "n/a"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "warn", "manual", "n/a")


@dataclass
class Failure:
    record: str | None  # "ARCHIVE/档号", or None for a transfer- or node-level failure
    path: str | None  # the file, as the bag or the object names it
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "path": self.path, "detail": self.detail}


@dataclass
class ItemResult:
    check: CheckDef
    status: Status
    checked: int = 0
    failures: list[Failure] = field(default_factory=list)
    note: str | None = None

    def as_dict(self, shown: int) -> dict[str, Any]:
        c = self.check
        return {
            "code": c.code,
            "name_zh": c.name_zh,
            "name_en": c.name_en,
            "property": c.property,
            "status": self.status,
            "mode": c.mode,
            "uncertain": c.uncertain,
            "checked": self.checked,
            "failure_count": len(self.failures),
            "more_failures": max(0, len(self.failures) - shown),
            "note": self.note,
            "failures": [f.as_dict() for f in self.failures[:shown]],
        }


def new_run_id() -> str:
    now = dt.datetime.now(dt.UTC)
    return f"C{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


def overall(items: Iterable[ItemResult]) -> Status:
    """The run's status: fail if any automatic item failed, else warn if any warned, else pass."""
    statuses = {i.status for i in items if i.check.automatic}
    if "fail" in statuses:
        return "fail"
    return "warn" if "warn" in statuses else "pass"


@dataclass
class Report:
    run_id: str
    stage: str
    scope: str
    items: list[ItemResult]
    archive: str | None = None
    transfer: str | None = None
    seed: int | None = None
    fraction: float | None = None
    records: int = 0
    files: int = 0
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return overall(self.items)

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def item(self, code: str) -> ItemResult:
        return next(i for i in self.items if i.check.code == code)

    def as_dict(self, shown: int, failures_file: str | None = None) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stage": self.stage,
            "scope": self.scope,
            "archive": self.archive,
            "transfer": self.transfer,
            "seed": self.seed,
            "fraction": self.fraction,
            "created": self.created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": self.status,
            "records": self.records,
            "files": self.files,
            **self.extra,
            "items": [i.as_dict(shown) for i in self.items],
            "failures_file": failures_file,
        }


def run_dir(home: Path, run_id: str) -> Path:
    return home / "checks" / run_id


def write_files(report: Report, home: Path, shown: int) -> tuple[Path, Path, str]:
    """Write ``report.json``, ``failures.jsonl`` and ``report.csv``; returns (report, failures, sha256)."""
    folder = run_dir(home, report.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    failures = folder / "failures.jsonl"
    with failures.open("w", encoding="utf-8") as fh:
        for item in report.items:
            for f in item.failures:
                fh.write(json.dumps({"code": item.check.code, **f.as_dict()}, ensure_ascii=False) + "\n")
    body = json.dumps(
        report.as_dict(shown, str(failures)), ensure_ascii=False, indent=1, sort_keys=False
    ).encode()
    path = folder / "report.json"
    path.write_bytes(body)
    (folder / "report.csv").write_text(to_csv(report), encoding="utf-8-sig")
    return path, failures, hashlib.sha256(body).hexdigest()


CSV_COLUMNS = (
    "code",
    "name_zh",
    "name_en",
    "property",
    "status",
    "checked",
    "failure_count",
    "record",
    "path",
    "detail",
)


def to_csv(report: Report) -> str:
    """One row per failure (every one of them), and one row for an item without failures."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in report.items:
        c = item.check
        head = [c.code, c.name_zh, c.name_en, c.property, item.status, item.checked, len(item.failures)]
        if not item.failures:
            writer.writerow([*head, "", "", item.note or ""])
        for f in item.failures:
            writer.writerow([*head, f.record or "", f.path or "", f.detail])
    return out.getvalue()


def csv_from_json(report: dict[str, Any], failures: Iterable[dict[str, Any]] | None = None) -> str:
    """The CSV of a stored report (every failure when ``failures``, the failures.jsonl lines, is given)."""
    by_code: dict[str, list[dict[str, Any]]] = {}
    if failures is not None:
        for f in failures:
            by_code.setdefault(f["code"], []).append(f)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in report["items"]:
        head = [item[k] for k in CSV_COLUMNS[:7]]
        rows = by_code.get(item["code"], item["failures"]) if failures is not None else item["failures"]
        if not rows:
            writer.writerow([*head, "", "", item.get("note") or ""])
        for f in rows:
            writer.writerow([*head, f.get("record") or "", f.get("path") or "", f.get("detail") or ""])
    return out.getvalue()
