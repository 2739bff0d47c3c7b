"""四性检测 (DA/T 70-2018): checks that records are authentic, complete, usable and secure.

    registry()                      every check by DA/T 70 item code (registry.toml)
    run_checks(settings, "receipt", views, scope="transfer", mapped=…)   the ingest pipeline's receipt checks
    run_cycle(settings, "full" | "sample", archive="GZ", seed=…)         a preservation cycle, stored
    check_objects(settings, record_ids, reason="migration")             after a migration or repair, stored
    store_report(settings, report)  report.json / failures.jsonl / report.csv, rows, the sha256 event
    services: transfer_report, load_report, report_csv, list_runs, pass_rates, record_manual

Modules: :mod:`~archive.checks.registry` (the items), :mod:`~archive.checks.subjects` (what is checked),
:mod:`~archive.checks.items` (metadata and structure), :mod:`~archive.checks.content` (per file),
:mod:`~archive.checks.virus` (ClamAV), :mod:`~archive.checks.history` (event log),
:mod:`~archive.checks.run` (putting them together), :mod:`~archive.checks.report` (the report's shape),
:mod:`~archive.checks.services` (reading what was kept), :mod:`~archive.checks.models` (tables).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The registry (a small TOML) is imported at once: its function shares the module's name, which an import of
# the submodule would otherwise put in its place on this package.
from archive.checks.registry import CheckDef, registry

if TYPE_CHECKING:
    from archive.checks.report import Failure, ItemResult, Report
    from archive.checks.run import Mapped, check_objects, run_checks, run_cycle, store_report
    from archive.checks.subjects import FileView, RecordView

# Imported on first use (PEP 562): every `archive` command loads this package's CLI plugin, and the checks
# bring SQLAlchemy, Pillow and the event code (~0.33 s) that most commands never need.
_WHERE = {
    "Failure": "report", "ItemResult": "report",
    "Report": "report", "Mapped": "run", "check_objects": "run", "run_checks": "run", "run_cycle": "run",
    "store_report": "run", "FileView": "subjects", "RecordView": "subjects",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"archive.checks.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'archive.checks' has no attribute {name!r}")


__all__ = [
    "CheckDef",
    "Failure",
    "FileView",
    "ItemResult",
    "Mapped",
    "RecordView",
    "Report",
    "check_objects",
    "registry",
    "run_checks",
    "run_cycle",
    "store_report",
]
