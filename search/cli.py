"""``archive reindex`` (registered through the ``archive.commands`` entry point)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from archive.cli import JsonOpt, out, print_json, run

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


def register(app: typer.Typer) -> None:
    app.command("reindex")(reindex_cmd)
