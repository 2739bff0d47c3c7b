"""``archive serve``: the public portal under uvicorn, and ``archive health portal`` (registered through the
``archive.commands`` entry point).

By default the command also drains the index outbox every few seconds in a background thread, so that
``archive demo && archive serve`` finds the demo's records without a separate worker; a node that runs the
Celery worker can pass ``--no-drain``. Draining is safe to run in several processes at once (rows are claimed).
With ``--workers N`` (N > 1) uvicorn runs N processes that each build the app from the environment; the
drain thread stays in the supervising process, so a portal drains once whatever its number of workers.
Behind a reverse proxy, ``--forwarded-allow-ips`` names the proxies whose ``X-Forwarded-For``/``-Proto`` are
believed (uvicorn's ``--proxy-headers``, on by default, trusts only 127.0.0.1 unless told otherwise).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from archive.cli import err, out, run

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
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
    proxy_headers: Annotated[
        bool, typer.Option(help="Believe X-Forwarded-For/-Proto from --forwarded-allow-ips")
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Comma-separated proxy addresses or networks to trust, or '*'; default 127.0.0.1"),
    ] = None,
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
        out.print(f"serving {settings.home_dir} on http://{host}:{port}/", highlight=False)
        try:
            # several workers: each process builds the app from the environment (uvicorn imports the factory)
            several = workers > 1
            uvicorn.run(
                "access_portal.app:create_app" if several else create_app(settings),
                factory=several,
                workers=workers,
                host=host,
                port=port,
                log_level=log_level,
                proxy_headers=proxy_headers,
                forwarded_allow_ips=forwarded_allow_ips,
            )
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


def register(app: typer.Typer) -> None:
    from archive.cli import health_app

    app.command("serve")(serve)
    health_app.command("portal")(health_portal)
