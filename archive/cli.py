"""The ``archive`` command line.

Exit codes: 0 ok, 1 rejected input (or nothing found), 2 usage error, 3 the node cannot do it now (a service
down, the disk full, a tool missing; see :mod:`archive.errors`). Every :class:`~archive.errors.ArchiveError`
becomes one coded line on stderr, ``CODE 中文 / English`` (with ``--json`` an ``{"ok": false, "error": …}``
object on stdout), here and nowhere else; no expected failure prints a traceback. Packages standing on ``archive`` add their own commands through the
``archive.commands`` entry-point group (see pyproject.toml), so this module imports none of them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from archive.errors import ArchiveError, BadArgument, DiskFull, is_disk_full

if TYPE_CHECKING:
    import datetime as dt

    from rich.console import Console
    from rich.table import Table

    from archive.config import Settings

# The catalogue's modules (SQLAlchemy) are imported inside the commands that use them, so commands that do
# not touch the catalogue (`archive validate`, `--help`) start quickly.

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="数字档案馆长期保存系统 / Digital archives repository"
)
archives_app = typer.Typer(no_args_is_help=True, help="Holding archives (档案馆).")
records_app = typer.Typer(no_args_is_help=True, help="Records held (档案).")
events_app = typer.Typer(no_args_is_help=True, help="The PREMIS event log.")
config_app = typer.Typer(no_args_is_help=True, help="The node's settings (ARCHIVE_* variables).")
# `archive health portal` / `archive health worker` are added by access_portal and preservation.
health_app = typer.Typer(
    no_args_is_help=True, help="Health checks for container orchestrators: exit 0 healthy, 1 not."
)
app.add_typer(archives_app, name="archives")
app.add_typer(records_app, name="records")
app.add_typer(events_app, name="events")
app.add_typer(config_app, name="config")
app.add_typer(health_app, name="health")
users_app = typer.Typer(no_args_is_help=True, help="Staff accounts and their roles (用户).")
tokens_app = typer.Typer(
    no_args_is_help=True, help="API tokens for the staff API (shown once, stored hashed)."
)
access_app = typer.Typer(no_args_is_help=True, help="Access decisions by staff (开放审核).")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(access_app, name="access")


class LazyConsole:
    """A rich ``Console`` made on first use: rich costs ~0.1 s of start-up that ``--json`` runs never need."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def new_table(*headers: str) -> Table:
    """A rich table with these column headers (rich imported on first use)."""
    from rich.table import Table

    return Table(*headers)


