"""``archive evidence …`` (registered through the ``archive.commands`` entry point).

* ``archive evidence ARCHIVE/CODE OUT.zip [--json]`` — the record's evidence package.
* ``archive evidence --cycle RUN_ID OUT.zip [--json]`` — a 四性检测 run's evidence package.
* ``archive evidence premis ARCHIVE/CODE`` / ``archive evidence mets ARCHIVE/CODE`` — the record's PREMIS 3
  or METS document on stdout.
* ``archive evidence renew [--json]`` — evidence renewal: a timestamped Merkle root over every version.
* ``archive evidence report RUN_ID [--json]`` — a 四性检测 run's report as HTML and PDF beside its JSON (the
  first rendering is logged with the PDF's sha256).

The first argument is either a record reference or the name of a sub-action in :data:`ACTIONS`; further
sub-actions (``renew``: timestamping the packages' Merkle root) register there, taking the rest of the
arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import JsonOpt, fail, operator, out, print_json, run

if TYPE_CHECKING:
    from archive.config import Settings
    from archive.evidence.package import PackageSummary

# name → handler(argument after the name or None, --json); e.g. ACTIONS["renew"] = renew
Action = Callable[[str | None, bool], None]
ACTIONS: dict[str, Action] = {}


def _report(summary: PackageSummary, as_json: bool) -> None:
    if as_json:
        print_json({"ok": True, **summary.as_dict()})
    else:
        out.print(
            f"wrote {summary.path} ({summary.size} bytes, sha256 {summary.sha256}): {summary.events} events, "
            f"{summary.links} chain links, {summary.objects} OCFL object(s)",
            highlight=False,
        )


def _record_package(ref: str, target: Path, as_json: bool) -> None:
    def body(settings: Settings) -> PackageSummary:
        from archive import db
        from archive.evidence.records import record_package
        from archive.services import get_record, split_record_ref

        archive, code = split_record_ref(ref)
        with db.write_session(settings) as s:
            record = get_record(s, archive, code)
            return record_package(settings, s, record, target, agent=operator())

    _report(run(body, as_json), as_json)


def _cycle_package(run_id: str, target: Path, as_json: bool) -> None:
    def body(settings: Settings) -> PackageSummary:
        from archive import db
        from archive.evidence.reports import cycle_package

        with db.write_session(settings) as s:
            return cycle_package(settings, s, run_id, target, agent=operator())

    _report(run(body, as_json), as_json)


def _document(kind: str) -> Action:
    def action(ref: str | None, as_json: bool) -> None:
        def body(settings: Settings) -> bytes:
            from archive import db
            from archive.evidence.errors import BadTarget
            from archive.evidence.records import record_mets, record_premis
            from archive.services import get_record, split_record_ref

            if ref is None:
                raise BadTarget(target=kind)
            archive, code = split_record_ref(ref)
            with db.read_session(settings) as s:
                record = get_record(s, archive, code)
                return record_premis(s, record) if kind == "premis" else record_mets(settings, s, record)

        sys.stdout.buffer.write(run(body, as_json))

    return action


def _renew(argument: str | None, as_json: bool) -> None:
    """``archive evidence renew``: a signed, timestamped Merkle root over every version's evidence (RFC 4998
    in spirit; :func:`archive.sealing.evidence.renew_evidence`), so older signatures stay provable after an
    algorithm or certificate change. Yearly on the schedule."""

    def body(settings: Settings) -> dict[str, object]:
        from archive.evidence.errors import BadTarget
        from archive.sealing.evidence import renew_evidence

        if argument is not None:
            raise BadTarget(target=f"renew {argument}")
        return renew_evidence(settings)

    summary = run(body, as_json)
    if as_json:
        print_json(summary)
    else:
        out.print(
            ", ".join(f"{k}: {v}" for k, v in summary.items()),
            highlight=False,
        )


def _render_report(run_id: str | None, as_json: bool) -> None:
    """``archive evidence report RUN_ID``: the run's report as HTML and PDF (written once, logged)."""

    def body(settings: Settings) -> dict[str, str | None]:
        from archive import db
        from archive.checks.services import get_run
        from archive.evidence.errors import BadTarget
        from archive.evidence.reports import render_run

        if run_id is None:
            raise BadTarget(target="report")
        with db.write_session(settings) as s:
            rendered = render_run(settings, s, get_run(s, run_id))
        return {
            "run_id": run_id,
            "html": str(rendered.html),
            "pdf": str(rendered.pdf) if rendered.pdf else None,
            "pdf_sha256": rendered.pdf_sha256,
        }

    result = run(body, as_json)
    if as_json:
        print_json({"ok": True, **result})
    else:
        out.print(f"html {result['html']}", highlight=False)
        out.print(
            f"pdf  {result['pdf'] or '(no CJK TrueType font: set ARCHIVE_REPORT_FONT)'}", highlight=False
        )
        if result["pdf_sha256"]:
            out.print(f"pdf sha256 {result['pdf_sha256']}", highlight=False)


ACTIONS["premis"] = _document("premis")
ACTIONS["mets"] = _document("mets")
ACTIONS["renew"] = _renew
ACTIONS["report"] = _render_report


def evidence(
    target: Annotated[
        str,
        typer.Argument(
            help="ARCHIVE/CODE, or OUT.zip with --cycle, or a sub-action: premis, mets, report, renew"
        ),
    ],
    output: Annotated[str | None, typer.Argument(metavar="[OUT.zip]", help="The package to write.")] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="A 四性检测 run id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evidence for outside auditors (证据包): a BagIt bag they re-verify with standard tools."""
    from archive.evidence.errors import BadTarget

    if cycle is not None:
        if output is not None:
            raise fail(BadTarget(variant="cycle", target=target, out=output), as_json)
        _cycle_package(cycle, Path(target), as_json)
    elif target in ACTIONS:
        ACTIONS[target](output, as_json)
    elif "/" not in target:
        raise fail(BadTarget(target=target), as_json)
    elif output is None:
        raise fail(BadTarget(variant="out"), as_json)
    else:
        _record_package(target, Path(output), as_json)


def register(app: typer.Typer) -> None:
    app.command("evidence")(evidence)
