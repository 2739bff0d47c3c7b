"""`archive health portal`, the portal container's healthcheck: exit 0 while /healthz answers 200, else exit 1
with one coded line (ARC011) and no traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archive", "health", "portal", "--url", f"http://127.0.0.1:{port}/healthz"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_unhealthy(done: subprocess.CompletedProcess[str], why: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("ARC011") == 1 and why in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_nothing_listening() -> None:
    assert_unhealthy(health(free_port()), "does not answer")


@pytest.mark.parametrize("search", ["embedded", "elasticsearch down"])
def test_a_running_portal(home: Settings, tmp_path: Path, search: str) -> None:
    """Healthy on the embedded index; with Elasticsearch unreachable the portal still starts, but /healthz
    answers 503 and so does the check."""
    env = dict(os.environ)
    if search != "embedded":
        env["ARCHIVE_ELASTICSEARCH_URL"] = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    with open(tmp_path / "portal.log", "wb") as log:
        portal = subprocess.Popen(
            [sys.executable, "-m", "archive", "serve", "--port", str(port), "--no-drain"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while (done := health(port)).returncode != 0 and "answered" not in done.stderr:
            assert portal.poll() is None, (tmp_path / "portal.log").read_text()
            assert time.monotonic() < deadline, done.stderr
            time.sleep(0.3)
        if search == "embedded":
            assert done.returncode == 0 and "portal healthy" in done.stdout, done.stderr
        else:
            assert_unhealthy(done, "answered 503")
    finally:
        portal.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -15)
        assert portal.wait(30) in (0, -signal.SIGTERM), (tmp_path / "portal.log").read_text()
