"""``archive validate``, ``archive ingest`` and ``archive demo`` (registered through the entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archive.cli import JsonOpt, err, out, print_json, run
from archive.config import Settings

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ingest.pipeline import IngestResult
    from ingest.problems import Problem

# The pipeline's modules (Siegfried, pikepdf, …) are imported inside the commands, so that every other
# `archive` command starts quickly.


class RichReporter:
    """Progress bar for a terminal: files, bytes, rate and ETA of the stage in hand."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def stage(self, name: str, total_files: int = 0, total_bytes: int = 0) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(name, total=total_bytes or None, files=0, total_files=total_files)

    def advance(self, files: int, nbytes: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=nbytes, files=files)


def _progress() -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description:>8}"),
        BarColumn(),
        TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err.real,
        transient=True,
    )


def _print_problems(problems: list[Problem], shown: int, file: Path | None) -> None:
    """Problems, bounded: the first ``shown`` of each code, then how many more (and where they all are)."""
    from ingest.problems import summarise

    _print_summary(summarise(problems, shown, file))


def _print_problem(p: dict[str, Any]) -> None:
    colour = "red" if p["severity"] == "error" else "yellow"
    where = f" {p['path']}" if p.get("path") else ""
    dat = f" [dim](DA/T 70 {p['dat_70_2018']})[/]" if p.get("dat_70_2018") else ""
    out.print(
        f"[{colour}]{p['severity']:>7} {p['code']}[/]{where}{dat}\n          {p['message_zh']}\n"
        f"          {p['message_en']}",
        highlight=False,
    )


def _print_summary(summary: dict[str, Any]) -> None:
    """An ingest's problems as its record keeps them: the first of each code, then how many more."""
    for p in [*summary["errors"], *summary["warnings"]]:
        _print_problem(p)
    for more in summary["more"]:
        out.print(f"    … {more['message_zh']}\n      {more['message_en']}", highlight=False)


def validate(
    path: Annotated[Path, typer.Argument(help="Bag directory, .zip, .tar or .tar.gz")],
    as_json: JsonOpt = False,
    problems_file: Annotated[
        Path | None,
        typer.Option(
            "--problems-file",
            help="Write every problem here (JSON lines); the report lists the first "
            "ARCHIVE_PROBLEMS_SHOWN of each code and counts the rest",
        ),
    ] = None,
) -> None:
    """Check a bag without storing anything: exit 0 valid, 1 invalid (problems listed: the first
    ARCHIVE_PROBLEMS_SHOWN of each code, with how many more; every one with --problems-file)."""

    def body(settings: Settings) -> None:
        from ingest.validate import validate_transfer

        interactive = not as_json and err.is_terminal
        if interactive:
            with _progress() as progress:
                report = validate_transfer(path, settings, RichReporter(progress))
        else:
            report = validate_transfer(path, settings)
        from ingest.problems import write_problem_file

        written = write_problem_file(problems_file, report.problems) if problems_file else None
        if as_json:
            print_json(report.as_dict(settings.problems_shown, written))
        else:
            _print_problems(report.problems, settings.problems_shown, written)
            state = "[green]valid[/]" if report.valid else "[bold red]invalid[/]"
            out.print(
                f"{path}: {state} — {report.file_count} files, {report.byte_count} bytes, "
                f"{len(report.problems)} problem(s)",
                highlight=False,
            )
        raise typer.Exit(0 if report.valid else 1)

    run(body, as_json, needs_home=False)


def ingest_cmd(
    path: Annotated[Path, typer.Argument(help="Bag directory, .zip, .tar or .tar.gz")],
    archive: Annotated[str, typer.Option("--archive", "-a", help="Code of the holding archive")],
    as_json: JsonOpt = False,
) -> None:
    """Store a transfer: exit 0 stored, 1 rejected (with every problem), 2 usage error."""

    def body(settings: Settings) -> IngestResult:
        from ingest.pipeline import ingest

        if not as_json and err.is_terminal:
            with _progress() as progress:
                return ingest(path, archive, settings, RichReporter(progress))
        return ingest(path, archive, settings)

    result = run(body, as_json)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_summary(result.problem_summary())
        if result.stored:
            out.print(
                f"[green]stored[/] transfer {result.transfer_id}: {len(result.records)} record(s), "
                f"{result.files} file(s), {result.bytes} bytes in {result.seconds:.1f} s",
                highlight=False,
            )
        else:
            out.print(
                f"[bold red]rejected[/] transfer {result.transfer_id}: nothing was stored "
                f"(see 'archive transfers')",
                highlight=False,
            )
    raise typer.Exit(0 if result.stored else 1)


def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Where to write the sample bags (and node homes)")
    ] = None,
    region: Annotated[
        bool,
        typer.Option("--region", help="Three federated nodes on 127.0.0.1, each its own home and portal"),
    ] = False,
    base_port: Annotated[int, typer.Option(help="--region: first of three consecutive ports")] = 8101,
    detach: Annotated[bool, typer.Option(help="--region: leave the portals running and return")] = False,
) -> None:
    """Build a small region (广东省 → 广州市 → 天河区), generate sample bags and ingest them; with --region,
    as three federated nodes with their own portals."""
    if region:
        from ingest.demo_region import run_region_demo

        run(
            lambda settings: run_region_demo(workdir or Path("archive-region"), base_port, detach, out.real),
            needs_home=False,
        )
        return
    from ingest.demo import run_demo

    run(lambda settings: run_demo(settings, workdir, out.real), needs_home=False)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("ingest")(ingest_cmd)
    app.command("demo")(demo)
