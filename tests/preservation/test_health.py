"""`archive health worker`, the worker container's healthcheck (a Celery ping): exit 1 with one coded line
(ARC011) when no worker on this host answers, when the broker is down, and on the SQLite broker, which cannot
broadcast. (A worker answering is shown by tests/e2e/test_production_order.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.preservation.helpers import redis_url


def health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archive", "health", "worker", "--timeout", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("broker", ["sqlite", "redis without worker", "redis down"])
def test_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str) -> None:
    env = {"ARCHIVE_HOME": str(tmp_path / "home")}
    if broker == "sqlite":
        monkeypatch.delenv("ARCHIVE_BROKER_URL", raising=False)
        why = "SQLite broker cannot broadcast"
    elif broker == "redis down":
        env["ARCHIVE_BROKER_URL"] = f"redis://127.0.0.1:{closed_port()}/0"
        why = "cannot reach the broker"
    else:
        env["ARCHIVE_BROKER_URL"] = f"{redis_url()}?prefix=health-{uuid.uuid4().hex[:8]}:"
        why = f"no worker on {socket.gethostname()} answered within 1 s"
    done = health(env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("ARC011") == 1 and why in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
