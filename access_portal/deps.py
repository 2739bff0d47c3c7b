"""Dependencies of the route handlers, as in full-stack-fastapi-template's ``api/deps.py``::

    def read_record(session: SessionDep, archive: str, code: str) -> RecordOut: ...

The settings and the search backend are made once by :func:`access_portal.app.create_app` and kept on
``app.state``; a session is opened per request (read-only: the public portal never writes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from access_portal.limits import Limits
from archive import db
from archive.config import Settings
from search import SearchBackend

T = TypeVar("T")

# The dependencies are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop that
# costs more than reading ``app.state`` or the request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_backend(request: Request) -> SearchBackend:
    backend: SearchBackend = request.app.state.backend
    return backend


async def get_session(settings: Annotated[Settings, Depends(get_settings)]) -> AsyncIterator[Session]:
    """A session for the request, as :func:`archive.db.read_session` gives. Making one does no I/O (it
    connects on its first query, in the handler's thread); closing it does, so that runs in a worker
    thread — one hop instead of the two a ``def`` generator dependency costs."""
    session = db.sessionmaker_for(settings)()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


async def run_blocking(fn: Callable[..., T], *args: object) -> T:
    """Run the blocking part of a handler (search, catalogue reads, rendering) in one worker-thread hop,
    the session opened and closed there too: a ``def`` route with a SessionDep costs two or three."""
    return await run_in_threadpool(fn, *args)


#: The search routes' thread limiters of the running event loop, by size (an anyio limiter belongs to a loop).
_SEARCH_LIMITERS: RunVar[dict[int, CapacityLimiter]] = RunVar("search_limiters")


def _search_limiter(threads: int) -> CapacityLimiter:
    try:
        limiters = _SEARCH_LIMITERS.get()
    except LookupError:
        limiters = {}
        _SEARCH_LIMITERS.set(limiters)
    if threads not in limiters:
        limiters[threads] = CapacityLimiter(threads)
    return limiters[threads]


async def run_search(settings: Settings, fn: Callable[..., T], *args: object) -> T:
    """:func:`run_blocking` for the search routes' local work (the index, the catalogue re-check, the
    rendering): at most ``ARCHIVE_PORTAL_SEARCH_THREADS`` at once in this process, the others waiting in
    order. That work is Python under the interpreter lock: twenty requests sharing it in twenty threads
    all finish late (and the event loop waits for the lock too), a few at a time finish in turn. Nothing
    that waits on the network (a peer's answer) may run here."""
    return await to_thread.run_sync(fn, *args, limiter=_search_limiter(settings.portal_search_threads))


async def get_limits(request: Request) -> Limits:
    """The request bounds (:mod:`access_portal.limits`); refuses a request with too many parameters. Every
    router of the portal depends on it, so the count is checked before any handler runs."""
    limits: Limits = request.app.state.limits
    limits.check_params(len(request.query_params.multi_items()))
    return limits


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BackendDep = Annotated[SearchBackend, Depends(get_backend)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
