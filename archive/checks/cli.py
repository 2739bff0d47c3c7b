"""``archive check``: 四性检测 (DA/T 70-2018) from the command line.

* ``archive check --cycle full|sample [--archive CODE] [--seed N] [--fraction F] [--json]`` — a preservation
  cycle (a sample draws at least 5 % of the records at random; ``--seed`` redraws the same sample); exit 0
  when every automatic item passes (warnings included), 1 when any fails.
* ``archive check --transfer ID [--json]`` — a transfer's receipt report; ``--run RUN_ID`` any run's.
  ``--csv FILE`` writes the report as CSV (every failure) beside either.
* ``archive check runs [--archive CODE] [--stage receipt|preservation] [--json]`` — the runs, newest first.
* ``archive check registry [--json]`` — every item: code, names, property, stages, automatic or manual.
* ``archive check rates [--archive CODE] [--json]`` — pass rates by month, stage and property.
* ``archive check record-manual CODE --archive CODE [--transfer ID] --result pass|fail [--note TEXT]`` —
  record a manual item (carrier appearance 4-2, optical disc 4-3) done by hand, as an event naming you.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archive.cli import JsonOpt, new_table, out, print_json, run

if TYPE_CHECKING:
    from archive.config import Settings

check_app = typer.Typer(
    help="四性检测 (DA/T 70-2018): receipt reports, preservation cycles, manual items.",
    invoke_without_command=True,
    no_args_is_help=False,
)

STATUS_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "manual": "cyan", "n/a": "dim"}


def _show(report: dict[str, Any]) -> None:
    table = new_table("item", "名称 / name", "property", "status", "checked", "failures")
    for item in report["items"]:
        style = STATUS_STYLE.get(item["status"], "")
        table.add_row(
            item["code"] + ("?" if item.get("uncertain") else ""),
            f"{item['name_zh']}\n{item['name_en']}",
            item["property"],
            f"[{style}]{item['status']}[/]",
            str(item.get("checked", "")),
            str(item.get("failure_count", len(item["failures"]))),
        )
    out.print(table)
    for item in report["items"]:
        for f in item["failures"]:
            where = " ".join(x for x in (f.get("record"), f.get("path")) if x)
            out.print(f"  {item['code']} {where}: {f['detail']}", highlight=False)
        if item.get("more_failures"):
            out.print(f"  {item['code']} … {item['more_failures']} more in {report.get('failures_file')}")
    out.print(
        f"run {report['run_id']} ({report['stage']}, {report.get('scope')}): {report['status']}"
        + (f", seed {report['seed']}" if report.get("seed") is not None else "")
        + f"; sha256 {report.get('report_sha256')}",
        highlight=False,
    )


@check_app.callback()
def check(
    ctx: typer.Context,
    cycle: Annotated[str | None, typer.Option(help="full | sample: a preservation cycle.")] = None,
    archive: Annotated[str | None, typer.Option(help="Only this archive's records.")] = None,
    seed: Annotated[int | None, typer.Option(help="A sample's seed (redraws the same sample).")] = None,
    fraction: Annotated[float | None, typer.Option(help="A sample's share (≥ 0.05).")] = None,
    transfer: Annotated[str | None, typer.Option(help="Show this transfer's receipt report.")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Show this run's report.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the report as CSV here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a preservation cycle, or show a transfer's or a run's report."""
    if ctx.invoked_subcommand is not None:
        return

    def body(settings: Settings) -> int:
        from archive import db
        from archive.checks import services
        from archive.checks.errors import BadCheckOption, BadCycle, NothingToCheck
        from archive.checks.run import run_cycle

        if cycle is not None:
            if cycle not in ("full", "sample"):
                raise BadCycle(cycle=cycle)
            if fraction is not None and not 0.05 <= fraction <= 1:
                raise BadCheckOption(variant="fraction", value=fraction)
            report = run_cycle(settings, cycle, archive=archive, seed=seed, fraction=fraction)
            rid = report.run_id
        elif transfer is not None:
            with db.read_session(settings) as s:
                rid = services.receipt_run(s, transfer).id
        elif run_id is not None:
            rid = run_id
        else:
            raise NothingToCheck()
        with db.read_session(settings) as s:
            row = services.get_run(s, rid)
            shown = services.load_report(row)
            if csv_path is not None:
                csv_path.write_text(services.report_csv(row), encoding="utf-8-sig")
        if as_json:
            print_json(shown)
        else:
            _show(shown)
        return 1 if shown["status"] == "fail" else 0

    code = run(body, as_json)
    raise typer.Exit(code)


