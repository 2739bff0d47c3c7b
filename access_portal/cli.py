"""``archive serve``: the public portal under uvicorn, ``archive health portal`` and ``archive uploads clean``
(registered through the ``archive.commands`` entry point).

By default the command also drains the index outbox every few seconds in a background thread, so that
``archive demo && archive serve`` finds the demo's records without a separate worker; a node that runs the
Celery worker can pass ``--no-drain``. Draining is safe to run in several processes at once (rows are claimed).

Production runs ``archive serve --workers N`` (N = cores is a good start): uvicorn then starts N worker
processes, each building the app from the same ``ARCHIVE_*`` environment (the drain thread runs once, in the
supervising process). uvicorn picks uvloop and httptools when they are installed (the ``fast`` extra), and
trusts ``X-Forwarded-For``/``-Proto`` from ``--forwarded-allow-ips`` (default 127.0.0.1, the usual reverse
proxy). Absolute links never come from the request: they use ``ARCHIVE_PUBLIC_URL``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import JsonOpt, err, out, run

if TYPE_CHECKING:
    from archive.config import Settings

log = logging.getLogger("access_portal")
DRAIN_EVERY = 5.0
HEALTH_URL = "http://127.0.0.1:8000/healthz"


def _drain_forever(settings: Settings, stop: threading.Event) -> None:
    from search import drain, get_backend

    backend = get_backend(settings)
    while not stop.is_set():
        try:
            backend.ensure_ready()
            drain(settings, backend)
        except Exception as exc:  # the outbox keeps the work; try again later
            log.warning("index drain failed: %s", exc)
        stop.wait(DRAIN_EVERY)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    drain: Annotated[bool, typer.Option(help="Index queued records in the background")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (production: one per core)")
    ] = 1,
    proxy_headers: Annotated[
        bool, typer.Option(help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips")
    ] = True,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="Addresses of the reverse proxies whose forwarded headers are trusted")
    ] = "127.0.0.1",
    access_log: Annotated[bool, typer.Option(help="Log every request")] = True,
) -> None:
    """Serve the public portal: search, records, downloads and catalogues of open records."""

    def body(settings: Settings) -> None:
        import uvicorn

        from access_portal.app import create_app

        stop = threading.Event()
        if drain:
            threading.Thread(
                target=_drain_forever, args=(settings, stop), name="index-drain", daemon=True
            ).start()
        out.print(
            f"serving {settings.home_dir} on http://{host}:{port}/ ({workers} worker(s))", highlight=False
        )
        options = {
            "host": host,
            "port": port,
            "log_level": log_level,
            "proxy_headers": proxy_headers,
            "forwarded_allow_ips": forwarded_allow_ips,
            "access_log": access_log,
        }
        try:
            if workers > 1:  # each worker builds the app from the environment the settings came from
                uvicorn.run("access_portal.app:create_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
            else:
                uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        finally:
            stop.set()
        err.print("stopped", highlight=False)

    run(body)


def health_portal(
    url: Annotated[str, typer.Option(help="The portal's /healthz")] = HEALTH_URL,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer")] = 5.0,
) -> None:
    """Exit 0 when the portal answers /healthz with 200 (catalogue and search ready), else 1 with ARC011."""
    import urllib.error
    import urllib.request

    from archive.errors import Unhealthy

    def body(settings: Settings) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                status, text = answer.status, answer.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            raise Unhealthy("portal", f"{url} 无应答（{exc}）", f"{url} does not answer ({exc})") from None
        if status != 200:
            raise Unhealthy(
                "portal", f"{url} 返回 {status}：{text[:200]}", f"{url} answered {status}: {text[:200]}"
            )
        out.print(f"portal healthy: {text.strip()}", highlight=False)

    run(body, needs_home=False)


uploads_app = typer.Typer(no_args_is_help=True, help="Resumable (tus) transfer uploads.")


@uploads_app.command("clean")
def uploads_clean(
    as_json: JsonOpt = False,
) -> None:
    """Remove partial uploads past their expiry (ARCHIVE_UPLOAD_EXPIRE_HOURS); the beat does it hourly."""
    from archive.cli import print_json
    from archive.uploads import clean_expired

    cleaned = run(clean_expired, as_json)
    if as_json:
        print_json([{"upload": c.upload_id, "archive": c.archive, "bytes": c.bytes} for c in cleaned])
        return
    for c in cleaned:
        out.print(f"removed upload {c.upload_id} ({c.archive or '-'}, {c.bytes} bytes)")
    out.print(f"{len(cleaned)} expired upload(s) removed")


def register(app: typer.Typer) -> None:
    from archive.cli import health_app

    app.command("serve")(serve)
    app.add_typer(uploads_app, name="uploads")
    health_app.command("portal")(health_portal)
