"""``archive worker``, ``archive beat``, ``archive migrate``, ``archive jobs`` and ``archive audit``.

Registered through the ``archive.commands`` entry point. Celery, the policy and the audit are imported
inside the commands, so that other ``archive`` commands start quickly.

* ``archive worker [--beat] [--concurrency N] [--queues Q] [--pool prefork|solo|threads]`` — a Celery
  worker (prefork, one process per core by default) on the configured broker; ``--beat`` embeds the
  schedule (one such worker per node).
* ``archive beat`` — the schedule alone: drain the migrate outbox every ``ARCHIVE_DISPATCH_INTERVAL`` s,
  a nightly incremental fixity audit.
* ``archive migrate --pending`` queues what ingest left in the outbox (and jobs whose lease ran out);
  ``--record ARCHIVE/CODE`` queues every action for that record's originals again (failed ones start over);
  ``--record ARCHIVE/CODE --now`` runs them in this process instead, without a worker or broker, and stops
  at the first failure with its coded message (the job is left failed with its reason, as a worker would).
* ``archive jobs [--state failed] [--record ARCHIVE/CODE] [--json]`` — queued, running, retrying, failed
  (with the reason) and done jobs.
* ``archive audit [--archive CODE] [--since DATE] [--deep] [--json]`` — fixity audit with a progress bar on
  a terminal; exit 1 when anything failed (even if it was repaired from the replica).
* ``archive health worker [--timeout S] [--any-host]`` — a Celery ping over the broker: exit 0 when a worker
  on this host (the container's hostname is in every node name, ``preservation.<pid>@<host>``) answers.
  Needs a broker that broadcasts (Redis); the server-less SQLite broker cannot, and the check says so.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import JsonOpt, err, new_table, out, print_json, run
from archive.errors import BadArgument

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from archive.config import Settings
    from preservation.audit import AuditProgress


def _celery_argv(settings: Settings) -> list[str]:
    """Options the server-less SQLite broker needs: it has no fanout, so no mingle, gossip or heartbeat."""
    if settings.celery_broker.startswith(("sqla+", "sqlalchemy+")):
        return ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return []


def worker(
    beat: Annotated[bool, typer.Option("--beat", help="Also run the schedule in this worker.")] = False,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Worker processes; default one per core.")
    ] = None,
    queues: Annotated[str, typer.Option("--queues", "-Q", help="Comma-separated queues.")] = "preservation",
    pool: Annotated[str, typer.Option(help="prefork | solo | threads")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="DEBUG | INFO | WARNING")] = "INFO",
) -> None:
    """Start a preservation worker (Celery) on the configured broker."""

    def body(settings: Settings) -> None:
        import preservation.tasks  # noqa: F401  (registers the tasks)
        from preservation.celery_app import app

        argv = ["worker", f"--loglevel={loglevel}", f"--queues={queues}", f"--pool={pool}"]
        argv += [f"--hostname=preservation.{os.getpid()}@%h", *_celery_argv(settings)]
        if concurrency:
            argv.append(f"--concurrency={concurrency}")
        if beat:
            argv += ["--beat", f"--schedule={settings.home_dir / 'celerybeat-schedule'}"]
        app.worker_main(argv)

    run(body)


def beat(
    loglevel: Annotated[str, typer.Option(help="DEBUG | INFO | WARNING")] = "INFO",
) -> None:
    """Run the schedule: drain the migrate outbox, nightly incremental fixity audit."""

    def body(settings: Settings) -> None:
        import preservation.tasks  # noqa: F401
        from preservation.celery_app import app

        app.start(
            ["beat", f"--loglevel={loglevel}", f"--schedule={settings.home_dir / 'celerybeat-schedule'}"]
        )

    run(body)


def health_worker(
    timeout: Annotated[float, typer.Option(help="Seconds to collect answers")] = 3.0,
    any_host: Annotated[bool, typer.Option("--any-host", help="Accept a worker on any host")] = False,
) -> None:
    """Exit 0 when a preservation worker on this host answers a ping, else 1 with ARC011."""

    def body(settings: Settings) -> None:
        import socket

        from archive.errors import Unhealthy
        from preservation.celery_app import app_for, close_apps

        if settings.celery_broker.startswith(("sqla+", "sqlalchemy+")):
            raise Unhealthy(
                "worker",
                "无服务器的 SQLite 代理不能广播 ping，请使用 Redis（ARCHIVE_BROKER_URL）",
                "the server-less SQLite broker cannot broadcast a ping; use Redis (ARCHIVE_BROKER_URL)",
            )
        try:
            replies = app_for(settings).control.ping(timeout=timeout) or []
        except Exception as exc:  # the broker is down or refuses us: unhealthy, not a traceback
            raise Unhealthy(
                "worker", f"无法连接代理（{type(exc).__name__}）", f"cannot reach the broker ({exc})"
            ) from None
        finally:
            close_apps()
        host = socket.gethostname()
        names = sorted(name for reply in replies for name in reply)
        mine = [n for n in names if any_host or n.rpartition("@")[2] == host]
        if not mine:
            raise Unhealthy(
                "worker",
                f"{timeout:g} 秒内本机（{host}）没有工作进程应答"
                + (f"；其他主机：{', '.join(names)}" if names else ""),
                f"no worker on {host} answered within {timeout:g} s"
                + (f"; others did: {', '.join(names)}" if names else ""),
            )
        out.print(f"worker healthy: {', '.join(mine)}", highlight=False)

    run(body, needs_home=False)


def migrate(
    pending: Annotated[bool, typer.Option("--pending", help="Queue what ingest left in the outbox.")] = False,
    record: Annotated[
        str | None, typer.Option("--record", help="ARCHIVE/CODE: queue this record again.")
    ] = None,
    now: Annotated[
        bool, typer.Option("--now", help="With --record: migrate here and now instead of queuing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue migrations by hand (the schedule does --pending on its own)."""

    def body(settings: Settings) -> None:
        from archive.services import split_record_ref
        from preservation import jobs
        from preservation.celery_app import close_apps

        if pending == (record is not None):
            raise BadArgument(variant="pending_or_record")
        if now:
            if record is None:
                raise BadArgument(variant="now_needs_record")
            _migrate_now(settings, split_record_ref(record), as_json)
            return
        try:
            result = (
                jobs.queue_record(settings, split_record_ref(record)) if record else jobs.dispatch(settings)
            )
        finally:
            close_apps()
        if as_json:
            print_json({"ok": True, **result.as_dict()})
            return
        out.print(
            f"queued {result.queued} migration(s) from {result.files} file(s); "
            f"{result.risks} preservation risk(s) recorded; {result.requeued} stale job(s) re-queued",
            highlight=False,
        )

    run(body, as_json)


