"""Engine, sessions and schema upgrades.

SQLite (the embedded default) runs in WAL mode with a long busy timeout so several ingest processes can share
one ``ARCHIVE_HOME``; :func:`write_session` starts its transaction with ``BEGIN IMMEDIATE`` so writers queue
instead of failing half-way with "database is locked". PostgreSQL is used as it is (``ARCHIVE_DATABASE_URL``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from archive.config import Settings
from archive.errors import DatabaseUnavailable, DiskFull

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import ExceptionContext

logger = logging.getLogger(__name__)

SQLITE_BUSY_MS = 120_000
SQLITE_FULL = 13  # "database or disk is full"
#: Key of the PostgreSQL advisory lock that schema upgrades take (any constant unique to this application).
UPGRADE_LOCK = 0x70_65_61_72_6C  # "pearl"


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        original = context.original_exception
        if getattr(original, "sqlite_errorcode", None) == SQLITE_FULL:
            raise DiskFull(path=engine.url.database or "", reason=original) from original

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _server_hooks(engine: Engine) -> None:
    """A database server that cannot be reached (refused, unknown host, dropped connection) becomes
    :class:`~archive.errors.DatabaseUnavailable` (exit 3, one coded line) here, where it happens; errors of
    a statement stay SQLAlchemy's."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if context.is_disconnect or (context.connection is None and context.execution_context is None):
            raise DatabaseUnavailable(
                url=engine.url.render_as_string(hide_password=True), reason=context.original_exception
            ) from context.original_exception


#: Set in ``session.info`` by :mod:`archive.events` when a transaction appends events; after the commit
#: :func:`write_session` brings the catalogue journal in the storage root up to date (archive/recovery).
EVENTS_APPENDED = "events_appended"

_ENGINES: dict[str, Engine] = {}
#: One session factory per engine: ``sessionmaker`` makes a Session subclass each time it is called, and
#: SQLAlchemy's event machinery then sets that class up on its first session — a cost per request.
_SESSIONMAKERS: dict[str, sessionmaker[Session]] = {}


def get_engine(settings: Settings) -> Engine:
    """One engine (and connection pool) per database URL for the life of the process."""
    url = settings.db_url
    engine = _ENGINES.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
            _sqlite_hooks(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True)
            _server_hooks(engine)
        _ENGINES[url] = engine
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests dropping databases; worker processes after fork)."""
    _SESSIONMAKERS.clear()
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def sessionmaker_for(settings: Settings) -> sessionmaker[Session]:
    engine = get_engine(settings)
    factory = _SESSIONMAKERS.get(settings.db_url)
    if factory is None or factory.kw["bind"] is not engine:
        factory = _SESSIONMAKERS[settings.db_url] = sessionmaker(bind=engine, expire_on_commit=False)
    return factory


@contextmanager
def read_session(settings: Settings) -> Iterator[Session]:
    with sessionmaker_for(settings)() as session:
        yield session


@contextmanager
def write_session(settings: Settings) -> Iterator[Session]:
    """A session whose transaction takes the write lock at once (SQLite) and commits on success."""
    engine = get_engine(settings)
    with engine.connect() as conn:
        conn = conn.execution_options(immediate=True)
        with Session(bind=conn, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        if session.info.get(EVENTS_APPENDED):
            from archive.recovery.journal import follow  # the storage root carries what was committed

            try:
                follow(settings)
            except OSError as exc:  # committed all the same; the next command opening the home catches up
                logger.warning("catalogue journal not brought up to date now: %s", exc)


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config  # imported here: Alembic is slow to import and only `init` needs it

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("archive") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", settings.db_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings) -> tuple[str | None, str | None]:
    """Bring the catalogue schema to the newest revision (idempotent); the revisions before and after.

    Upgrades from several processes or hosts take turns: PostgreSQL through a transaction-level advisory
    lock, SQLite through ``BEGIN IMMEDIATE``; the later ones find the schema current and do nothing."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = get_engine(settings)
    with engine.connect() as conn, conn.execution_options(immediate=True).begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})")
        before = MigrationContext.configure(conn).get_current_revision()
        cfg = alembic_config(settings)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return before, MigrationContext.configure(conn).get_current_revision()
