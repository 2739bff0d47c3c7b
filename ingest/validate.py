"""``archive validate``: every check of an ingest that needs no catalogue, storing nothing.

Unpacks an archive into a private temporary folder (removed afterwards), validates the bag (RFC 8493: structure,
manifests, tag manifests, Oxum, fixity) and reads the record metadata (records.csv). Checks that need the
catalogue (档号 already held, bag already ingested) are made by ``archive ingest``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.errors import BadArgument
from ingest.bag import open_bag, verify_bag
from ingest.metadata import read_records
from ingest.problems import Problem, errors, summarise, warnings
from ingest.unpack import check_directory_transfer, detect_kind, unpack_transfer

if TYPE_CHECKING:
    from archive.config import Settings


@dataclass
class TransferReport:
    path: str
    problems: list[Problem] = field(default_factory=list)
    file_count: int = 0
    byte_count: int = 0
    records: int = 0

    @property
    def valid(self) -> bool:
        return not errors(self.problems)

    def as_dict(self, shown: int | None = None, file: Path | None = None) -> dict[str, Any]:
        """The report; with ``shown``, bounded as an ingest's is (:func:`ingest.problems.summarise`: the
        first ``shown`` problems of each code, the count of every code, how many more, and ``file`` — where
        every one of them was written, if anywhere)."""
        if shown is None:
            problems: dict[str, Any] = {
                "errors": [p.as_dict() for p in errors(self.problems)],
                "warnings": [p.as_dict() for p in warnings(self.problems)],
            }
        else:
            summary = summarise(self.problems, shown, file)
            problems = {
                "errors": summary["errors"],
                "warnings": summary["warnings"],
                "problem_counts": summary["counts"],
                "more_problems": summary["more"],
                "problems_file": summary["file"],
            }
        return {
            "path": self.path,
            "valid": self.valid,
            "files": self.file_count,
            "bytes": self.byte_count,
            "records": self.records,
            **problems,
        }


def validate_transfer(path: Path, settings: Settings, reporter: Any = None) -> TransferReport:
    if not path.exists():
        raise BadArgument(variant="no_path", path=path)
    report = TransferReport(str(path))
    kind = detect_kind(path)
    if kind is None:
        report.problems.append(Problem("ING004", path=str(path)))
        return report
    if kind == "dir":
        report.problems.extend(check_directory_transfer(path, settings))
        if not errors(report.problems):
            _check(path, settings, report, reporter)
        return report
    with tempfile.TemporaryDirectory(prefix="archive-validate-") as tmp:
        unpacked = unpack_transfer(path, Path(tmp) / "bag", settings)
        report.problems.extend(unpacked.problems)
        if unpacked.bag_root is not None and not errors(unpacked.problems):
            _check(unpacked.bag_root, settings, report, reporter)
    return report


def _check(bag_root: Path, settings: Settings, report: TransferReport, reporter: Any) -> None:
    bag = open_bag(bag_root)
    report.problems.extend(bag.problems)
    specs, meta_problems = read_records(bag_root, sorted(bag.payload))
    report.problems.extend(meta_problems)
    report.records = len(specs)
    report.file_count = len(bag.payload)
    report.byte_count = sum(e.size for e in bag.payload.values())
    if reporter is not None:
        reporter.stage("verify", report.file_count, report.byte_count)
    verification = verify_bag(
        bag, workers=settings.workers, progress=reporter.advance if reporter is not None else None
    )
    report.problems.extend(verification.problems)