def _migrate_now(settings: Settings, ref: tuple[str, str], as_json: bool) -> None:
    from archive.errors import ArchiveError
    from preservation import jobs
    from preservation.migrate import migrate as migrate_file

    planned = jobs.queue_record(settings, ref, send_tasks=False)
    outcomes = []
    for work in planned.work:
        jobs.mark_running(settings, work.file_id, work.action)
        try:
            outcomes.append(migrate_file(settings, work.file_id, work.action))
        except ArchiveError as exc:
            jobs.mark_failed(settings, work.file_id, work.action, exc)
            raise
    migrated = [o for o in outcomes if o.status == "migrated"]
    checked = None
    if migrated:
        from preservation.aftercheck import check_migrated

        checked = check_migrated(
            settings, migrated[0].file_id, ", ".join(sorted({o.action for o in migrated}))
        )
    if as_json:
        checks = {"run_id": checked.run_id, "status": checked.status} if checked else None
        print_json({"ok": True, "migrations": [o.as_dict() for o in outcomes], "checks": checks})
        return
    for o in outcomes:
        out.print(f"{o.action} {o.logical_path or ''}: {o.status} {o.version or ''}", highlight=False)


def jobs_cmd(
    state: Annotated[
        list[str] | None, typer.Option("--state", help="queued | running | retrying | failed | done")
    ] = None,
    record: Annotated[str | None, typer.Option("--record", help="ARCHIVE/CODE")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many, newest first")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Migration jobs: queued, running, failed (with the reason) and done."""

    def body(settings: Settings) -> None:
        from archive.services import split_record_ref
        from preservation import jobs

        known = {s.value for s in jobs.JobState}
        bad = [s for s in state or [] if s not in known]
        if bad:
            raise BadArgument(variant="job_state", states=", ".join(bad), known=sorted(known))
        found = jobs.list_jobs(
            settings, states=state, record=split_record_ref(record) if record else None, limit=limit
        )
        if as_json:
            print_json([j.as_dict() for j in found])
            return
        colours = {"failed": "red", "retrying": "yellow", "running": "cyan", "done": "green"}
        table = new_table("record", "original", "action", "state", "attempts", "result / reason")
        for j in found:
            colour = colours.get(j.state, "white")
            if j.state == "done":
                what = (
                    f"{j.outcome}: {j.target} ({j.version})" if j.target else f"{j.outcome}: {j.reason or ''}"
                )
            else:
                what = f"{j.reason_code}: {j.reason}" if j.reason else ""
            table.add_row(
                j.record or "", j.path or "", j.action, f"[{colour}]{j.state}[/]", str(j.attempts), what
            )
        out.print(table)
        counts: dict[str, int] = {}
        for j in found:
            counts[j.state] = counts.get(j.state, 0) + 1
        out.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs", highlight=False)

    run(body, as_json)


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadArgument(variant="since", value=value) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class _AuditBar:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def __call__(self, p: AuditProgress) -> None:
        if self.task is None:
            self.task = self.progress.add_task("audit", total=p.objects_total or None, files=0, failures=0)
        self.progress.update(self.task, completed=p.objects_done, files=p.files_done, failures=p.failures)


def audit(
    archive: Annotated[str | None, typer.Option("--archive", help="Only this archive's objects")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only objects not verified since this date (oldest first)")
    ] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Also compute sha256 (twice the work)")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Start over instead of resuming")] = False,
    replicas: Annotated[
        bool,
        typer.Option(
            "--replicas", help="Also compare every replica with the catalogue (missing, extra, different)"
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fixity audit of the stored files, repairing from the replicas (ARCHIVE_REPLICAS); exit 1 when
    anything failed."""

    def body(settings: Settings) -> None:
        import sys

        from archive.replicas import NoReplicas, targets
        from preservation.audit import run_audit

        copies = targets(settings)
        if replicas and not copies:
            raise NoReplicas()
        algorithms = ("sha512", "sha256") if deep else ("sha512",)
        kwargs = {
            "archive": archive,
            "since": _since(since),
            "replicas": copies,
            "resume": not restart,
            "algorithms": algorithms,
        }
        if sys.stderr.isatty() and not as_json:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} objects, {task.fields[files]} files"),
                TextColumn("[red]{task.fields[failures]} failures"),
                TimeRemainingColumn(),
                console=err.real,
                transient=True,
            )
            with progress:
                report = run_audit(settings, progress=_AuditBar(progress), **kwargs)  # type: ignore[arg-type]
        else:
            report = run_audit(settings, **kwargs)  # type: ignore[arg-type]
        from preservation.aftercheck import check_repaired

        check_repaired(settings, report)  # 四性检测 on the objects repaired from the replica
        checks = []
        if replicas:
            from preservation.audit.copies import check_replicas

            checks = check_replicas(settings, copies)
        if as_json:
            print_json(
                {**report.summary(), **({"replicas": [c.as_dict() for c in checks]} if replicas else {})}
            )
        else:
            colour = "green" if report.ok else "red"
            out.print(
                f"[{colour}]{'OK' if report.ok else 'FAILED'}[/] {report.objects} objects, {report.files} files, "
                f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f}s ({report.throughput_mb_s:.0f} MB/s); "
                f"{len(report.failures)} failure(s), {report.repaired} repaired",
                highlight=False,
            )
            for f in report.failures[:50]:
                out.print(f"  [red]{f.kind}[/] {f.object_id} {f.logical_path or ''}", highlight=False)
            if report.report_dir:
                out.print(f"report: {report.report_dir}", highlight=False)
            for c in checks:
                colour = "green" if c.ok else "red"
                out.print(
                    f"[{colour}]{'OK' if c.ok else 'FAILED'}[/] replica {c.replica}: {c.objects} objects, "
                    f"{c.files} files; {len(c.problems)} problem(s), "
                    f"{sum(p.repaired for p in c.problems)} repaired"
                    + (f"; unavailable: {c.unavailable}" if c.unavailable else ""),
                    highlight=False,
                )
                for p in c.problems[:50]:
                    out.print(f"  [red]{p.kind}[/] {p.path} {p.detail}", highlight=False)
        if not report.ok or not all(c.ok for c in checks):
            raise typer.Exit(1)

    run(body, as_json)


def register(app: typer.Typer) -> None:
    from archive.cli import health_app

    health_app.command("worker")(health_worker)
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("migrate")(migrate)
    app.command("jobs")(jobs_cmd)
    app.command("audit")(audit)
