"""Evidence for auditors: PREMIS and METS exports of a record, evidence packages (zipped BagIt bags with the
events, their chain links, the OCFL inventories and a chain recomputation script), rendering of 四性检测
reports to HTML and PDF.

    record_premis(session, record); record_mets(settings, session, record)
    record_package(settings, session, record, Path("out.zip"), agent="li")   # see archive.evidence.package
    cycle_package(settings, session, run_id, Path("out.zip"), agent="li")    # a 四性检测 run's package
    render_run(settings, session, run)      # a stored 四性检测 report as report.html and report.pdf

``archive evidence ARCHIVE/CODE OUT.zip`` is the command (:mod:`archive.evidence.cli`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.evidence.errors import BadTarget, ObjectMissing, OutputExists
    from archive.evidence.exports import events_json, mets_document, premis_document
    from archive.evidence.package import Contents, PackageSummary, chain_excerpt, unpack, write_package
    from archive.evidence.records import record_events, record_mets, record_package, record_premis
    from archive.evidence.render import report_html, report_pdf
    from archive.evidence.reports import cycle_package, render_run

# Imported on first use (PEP 562): every `archive` command loads this package's CLI plugin, and the exports
# bring SQLAlchemy, lxml and the event code (~0.3 s) that most commands never need.
_WHERE = {
    "BadTarget": "errors", "ObjectMissing": "errors", "OutputExists": "errors", "events_json": "exports",
    "mets_document": "exports", "premis_document": "exports", "Contents": "package",
    "PackageSummary": "package", "chain_excerpt": "package", "unpack": "package", "write_package": "package",
    "record_events": "records", "record_mets": "records", "record_package": "records",
    "record_premis": "records", "report_html": "render", "report_pdf": "render", "cycle_package": "reports",
    "render_run": "reports",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"archive.evidence.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'archive.evidence' has no attribute {name!r}")


__all__ = [
    "BadTarget",
    "Contents",
    "ObjectMissing",
    "OutputExists",
    "PackageSummary",
    "chain_excerpt",
    "cycle_package",
    "events_json",
    "mets_document",
    "premis_document",
    "record_events",
    "record_mets",
    "record_package",
    "record_premis",
    "render_run",
    "report_html",
    "report_pdf",
    "unpack",
    "write_package",
]
