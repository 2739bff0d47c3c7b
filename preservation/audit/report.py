"""What a fixity audit found, and the files it leaves for auditors.

``report.json`` (UTF-8, sorted keys, 2-space indent) holds the scope, the run's sessions (a resumed run has
more than one), the totals and every failure. ``report.csv`` has one row per failure, UTF-8 with a BOM so
that Excel shows Chinese correctly. ``summary.txt`` is a short bilingual summary. ``report.sha256`` lists
the sha256 of those three in ``sha256sum -c`` format, and the same values are recorded in the run's summary
event (see :mod:`preservation.audit.run`), so an auditor can re-check the report with standard tools.

Failure kinds (:class:`FailureKind`):

=========== ===========================================================================================
bitrot      a content file's digest differs from the inventory's (size unchanged or not known)
truncated   … and the file is shorter than the catalogue says (or empty)
missing     a content file (or a whole object) the inventory or catalogue expects is not there
unreadable  the file is there but reading it failed (I/O error, permissions)
extra       a file in a version's content directory that no inventory lists (or an uncommitted version)
inventory   an inventory does not match its ``.sha512`` sidecar, the root inventory differs from the head
            version's, or an inventory is missing, unreadable or names another object
catalogue   the file matches its inventory but not the catalogue (File row digest or size), or the
            catalogue lists a file the inventory does not hold
=========== ===========================================================================================
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archive.storage import replace_atomically

REPORT_FORMAT = "pearl-archive fixity audit report 1"


class FailureKind(enum.StrEnum):
    bitrot = "bitrot"
    truncated = "truncated"
    missing = "missing"
    unreadable = "unreadable"
    extra = "extra"
    inventory = "inventory"
    catalogue = "catalogue"


KINDS = frozenset(k.value for k in FailureKind)
KIND_ZH = {
    FailureKind.bitrot: "比特损坏",
    FailureKind.truncated: "文件截断",
    FailureKind.missing: "文件缺失",
    FailureKind.unreadable: "无法读取",
    FailureKind.extra: "多余文件",
    FailureKind.inventory: "清单不符",
    FailureKind.catalogue: "目录不符",
}


@dataclass
class Failure:
    """One thing that is not as recorded. Paths: ``content_path`` is relative to the object directory
    (``v1/content/originals/…``, or ``inventory.json``); ``object_path`` is the object directory relative to
    the storage root."""

    kind: str
    object_id: str
    detail: str
    archive: str | None = None
    archival_code: str | None = None  # 档号
    object_path: str | None = None
    version: str | None = None
    logical_path: str | None = None
    content_path: str | None = None
    expected_sha512: str | None = None
    actual_sha512: str | None = None
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    expected_size: int | None = None
    actual_size: int | None = None
    file_id: int | None = None  # catalogue File row, when the catalogue knows the file
    repaired: bool = False
    repair_detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(**data)


@dataclass
class Session:
    """One stretch of work on a run (an interrupted run that is resumed has two or more)."""

    started_at: str
    finished_at: str | None = None
    seconds: float = 0.0
    files: int = 0  # content files hashed in this session
    bytes: int = 0
    interrupted: bool = False


@dataclass
class AuditReport:
    run_id: str
    scope: dict[str, Any]
    started_at: str
    finished_at: str
    objects: int
    files: int
    bytes: int
    seconds: float
    failures: list[Failure]
    sessions: list[Session]
    uncatalogued_objects: int = 0
    report_dir: Path | None = None
    digests: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of report.json, …
    event_identifier: str | None = None  # the run's summary event

    @property
    def ok(self) -> bool:
        """False when anything at all was found, even if it was repaired (the CLI exits non-zero)."""
        return not self.failures

    @property
    def intact(self) -> bool:
        """True when every failure found was repaired from the replica: storage is whole again."""
        return all(f.repaired for f in self.failures)

    @property
    def repaired(self) -> int:
        return sum(1 for f in self.failures if f.repaired)

    @property
    def throughput_mb_s(self) -> float:
        """Bytes hashed per second of work (MB = 10⁶ bytes) over all sessions."""
        hashed = sum(s.bytes for s in self.sessions)
        return hashed / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def report_json(self) -> Path | None:
        return self.report_dir / "report.json" if self.report_dir else None

    @property
    def report_csv(self) -> Path | None:
        return self.report_dir / "report.csv" if self.report_dir else None

    @property
    def summary_txt(self) -> Path | None:
        return self.report_dir / "summary.txt" if self.report_dir else None

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.failures:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        return dict(sorted(counts.items()))

    def as_dict(self) -> dict[str, Any]:
        """The content of ``report.json``."""
        return {
            "format": REPORT_FORMAT,
            "run_id": self.run_id,
            "ok": self.ok,
            "intact": self.intact,
            "scope": self.scope,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": round(self.seconds, 3),
            "throughput_mb_s": round(self.throughput_mb_s, 1),
            "totals": {
                "objects": self.objects,
                "files": self.files,
                "bytes": self.bytes,
                "failures": len(self.failures),
                "repaired": self.repaired,
                "unrepaired": len(self.failures) - self.repaired,
                "by_kind": self.by_kind(),
                "uncatalogued_objects": self.uncatalogued_objects,
            },
            "sessions": [asdict(s) for s in self.sessions],
            "failures": [f.as_dict() for f in self.failures],
        }

    def summary(self) -> dict[str, Any]:
        """What the CLI prints with ``--json`` and the summary event carries (no failure list)."""
        data = self.as_dict()
        del data["failures"]
        data["report_dir"] = str(self.report_dir) if self.report_dir else None
        data["report_sha256"] = self.digests
        data["event"] = self.event_identifier
        return data


CSV_COLUMNS = [
    ("kind", "类型 kind"),
    ("kind_zh", "类型说明"),
    ("archive", "档案馆 archive"),
    ("archival_code", "档号 archival code"),
    ("object_id", "对象 object id"),
    ("version", "版本 version"),
    ("logical_path", "逻辑路径 logical path"),
    ("content_path", "存储路径 content path"),
    ("expected_sha512", "应有 sha512 expected"),
    ("actual_sha512", "实际 sha512 actual"),
    ("expected_sha256", "应有 sha256 expected"),
    ("actual_sha256", "实际 sha256 actual"),
    ("expected_size", "应有大小 expected size"),
    ("actual_size", "实际大小 actual size"),
    ("repaired", "已修复 repaired"),
    ("detail", "说明 detail"),
    ("repair_detail", "修复说明 repair detail"),
    ("object_path", "对象目录 object path"),
]


def report_json_bytes(report: AuditReport) -> bytes:
    return (json.dumps(report.as_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def report_csv_bytes(report: AuditReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title for _, title in CSV_COLUMNS])
    for f in report.failures:
        row = f.as_dict()
        row["kind_zh"] = KIND_ZH.get(FailureKind(f.kind), f.kind) if f.kind in KINDS else f.kind
        row["repaired"] = "yes 是" if f.repaired else "no 否"
        writer.writerow(["" if row.get(key) is None else row[key] for key, _ in CSV_COLUMNS])
    return out.getvalue().encode("utf-8-sig")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def summary_text(report: AuditReport) -> str:
    scope = report.scope
    where_zh = f"档案馆 {scope['archive']}" if scope.get("archive") else "全部档案馆"
    where_en = f"archive {scope['archive']}" if scope.get("archive") else "all archives"
    if scope.get("since"):
        where_zh += f"，{scope['since']} 之前未核验的文件"
        where_en += f", files not verified since {scope['since']}"
    n_fail = len(report.failures)
    kinds_zh = "，".join(
        f"{KIND_ZH[FailureKind(k)] if k in KINDS else k} {n}" for k, n in report.by_kind().items()
    )
    kinds_en = ", ".join(f"{k} {n}" for k, n in report.by_kind().items())
    lines = [
        f"固定性核验报告 / Fixity audit report  {report.run_id}",
        "",
        f"结论：{'通过' if report.ok else '发现问题'}" + (f"（{kinds_zh}）" if n_fail else ""),
        f"范围：{where_zh}；算法 {', '.join(scope.get('algorithms', []))}",
        f"对象 {report.objects} 个，文件 {report.files} 个，{_size(report.bytes)}，"
        f"用时 {report.seconds:.1f} 秒，{report.throughput_mb_s:.1f} MB/秒",
        f"问题 {n_fail} 处，已从副本修复 {report.repaired} 处，未修复 {n_fail - report.repaired} 处",
        "",
        f"Result: {'PASSED' if report.ok else 'PROBLEMS FOUND'}" + (f" ({kinds_en})" if n_fail else ""),
        f"Scope: {where_en}; algorithms {', '.join(scope.get('algorithms', []))}",
        f"{report.objects} objects, {report.files} files, {_size(report.bytes)} in {report.seconds:.1f} s "
        f"({report.throughput_mb_s:.1f} MB/s)",
        f"{n_fail} failures, {report.repaired} repaired from the replica, "
        f"{n_fail - report.repaired} not repaired",
        f"Started {report.started_at}, finished {report.finished_at}, {len(report.sessions)} session(s)",
    ]
    if n_fail:
        lines += ["", "问题清单 / Failures (report.csv has them all):"]
        for f in report.failures[:20]:
            where = f.content_path or f.logical_path or ""
            code = f"{f.archive}/{f.archival_code}" if f.archival_code else f.object_id
            mark = " [repaired 已修复]" if f.repaired else ""
            lines.append(f"  {f.kind:<10} {code}  {where}{mark}")
        if n_fail > 20:
            lines.append(f"  … {n_fail - 20} more / 另有 {n_fail - 20} 处")
    lines += ["", "核对报告 / verify this report: sha256sum -c report.sha256", ""]
    return "\n".join(lines)


def write_report_files(report: AuditReport, report_dir: Path) -> dict[str, str]:
    """Write report.json, report.csv, summary.txt and report.sha256 (``sha256sum -c`` format); return the
    sha256 of each of the first three."""
    report_dir.mkdir(parents=True, exist_ok=True)
    report.report_dir = report_dir
    contents = {
        "report.json": report_json_bytes(report),
        "report.csv": report_csv_bytes(report),
        "summary.txt": summary_text(report).encode("utf-8"),
    }
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    contents["report.sha256"] = "".join(f"{d}  {n}\n" for n, d in digests.items()).encode("ascii")
    for name, data in contents.items():  # temp file + fsync + rename: a reader never sees half a report
        replace_atomically(report_dir / name, data, report_dir)
    report.digests = digests
    return digests
