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

from archive.checks.registry import CheckDef, registry
from archive.checks.report import Failure, ItemResult, Report
from archive.checks.run import Mapped, check_objects, run_checks, run_cycle, store_report
from archive.checks.subjects import FileView, RecordView

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
