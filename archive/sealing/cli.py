"""``archive verify``, ``archive seals sync|status`` and ``archive events anchor`` (registered through the
``archive.commands`` entry point)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import JsonOpt, err, events_app, out, print_json, run

if TYPE_CHECKING:
    from archive.config import Settings

seals_app = typer.Typer(
    no_args_is_help=True, help="Signatures and RFC 3161 timestamps of stored versions (签名与时间戳)."
)


def verify(ref: Annotated[str, typer.Argument(help="ARCHIVE/CODE")], as_json: JsonOpt = False) -> None:
    """Check every version of a record: fixity, inventory signature, timestamp token; exit 1 naming each failure."""

    def body(settings: Settings) -> None:
        from archive.sealing.verify import verify_record

        report = verify_record(settings, ref)
        if as_json:
            print_json(report)
        else:
            for v in report["versions"]:
                stamp = v.get("timestamp") or "no token"
                key = v.get("key_id") or "unsigned"
                out.print(
                    f"{v['version']}: {v['files']} file(s), {v.get('algorithm', '-')} {key}, {stamp}",
                    highlight=False,
                )
            for p in report["warnings"]:
                out.print(f"[yellow]{p['code']}[/] {p['message_zh']} / {p['message_en']}", highlight=False)
            for p in report["failures"]:
                err.print(f"[bold red]{p['code']}[/] {p['message_zh']} / {p['message_en']}", highlight=False)
            if report["ok"]:
                out.print(f"{ref}: all {len(report['versions'])} version(s) verified", highlight=False)
        if not report["ok"]:
            raise typer.Exit(1)

    run(body, as_json)


@seals_app.command("sync")
def seals_sync(
    backfill: Annotated[
        bool, typer.Option("--backfill", help="First seal every stored version that has no seal yet")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Drain the timestamp outbox now: record signature events, fetch missing tokens, anchor the event chain.
    Exit 3 if the TSA could not be reached (what was done stays done)."""

    def body(settings: Settings) -> None:
        from archive.sealing.service import sync_all

        report = sync_all(settings, backfill_versions=backfill)
        if as_json:
            print_json(report)
        else:
            if backfill:
                out.print(f"sealed {report['backfilled']} version(s) that had no seal", highlight=False)
            out.print(
                f"signatures recorded {report['signatures_recorded']}, timestamped {report['timestamped']}, "
                f"anchors timestamped {report['anchors_timestamped']}, still waiting {report['waiting']}",
                highlight=False,
            )
            if report["error"]:
                e = report["error"]
                err.print(f"[bold red]{e['code']}[/] {e['message_zh']} / {e['message_en']}", highlight=False)
        if report["error"]:
            raise typer.Exit(3)

    run(body, as_json)


@seals_app.command("status")
def seals_status(as_json: JsonOpt = False) -> None:
    """The gap: versions without a timestamp token and the age of the oldest (exit 0 either way)."""

    def body(settings: Settings) -> None:
        from archive.sealing.outbox import status

        report = status(settings)
        if as_json:
            print_json(report)
            return
        out.print(
            f"TSA {report['tsa_url'] or '(none: ARCHIVE_TSA_URL unset)'}\n"
            f"versions without a token: {report['versions_without_token']}"
            + (
                f", oldest since {report['oldest_without_token']} ({report['oldest_age_seconds']} s)"
                if report["oldest_without_token"]
                else ""
            )
            + (f"\nlast error: {report['last_error']}" if report["last_error"] else ""),
            highlight=False,
        )

    run(body, as_json)


def events_anchor(as_json: JsonOpt = False) -> None:
    """Sign the event chain's head now and store the anchor in the storage root."""

    def body(settings: Settings) -> None:
        from archive.sealing.anchors import anchor_chain

        path = anchor_chain(settings)
        if as_json:
            print_json({"anchor": path.name if path else None})
        else:
            out.print(
                f"anchor {path}" if path else "the event log is empty: nothing to anchor", highlight=False
            )

    run(body, as_json)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.add_typer(seals_app, name="seals")
    events_app.command("anchor")(events_anchor)
