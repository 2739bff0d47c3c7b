"""``archive replicas sync|status`` (registered through the ``archive.commands`` entry point)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import JsonOpt, err, new_table, out, print_json, run

if TYPE_CHECKING:
    from archive.config import Settings

replicas_app = typer.Typer(no_args_is_help=True, help="Copies of the storage root elsewhere (异地/异质副本).")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@replicas_app.command("sync")
def replicas_sync(
    limit: Annotated[int | None, typer.Option(help="Copy at most this many versions per replica.")] = None,
    replica: Annotated[
        str | None, typer.Option("--replica", help="Only this replica (as written in ARCHIVE_REPLICAS).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drain the replication outbox now: copy every pending version whole to every replica and verify it
    there (the beat does this on its own every ARCHIVE_REPLICATION_INTERVAL s). Exit 1 if a version could
    not be copied, 3 if a replica could not be reached."""

    def body(settings: Settings) -> int:
        from archive.replicas.drain import sync
        from archive.replicas.errors import UnknownReplica
        from archive.replicas.target import targets

        only = None
        if replica is not None:
            configured = targets(settings)
            only = [t for t in configured if t.name == replica]
            if not only:
                raise UnknownReplica(replica, ", ".join(t.name for t in configured) or "none")
        results = sync(settings, only=only, limit=limit)
        if results is None:
            if as_json:
                print_json({"ok": True, "busy": True, "replicas": []})
            else:
                out.print("another drain of the replication outbox is running; nothing done")
            return 0
        failed = any(r.failures for r in results)
        down = any(r.unavailable for r in results)
        if as_json:
            print_json({"ok": not failed and not down, "replicas": [r.as_dict() for r in results]})
        else:
            for r in results:
                out.print(
                    f"{r.replica}: {r.versions} versions, {r.files} files, {_human(r.bytes)} "
                    f"copied and verified in {r.seconds:.1f} s",
                    highlight=False,
                )
                for f in r.failures:
                    err.print(f"  [red]{f['code']}[/] {f['object_id']} {f['version']}: {f['error']}")
                if r.unavailable:
                    err.print(f"  [red]unavailable[/] {r.unavailable}")
        return 3 if down else 1 if failed else 0

    code = run(body, as_json)
    if code:
        raise typer.Exit(code)


@replicas_app.command("status")
def replicas_status(as_json: JsonOpt = False) -> None:
    """Per replica: versions and bytes not copied yet, and the age of the oldest of them (the RPO now)."""

    def body(settings: Settings) -> None:
        from archive.replicas.report import status

        rows = status(settings)
        if as_json:
            print_json({"replicas": [r.as_dict() for r in rows]})
            return
        table = new_table(
            "replica", "kind", "versions behind", "bytes behind", "RPO now", "copied", "last copy"
        )
        for r in rows:
            table.add_row(
                r.replica,
                r.kind,
                str(r.versions_behind),
                _human(r.bytes_behind),
                f"{r.rpo_seconds:.0f} s",
                str(r.versions_copied),
                r.last_copied_at.isoformat(timespec="seconds") if r.last_copied_at else "",
            )
        out.print(table)

    run(body, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(replicas_app, name="replicas")
