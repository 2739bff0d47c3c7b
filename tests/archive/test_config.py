"""Settings refuse placeholder and empty secrets at start-up (ARC010) unless ARCHIVE_ENV=development; the
embedded defaults need no setting at all; secrets are never shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from archive.config import SECRET, Settings
from archive.errors import InsecureSetting

SECRET_VARIABLES = {
    "ARCHIVE_DATABASE_URL": "postgresql+psycopg://archive:{}@db.example:5432/archive",
    "ARCHIVE_ELASTICSEARCH_URL": "http://elastic:{}@search.example:9200",
    "ARCHIVE_BROKER_URL": "redis://:{}@redis.example:6379/0",
    "ARCHIVE_RESULT_BACKEND": "redis://:{}@redis.example:6379/1",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("ARCHIVE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_embedded_defaults_need_no_setting() -> None:
    settings = Settings()
    assert settings.env == "production"
    assert settings.db_url.startswith("sqlite:///")
    assert settings.celery_broker.startswith("sqla+sqlite:///")
    assert {f"ARCHIVE_{n.upper()}" for n in Settings.secret_fields()} == set(SECRET_VARIABLES)


@pytest.mark.parametrize("variable", sorted(SECRET_VARIABLES))
@pytest.mark.parametrize("placeholder", ["change-me-postgres", "CHANGE-ME", "changeme", "xx-Change-Me-xx"])
def test_placeholder_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, placeholder: str
) -> None:
    monkeypatch.setenv(variable, SECRET_VARIABLES[variable].format(placeholder))
    with pytest.raises(InsecureSetting) as refused:
        Settings()
    assert refused.value.code == "ARC010" and refused.value.exit_code == 2
    assert refused.value.details["variable"] == variable
    assert variable in refused.value.en and variable in refused.value.zh
    assert placeholder not in str(refused.value)  # the message names the variable, never the value


@pytest.mark.parametrize("variable", sorted(SECRET_VARIABLES))
def test_empty_password_is_refused(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, SECRET_VARIABLES[variable].format(""))
    with pytest.raises(InsecureSetting, match="empty password"):
        Settings()


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis.example:6379/0",  # no auth at all: the network's choice, accepted
        "postgresql+psycopg://archive@/archive?host=/run/postgresql",  # a socket, peer authentication
        "postgresql+psycopg://archive:a-real-password@db.example/archive",
        "http://elastic:Zr7-q.x~_9@search.example:9200",
    ],
)
def test_real_or_absent_passwords_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    variable = "ARCHIVE_BROKER_URL" if url.startswith("redis") else "ARCHIVE_DATABASE_URL"
    monkeypatch.setenv(variable, url)
    Settings()


def test_development_accepts_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, template in SECRET_VARIABLES.items():
        monkeypatch.setenv(variable, template.format("change-me"))
    monkeypatch.setenv("ARCHIVE_ENV", "development")
    assert Settings().env == "development"
    monkeypatch.setenv("ARCHIVE_ENV", "staging")
    with pytest.raises(ValueError, match="production"):  # only the two documented values
        Settings()


def test_a_future_secret_key_is_checked_by_marking_it() -> None:
    class WithKey(Settings):
        session_key: SecretStr | None = Field(default=None, json_schema_extra=SECRET)

    assert WithKey().session_key is None  # unset: the feature is off
    with pytest.raises(InsecureSetting, match="ARCHIVE_SESSION_KEY"):
        WithKey(session_key=SecretStr("change-me"))
    with pytest.raises(InsecureSetting, match="is empty"):
        WithKey(session_key=SecretStr(""))
    assert WithKey(session_key=SecretStr("k" * 32)).redacted()["ARCHIVE_SESSION_KEY"] == "***"


def test_redacted_hides_passwords_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_DATABASE_URL", "postgresql://archive:hunter2-hunter2@db.example:5432/arc")
    monkeypatch.setenv("ARCHIVE_BROKER_URL", "redis://redis.example:6379/0")
    shown = Settings().redacted()
    assert shown["ARCHIVE_DATABASE_URL"] == "postgresql+psycopg://archive:***@db.example:5432/arc"
    assert shown["ARCHIVE_BROKER_URL"] == "redis://redis.example:6379/0"
    assert "hunter2" not in repr(shown)


def archive(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "archive", *args],
        capture_output=True,
        text=True,
        env={**keep, **env},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("args", [("config", "check"), ("init",), ("records", "list"), ("serve",)])
def test_every_command_refuses_at_start_up(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A placeholder stops each command before it opens anything: one coded line, exit 2, no traceback, and
    no home created (the URL's server does not exist: no command got as far as connecting)."""
    env = {
        "ARCHIVE_HOME": str(tmp_path / "home"),
        "ARCHIVE_DATABASE_URL": "postgresql+psycopg://archive:change-me-postgres@127.0.0.1:1/archive",
    }
    done = archive(*args, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("ARC010") == 1 and "ARCHIVE_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and "change-me-postgres" not in done.stderr
    assert not (tmp_path / "home").exists()


def test_config_check_shows_the_settings_redacted(tmp_path: Path) -> None:
    env = {
        "ARCHIVE_HOME": str(tmp_path / "home"),
        "ARCHIVE_ELASTICSEARCH_URL": "http://elastic:Zr7q9x2-secret@127.0.0.1:9200",
    }
    done = archive("config", "check", env=env)
    assert done.returncode == 0, done.stderr
    assert "ARCHIVE_ELASTICSEARCH_URL=http://elastic:***@127.0.0.1:9200" in done.stdout
    assert "Zr7q9x2" not in done.stdout and "settings ok (production)" in done.stdout
