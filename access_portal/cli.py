"""``archive serve``: the public portal under uvicorn (registered through the ``archive.commands`` entry point).

By default the command also drains the index outbox every few seconds in a background thread, so that
``archive demo && archive serve`` finds the demo's records without a separate worker; a node that runs the
Celery worker can pass ``--no-drain``. Draining is safe to run in several processes at once (rows are claimed).
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
            uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
        finally:
            stop.set()
        err.print("stopped", highlight=False)

    run(body)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