out = LazyConsole()
err = LazyConsole(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
T = TypeVar("T")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(exc: ArchiveError, as_json: bool = False) -> typer.Exit:
    if as_json:
        print_json({"ok": False, "error": exc.as_dict()})
    else:
        from rich.markup import escape

        err.print(f"[bold red]{exc.code}[/] {escape(exc.zh)} / {escape(exc.en)}", highlight=False)
    return typer.Exit(exc.exit_code)


def run(action: Callable[[Settings], T], as_json: bool = False, *, needs_home: bool = True) -> T:
    """Run a command body with the settings, turning typed errors into their exit codes."""
    try:
        from archive.config import get_settings  # pydantic: ~0.3 s, loaded once a command runs

        try:
            settings = get_settings()
        except ValueError as exc:  # pydantic's ValidationError / SettingsError: a bad ARCHIVE_* variable
            raise BadArgument(variant="config", error=exc) from None
        if needs_home:
            from archive.home import open_home

            for rolled in open_home(settings):
                err.print(
                    f"[yellow]recovered[/] interrupted transfer {rolled.transfer_id}: "
                    f"removed {len(rolled.objects)} uncommitted object(s)"
                )
        return action(settings)
    except ArchiveError as exc:
        raise fail(exc, as_json) from None
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        # the writes that fill a disk are translated where they happen; this catches any other one
        raise fail(DiskFull(path=exc.filename or "", reason=exc), as_json) from None


@app.command()
def init() -> None:
    """Create ARCHIVE_HOME (the catalogue database and the OCFL storage root) or upgrade its schema.

    Safe at every start (the compose file's init service runs it): exits 0 when everything is current."""

    def body(settings: Settings) -> None:
        from archive.home import init_home

        before, after = init_home(settings)
        if before == after:
            schema = f"schema {after}, already current"
        else:
            schema = f"schema {before or 'none'} → {after}"
        out.print(
            f"initialised [bold]{settings.home_dir}[/] (catalogue {settings.db_url.split('@')[-1]}, "
            f"{schema}; storage {settings.ocfl_root})",
            highlight=False,
        )

    run(body, needs_home=False)


@config_app.command("check")
def config_check(as_json: JsonOpt = False) -> None:
    """Check the settings as the services will read them (secrets shown as ***); exit 2 if refused.

    The compose file's `preflight` service runs this before any server gets a password, so a placeholder
    secret (change-me) stops the stack with ARC010 instead of initialising a database with it."""

    def body(settings: Settings) -> None:
        shown = settings.redacted()
        if as_json:
            print_json({"ok": True, "settings": shown})
            return
        for name, value in shown.items():
            text = ",".join(map(str, value)) if isinstance(value, list) else "" if value is None else value
            out.print(f"{name}={text}", highlight=False)
        out.print(f"settings ok ({settings.env})", highlight=False)

    run(body, as_json, needs_home=False)


@archives_app.command("add")
def archives_add(
    code: str,
    name: Annotated[str, typer.Option(help="Name, e.g. 广州市档案馆")],
    level: Annotated[str, typer.Option(help="province | city | county")],
    name_en: Annotated[str | None, typer.Option(help="English name")] = None,
    parent: Annotated[str | None, typer.Option(help="Code of the parent archive")] = None,
) -> None:
    """Register a holding archive."""

    def body(settings: Settings) -> None:
        from archive import db, services

        with db.write_session(settings) as s:
            a = services.add_archive(s, code, name_zh=name, name_en=name_en, level=level, parent=parent)
            out.print(f"registered {a.code} {a.name_zh} ({a.level})", highlight=False)

    run(body)


@archives_app.command("list")
def archives_list(as_json: JsonOpt = False) -> None:
    """List the holding archives on this node, as a tree."""

    def body(settings: Settings) -> None:
        from archive import db, services

        with db.read_session(settings) as s:
            rows = services.list_archives(s)
        if as_json:
            print_json(rows)
            return
        table = new_table("code", "name", "level", "records")
        for r in rows:
            table.add_row("  " * r["depth"] + r["code"], r["name_zh"], r["level"], str(r["records"]))
        out.print(table)

    run(body, as_json)


@records_app.command("list")
def records_list(
    archive: Annotated[str | None, typer.Option(help="Only this archive's records")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List records held."""

    def body(settings: Settings) -> None:
        from archive import db, services

        with db.read_session(settings) as s:
            rows = [services.record_summary(r) for r in services.list_records(s, archive, limit)]
        if as_json:
            print_json(rows)
            return
        table = new_table("archive", "档号", "题名", "日期", "access", "files")
        for r in rows:
            table.add_row(
                r["archive"],
                r["archival_code"],
                r["title"],
                r["date"] or "",
                r["access_status"],
                str(r["files"]),
            )
        out.print(table)

    run(body, as_json)


@records_app.command("show")
def records_show(ref: Annotated[str, typer.Argument(help="ARCHIVE/CODE")], as_json: JsonOpt = False) -> None:
    """Show one record: metadata, access decision, files and digests."""

    def body(settings: Settings) -> None:
        from archive import db, services

        archive, code = services.split_record_ref(ref)
        with db.read_session(settings) as s:
            detail = services.record_detail(services.get_record(s, archive, code))
        if as_json:
            print_json(detail)
            return
        files = detail.pop("file_list")
        for key, value in detail.items():
            if value not in (None, ""):
                out.print(f"[bold]{key:>18}[/] {value}", highlight=False)
        table = new_table("path", "size", "format", "PUID", "sha256", "role")
        for f in files:
            table.add_row(
                f["path"], str(f["size"]), f["format"] or "", f["puid"] or "", f["sha256"], f["role"]
            )
        out.print(table)

    run(body, as_json)


@records_app.command("access")
def records_access(
    ref: Annotated[str, typer.Argument(help="ARCHIVE/CODE")],
    requested: Annotated[str, typer.Argument(help="open, restricted (close again / withdraw) or auto")],
    note: Annotated[str | None, typer.Option(help="Why, for the event log")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a record's access request and status (an event; the public index and OAI-PMH follow)."""

    def body(settings: Settings) -> None:
        import datetime as dt

        from archive import db, services
        from archive.access import REQUESTS
        from archive.errors import BadArgument

        if requested not in REQUESTS:
            raise BadArgument(variant="access_request", known=", ".join(REQUESTS), requested=requested)
        archive, code = services.split_record_ref(ref)
        with db.write_session(settings) as s:
            record = services.get_record(s, archive, code)
            changed = services.set_access(
                s,
                record,
                requested,
                today=dt.date.today(),
                open_after_years=settings.open_after_years,
                note=note,
            )
            result = {"record": ref, "access_status": record.access_status, "changed": changed}
        if as_json:
            print_json(result)
        else:
            out.print(
                f"{ref}: {result['access_status']}" + ("" if changed else " (unchanged)"), highlight=False
            )

    run(body, as_json)


@app.command("transfers")
def transfers(
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List transfers: what was stored, what was rejected, and why."""

    def body(settings: Settings) -> None:
        from archive import db, services

        with db.read_session(settings) as s:
            rows = [services.transfer_summary(t) for t in services.list_transfers(s, limit)]
        if as_json:
            print_json(rows)
            return
        table = new_table("transfer", "archive", "bag", "status", "records", "files", "problems")
        for r in rows:
            errors = {p["code"] for p in r["problems"]}
            total = sum(n for code, n in r["problem_counts"].items() if code in errors)
            problems = f"{total}: {', '.join(sorted(errors))}" if errors else ""
            table.add_row(
                r["id"],
                r["archive"] or "",
                r["bag"],
                r["status"],
                str(r["records"]),
                str(r["files"]),
                problems,
            )
        out.print(table)
        for r in rows:
            for more in r["more_problems"]:
                out.print(f"{r['id']}: {more['message_zh']} / {more['message_en']}", highlight=False)
        if any(r["problems"] for r in rows):
            out.print("every problem with its message: archive transfers --json", highlight=False)

    run(body, as_json)


@events_app.command("verify")
def events_verify(as_json: JsonOpt = False) -> None:
    """Recompute the event log's hash chain; exit 1 if any link is broken."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.events import verify_chain

        with db.read_session(settings) as s:
            report = verify_chain(s)
        if as_json:
            print_json(report.as_dict())
        elif report.ok:
            out.print(
                f"event chain intact: {report.checked} events, head {report.head_hash}", highlight=False
            )
        else:
            err.print(
                f"[bold red]event chain broken[/] at event {report.broken_at}: {report.reason} "
                f"({report.checked} events verified before it)",
                highlight=False,
            )
        if not report.ok:
            raise typer.Exit(1)

    run(body, as_json)


def operator() -> str:
    """The person running a staff command, the agent of its PREMIS event: the operating-system login
    (the shell is the admin's own; the web and API record the signed-in person instead)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "unknown-operator"


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password / 密码", hide_input=True, confirmation_prompt=True)
    else:
        raise BadArgument(variant="no_terminal")
    if len(password) < 8:
        raise BadArgument(variant="password_short")
    return password


@users_app.command("add")
def users_add(
    login: str,
    role: Annotated[list[str], typer.Option("--role", help="admin | archivist | auditor (repeatable)")],
    archive: Annotated[
        list[str] | None, typer.Option("--archive", help="An archive the archivist role covers (repeatable)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name, e.g. 陈档案")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin")
    ] = False,
) -> None:
    """Add a staff account with its roles; asks for the password twice (or reads it with --password-stdin)."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.accounts import add_user
        from archive.accounts.users import check_grants

        check_grants(role, archive or [])
        password = _read_password(password_stdin)
        with db.write_session(settings) as s:
            user = add_user(
                s,
                login,
                roles=role,
                archives=archive or [],
                password=password,
                display_name=name,
                actor=operator(),
            )
            from archive.accounts.users import grant_names

            out.print(f"added {user.login} ({', '.join(grant_names(user))})", highlight=False)

    run(body)


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List staff accounts and their roles."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.accounts import list_users

        with db.read_session(settings) as s:
            rows = list_users(s)
        if as_json:
            print_json(rows)
            return
        table = new_table("login", "name", "roles", "archives", "disabled")
        for r in rows:
            table.add_row(
                r["login"],
                r["display_name"] or "",
                ",".join(r["roles"]),
                ",".join(r["archives"]),
                "yes" if r["disabled"] else "",
            )
        out.print(table)

    run(body, as_json)


@users_app.command("disable")
def users_disable(login: str) -> None:
    """Disable an account: its tokens stop working at once (the account and its history stay)."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.accounts import disable_user

        with db.write_session(settings) as s:
            changed = disable_user(s, login, actor=operator())
        out.print(f"{login}: disabled" + ("" if changed else " (already)"), highlight=False)

    run(body)


@tokens_app.command("create")
def tokens_create(
    login: str,
    expires: Annotated[int | None, typer.Option(help="Days until the token expires (default: never)")] = None,
) -> None:
    """Create an API token for LOGIN and print it alone on one line: it is shown this once only."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.accounts import create_token

        with db.write_session(settings) as s:
            row, text = create_token(s, login, expires_days=expires, actor=operator())
            expires_at = row.expires_at
        sys.stdout.write(text + "\n")
        err.print(
            "store it now; it cannot be shown again"
            + (f" (expires {expires_at:%Y-%m-%d %H:%M} UTC)" if expires_at else ""),
            highlight=False,
        )

    run(body)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="The token's id (arc_<id>…), a prefix, or the token")],
) -> None:
    """Revoke an API token."""

    def body(settings: Settings) -> None:
        from archive import db
        from archive.accounts import revoke_token

        with db.write_session(settings) as s:
            row = revoke_token(s, token, actor=operator())
            out.print(f"revoked token {row.id}", highlight=False)

    run(body)


@access_app.command("set")
def access_set(
    ref: Annotated[str, typer.Argument(help="ARCHIVE/CODE")],
    status: Annotated[str, typer.Argument(help="open | restricted")],
    reason: Annotated[str, typer.Option(help="Why (kept on the record and its event)")],
    review_on: Annotated[
        str | None, typer.Option("--review-on", help="Date of the next review, YYYY-MM-DD")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide a record's access as staff (an event whose agent is you; the public index follows).

    It decides the record's open review too, if it has one; --review-on keeps a restricted record's next
    review: it re-enters the review queue on that day."""

    def body(settings: Settings) -> None:
        from archive import db, review, services

        archive_code, code = services.split_record_ref(ref)
        with db.write_session(settings) as s:
            result = review.decide_record(
                s,
                archive_code,
                code,
                status,
                reason=reason,
                review_on=parse_date(review_on),
                actor=operator(),
                open_after_years=settings.open_after_years,
            )
        if as_json:
            print_json(result)
        else:
            out.print(
                f"{ref}: {result['access_status']}" + ("" if result["changed"] else " (unchanged)"),
                highlight=False,
            )

    run(body, as_json)


def parse_date(text: str | None) -> dt.date | None:
    import datetime as dt

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadArgument(variant="date", value=text) from None


def _load_plugins() -> None:
    for ep in entry_points(group="archive.commands"):
        ep.load()(app)


def main() -> None:
    try:
        _load_plugins()
        app()
    except ArchiveError as exc:  # raised outside run(): a plugin's import, a command without run()
        sys.exit(fail(exc).exit_code)
