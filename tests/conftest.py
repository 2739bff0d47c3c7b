"""Shared fixtures: an initialised ARCHIVE_HOME on SQLite, and on a fresh PostgreSQL database when the
server started by ``scripts/services.sh`` is there (``ARCHIVE_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import ProgrammingError

from archive import db, services
from archive.config import Settings, get_settings
from archive.home import init_home

REGION = [
    ("GD", "广东省档案馆", "province", None),
    ("GZ", "广州市档案馆", "city", "GD"),
    ("GZ-TH", "天河区档案馆", "county", "GZ"),
]


def postgres_admin_url() -> str | None:
    url = os.environ.get("ARCHIVE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail(
                "ARCHIVE_TEST_POSTGRES_URL is not set: scripts/services.sh must start PostgreSQL in CI"
            )
        pytest.skip("PostgreSQL not started (run scripts/services.sh start postgres)")
    return url


def s3_env() -> dict[str, str]:
    """The environment that points ``ARCHIVE_REPLICAS`` S3 entries at the SeaweedFS the services script
    started: its endpoint and credentials (skip without it; fail in CI, which must start it)."""
    url = os.environ.get("ARCHIVE_TEST_S3_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("ARCHIVE_TEST_S3_URL is not set: scripts/services.sh must start SeaweedFS in CI")
        pytest.skip("SeaweedFS not started (run scripts/services.sh start seaweedfs)")
    return {
        "ARCHIVE_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": os.environ["ARCHIVE_TEST_S3_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": os.environ["ARCHIVE_TEST_S3_SECRET_KEY"],
    }


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    admin = postgres_admin_url()
    assert admin is not None
    name = f"archive_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        db.dispose_engines()
        try:
            _drop_database(engine, name)
        finally:
            engine.dispose()


def _drop_database(engine: Engine, name: str) -> None:
    """DROP … WITH (FORCE) ends our own connections to it, but not an autovacuum worker that happens to be
    on it (a superuser's process: InsufficientPrivilege); that one ends in a moment, so try again."""
    for attempt in range(20):
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError as exc:
            if "InsufficientPrivilege" not in type(exc.orig).__name__ or attempt == 19:
                raise
            time.sleep(0.25)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None) -> Settings:
    monkeypatch.setenv("ARCHIVE_HOME", str(tmp_path / "home"))
    if url:
        monkeypatch.setenv("ARCHIVE_DATABASE_URL", url)
    else:
        monkeypatch.delenv("ARCHIVE_DATABASE_URL", raising=False)
    settings = get_settings()
    init_home(settings)
    with db.write_session(settings) as s:
        for code, name, level, parent in REGION:
            services.add_archive(s, code, name_zh=name, name_en=None, level=level, parent=parent)
    return settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An initialised home on SQLite with the region GD → GZ → GZ-TH registered."""
    return _home(tmp_path, monkeypatch, None)


@pytest.fixture
def any_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Settings:
    """The same, once on SQLite and once on PostgreSQL."""
    return _home(tmp_path, monkeypatch, database_url)
