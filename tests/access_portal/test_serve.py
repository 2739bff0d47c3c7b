"""``archive serve --workers N``: the portal as production starts it, over real HTTP."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from archive.config import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _request(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_serve_with_workers(home: Settings, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "ARCHIVE_HOME": str(home.home_dir), "ARCHIVE_ELASTICSEARCH_URL": ""}
    env.pop("ARCHIVE_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "archive", "serve", "--port", str(port), "--workers", "2", "--no-drain"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _, _ = _request(port, "GET", "/healthz")
                if status == 200 and len(_children(proc.pid)) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert status == 200, log.read_text()[-2000:]
        # uvicorn's supervisor and its two workers (the multiprocessing helper may add one more)
        assert len(_children(proc.pid)) >= 2, log.read_text()[-2000:]
        get = _request(port, "GET", "/search?q=%E6%A1%A3%E6%A1%88")
        head = _request(port, "HEAD", "/search?q=%E6%A1%A3%E6%A1%88")
        assert get[0] == head[0] == 200
        assert head[2] == b"" and head[1]["content-length"] == str(len(get[2]))
        assert _request(port, "GET", "/docs-assets/swagger-ui-bundle.js")[0] == 200
    finally:
        proc.terminate()
        proc.wait(30)
    assert "2 worker(s)" in log.read_text()
    assert "Traceback" not in log.read_text()
