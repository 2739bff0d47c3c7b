"""``archive reindex`` and ``archive harvest add|list|run`` (registered through the ``archive.commands`` entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import JsonOpt, new_table, out, print_json, run

if TYPE_CHECKING:
    from archive.config import Settings


def reindex_cmd(as_json: JsonOpt = False) -> None:
    """Rebuild the public search index from the catalogue with no downtime (open records only)."""

    def body(settings: Settings) -> None:
        from search import get_backend
        from search.reindex import reindex

        report = reindex(settings, get_backend(settings))
        if as_json:
            print_json(report.as_dict())
        else:
            out.print(
                f"reindexed {report.indexed} open record(s) into {report.target} ({report.backend}) "
                f"in {report.seconds:.1f} s",
                highlight=False,
            )

    run(body, as_json)


def rebuild_cmd(
    from_storage: Annotated[
        bool, typer.Option("--from-storage", help="Rebuild from the OCFL storage root alone (required)")
    ] = False,
    into: Annotated[Path | None, typer.Option("--into", help="The new, empty home to write")] = None,
    storage: Annotated[
        Path | None,
        typer.Option("--storage", help="The OCFL root or a file-system replica (default: this home's root)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the catalogue and the public search index from the storage root alone, into a new home."""

    def body(settings: Settings) -> None:
        from archive.recovery.errors import RecoveryUsage
        from archive.recovery.rebuild import rebuild_catalogue, settings_for_new_home
        from search import get_backend
        from search.reindex import reindex

        if not from_storage or into is None:
            raise RecoveryUsage(variant="rebuild")
        target = settings_for_new_home(settings, into, storage)
        report = rebuild_catalogue(target)
        report.indexed = reindex(target, get_backend(target)).indexed
        if as_json:
            print_json(report.as_dict())
            return
        out.print(
            f"rebuilt {report.rows.get('records', 0)} record(s), {report.rows.get('files', 0)} file(s), "
            f"{report.rows.get('events', 0)} event(s) from {report.source} into {report.home} "
            f"in {report.seconds:.1f} s; {report.indexed} open record(s) indexed",
            highlight=False,
        )
        out.print(
            f"use it with ARCHIVE_HOME={report.home} ARCHIVE_STORAGE_ROOT={report.source}", highlight=False
        )

    run(body, as_json, needs_home=False)


harvest_app = typer.Typer(help="The harvested regional catalogue: peers' open records over OAI-PMH.")


@harvest_app.command("add")
def harvest_add(
    url: Annotated[str, typer.Argument(help="The peer node's URL (or its /oai endpoint)")],
    set_spec: Annotated[str | None, typer.Option("--set", help="Harvest only this OAI set")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a peer to harvest (nothing is fetched until 'archive harvest run')."""

    def body(settings: Settings) -> None:
        from search.harvest import add_source

        source = add_source(settings, url, set_spec)
        if as_json:
            print_json(source)
        else:
            out.print(f"added {source['url']} ({source['oai_url']})", highlight=False)

    run(body, as_json)


@harvest_app.command("list")
def harvest_list(as_json: JsonOpt = False) -> None:
    """The harvest sources, their record counts and last harvests."""

    def body(settings: Settings) -> None:
        from search.harvest import list_sources

        sources = list_sources(settings)
        if as_json:
            print_json(sources)
            return
        table = new_table("url", "set", "records", "last success", "status", "error")
        for x in sources:
            table.add_row(
                x["url"],
                x["set"] or "",
                str(x["records"]),
                x["last_success_at"] or "",
                x["last_status"] or "",
                x["last_error"] or "",
            )
        out.print(table)

    run(body, as_json)


@harvest_app.command("run")
def harvest_run(
    full: Annotated[
        bool, typer.Option("--full", help="Everything, not only changes since the last run")
    ] = False,
    url: Annotated[str | None, typer.Option(help="Only this source")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Harvest every source (incrementally by datestamp unless --full). Exit 1 if any source failed."""

    def body(settings: Settings) -> None:
        from search.harvest import run as harvest

        reports = [r.as_dict() for r in harvest(settings, full=full, url=url)]
        if as_json:
            print_json(reports)
        else:
            for r in reports:
                out.print(
                    f"{r['url']}: {r['status']}, {r['harvested']} harvested, {r['removed']} removed, "
                    f"{r['records']} held, {r['seconds']} s" + (f" — {r['error']}" if r["error"] else ""),
                    highlight=False,
                )
        # "busy": another run of that source holds its lock and does the work; not a failure.
        if any(r["status"] not in ("ok", "busy") for r in reports):
            raise typer.Exit(1)

    run(body, as_json)


def register(app: typer.Typer) -> None:
    app.command("reindex")(reindex_cmd)
    app.command("rebuild")(rebuild_cmd)
    app.add_typer(harvest_app, name="harvest")
