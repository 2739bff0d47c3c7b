"""``archive backup db``, ``archive restore db``, ``archive drill`` and ``archive catalogue dump``
(registered through the ``archive.commands`` entry point; ``archive rebuild`` is in ``search/cli.py``, since
it rebuilds the public index too)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import JsonOpt, err, out, print_json, run

if TYPE_CHECKING:
    from archive.config import Settings

backup_app = typer.Typer(no_args_is_help=True, help="Backups of the catalogue database.")
restore_app = typer.Typer(no_args_is_help=True, help="Restore the catalogue database from a backup.")
catalogue_app = typer.Typer(no_args_is_help=True, help="The catalogue as a whole.")


@backup_app.command("db")
def backup_db_cmd(
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="The backup file to write")],
    as_json: JsonOpt = False,
) -> None:
    """A consistent copy of the catalogue while the node runs (SQLite online backup, or pg_dump)."""

    def body(settings: Settings) -> None:
        from archive.recovery.backup import backup_db

        result = backup_db(settings, out_file)
        if as_json:
            print_json(result)
        else:
            out.print(f"{result['kind']} catalogue backed up to {result['file']} ({result['bytes']} bytes)")

    run(body, as_json)


@restore_app.command("db")
def restore_db_cmd(
    in_file: Annotated[Path, typer.Argument(metavar="IN", help="A file written by 'archive backup db'")],
    as_json: JsonOpt = False,
) -> None:
    """Put a backup back as this home's catalogue; refuses a catalogue that is not empty."""

    def body(settings: Settings) -> None:
        from archive.recovery.backup import restore_db

        result = restore_db(settings, in_file)
        if as_json:
            print_json(result)
        else:
            out.print(f"{result['kind']} catalogue restored from {result['file']}")

    run(body, as_json, needs_home=False)


def drill_cmd(
    sample: Annotated[int, typer.Option("--sample", min=1, help="Records to restore from each copy")] = 20,
    seed: Annotated[int | None, typer.Option("--seed", help="Repeat an earlier drill's sample")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a random sample from every copy, verify it, rebuild its rows, compare; exit 1 on a mismatch."""

    def body(settings: Settings) -> None:
        from archive.recovery.drill import run_drill

        report = run_drill(settings, sample=sample, seed=seed)
        if as_json:
            print_json(report.as_dict())
        else:
            for source in report.sources:
                state = "ok" if not source["problems"] else f"{len(source['problems'])} problem(s)"
                out.print(
                    f"{source['source']}: {source['objects']} object(s) restored, {state}", highlight=False
                )
                for problem in source["problems"][:20]:
                    err.print(f"  {problem}", highlight=False)
            out.print(
                f"drill {report.run_id} (seed {report.seed}): report {report.report_file}", highlight=False
            )
        if not report.ok:
            raise typer.Exit(1)

    run(body, as_json)


@catalogue_app.command("dump")
def catalogue_dump(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the lines here (default stdout)")
    ] = None,
    digest: Annotated[bool, typer.Option("--digest", help="Print only the SHA-256 and line count")] = False,
) -> None:
    """The catalogue as sorted JSON lines (local columns left out): two identical catalogues, one output."""

    def body(settings: Settings) -> None:
        import sys

        from archive import db
        from archive.recovery.rows import dump_digest, iter_dump

        with db.read_session(settings) as s:
            if digest:
                value, lines = dump_digest(s)
                out.print(f"{value} {lines}", highlight=False)
                return
            handle = open(out_file, "w", encoding="utf-8") if out_file else sys.stdout  # noqa: SIM115
            try:
                for line in iter_dump(s):
                    handle.write(line + "\n")
            finally:
                if out_file:
                    handle.close()

    run(body)


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
    app.add_typer(restore_app, name="restore")
    app.add_typer(catalogue_app, name="catalogue")
    app.command("drill")(drill_cmd)
