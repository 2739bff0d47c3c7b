"""Dependencies of the route handlers, as in full-stack-fastapi-template's ``api/deps.py``::

    def read_record(session: SessionDep, archive: str, code: str) -> RecordOut: ...

The settings and the search backend are made once by :func:`access_portal.app.create_app` and kept on
``app.state``; a session is opened per request (read-only: the public portal never writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from access_portal.i18n import Lang, resolve_lang
from archive import db
from archive.config import Settings
from search import SearchBackend


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_backend(request: Request) -> SearchBackend:
    backend: SearchBackend = request.app.state.backend
    return backend


def get_session(settings: Annotated[Settings, Depends(get_settings)]) -> Iterator[Session]:
    with db.read_session(settings) as session:
        yield session


def get_lang(request: Request) -> Lang:
    return resolve_lang(request)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BackendDep = Annotated[SearchBackend, Depends(get_backend)]
LangDep = Annotated[Lang, Depends(get_lang)]