@check_app.command("runs")
def runs(
    archive: Annotated[str | None, typer.Option(help="Only this archive.")] = None,
    stage: Annotated[str | None, typer.Option(help="receipt | preservation")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The check runs, newest first."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.checks import services

        with db.read_session(settings) as s:
            rows = services.list_runs(s, archive=archive, stage=stage, limit=limit)
        if as_json:
            print_json(rows)
            return
        table = new_table("run", "stage", "scope", "archive", "transfer", "status", "failed items", "created")
        for r in rows:
            style = STATUS_STYLE.get(r["status"], "")
            table.add_row(
                r["run_id"],
                r["stage"],
                r["scope"],
                r["archive"] or "",
                r["transfer"] or "",
                f"[{style}]{r['status']}[/]",
                ", ".join(r["failed_items"]),
                r["created"][:19],
            )
        out.print(table)

    run(body, as_json)


@check_app.command("registry")
def registry_cmd(as_json: JsonOpt = False) -> None:
    """Every 四性检测 item this node knows (a ? marks an item number not confirmed against DA/T 70)."""

    def body(settings: Settings) -> None:
        from archive.checks.registry import registry

        items = [c.as_dict() for c in registry().values()]
        if as_json:
            print_json(items)
            return
        table = new_table("item", "名称 / name", "property", "stages", "mode")
        for c in items:
            table.add_row(
                str(c["code"]) + ("?" if c["uncertain"] else ""),
                f"{c['name_zh']}\n{c['name_en']}",
                str(c["property"]),
                ", ".join(c["stages"]),  # type: ignore[arg-type]
                str(c["mode"]),
            )
        out.print(table)

    run(body, as_json, needs_home=False)


@check_app.command("rates")
def rates(
    archive: Annotated[str | None, typer.Option(help="Only this archive.")] = None,
    period: Annotated[str, typer.Option(help="month | day")] = "month",
    as_json: JsonOpt = False,
) -> None:
    """Pass rates of the automatic items by period, stage and property."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.checks import services

        with db.read_session(settings) as s:
            rows = services.pass_rates(s, archive, period=period)
        if as_json:
            print_json(rows)
            return
        table = new_table("archive", "period", "stage", "property", "passed", "failed", "pass rate")
        for r in rows:
            table.add_row(
                r["archive"] or "(node)",
                r["period"],
                r["stage"],
                r["property"],
                str(r["passed"]),
                str(r["failed"]),
                f"{r['pass_rate']:.1%}" if r["pass_rate"] is not None else "",
            )
        out.print(table)

    run(body, as_json)


@check_app.command("record-manual")
def record_manual(
    code: Annotated[str, typer.Argument(help="The manual item, e.g. 4-2 (carrier appearance).")],
    archive: Annotated[str, typer.Option(help="The archive the inspection was for.")],
    result: Annotated[str, typer.Option(help="pass | fail")],
    transfer: Annotated[str | None, typer.Option(help="The transfer the carrier came with.")] = None,
    note: Annotated[str | None, typer.Option(help="What was seen.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the result of a manual item done by hand; the event names you."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.checks import services
        from archive.checks.errors import BadCheckOption
        from archive.cli import operator

        if result not in ("pass", "fail"):
            raise BadCheckOption(variant="result", value=result)
        with db.write_session(settings) as s:
            row = services.record_manual(
                s,
                code=code,
                archive=archive,
                status=result,
                agent=operator(),
                transfer=transfer,
                note=note,
            )
            shown = {
                "code": row.code,
                "archive": archive,
                "transfer": transfer,
                "status": row.status,
                "agent": row.agent,
            }
        if as_json:
            print_json({"ok": True, **shown})
        else:
            out.print(f"recorded {code} {result} for {transfer or archive} by {shown['agent']}")

    run(body, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(check_app, name="check")
