"""Evidence for auditors: PREMIS and METS exports of a record, evidence packages (zipped BagIt bags with the
events, their chain links, the OCFL inventories and a chain recomputation script), rendering of 四性检测
reports to HTML and PDF.

    record_premis(session, record); record_mets(settings, session, record)
    record_package(settings, session, record, Path("out.zip"), agent="li")   # see archive.evidence.package
    cycle_package(settings, session, run_id, Path("out.zip"), agent="li")    # a 四性检测 run's package
    render_run(settings, session, run)      # a stored 四性检测 report as report.html and report.pdf

``archive evidence ARCHIVE/CODE OUT.zip`` is the command (:mod:`archive.evidence.cli`).
"""

from archive.evidence.errors import BadTarget, ObjectMissing, OutputExists
from archive.evidence.exports import events_json, mets_document, premis_document
from archive.evidence.package import Contents, PackageSummary, chain_excerpt, unpack, write_package
from archive.evidence.records import record_events, record_mets, record_package, record_premis
from archive.evidence.render import report_html, report_pdf
from archive.evidence.reports import cycle_package, render_run

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
