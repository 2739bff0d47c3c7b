"""Helpers for end-to-end tests that run the real ``archive`` command in subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from archive import db
from archive.config import Settings
from archive.models import File, Record
from ingest.bagwriter import make_bag, write_payload

CSV_HEADER = "路径,档号,题名,责任者,日期,保管期限,密级,开放状态\r\n"


def archive_cmd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archive", *args],
        input=input_text,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def ingest_json(path: Path, archive: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    proc = archive_cmd("ingest", str(path), "--archive", archive, "--json", env=env)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {"stderr": proc.stderr}


def simple_bag(
    root: Path,
    records: list[tuple[str, str, str, bytes]],
    *,
    date: str = "1990-01-01",
    encoding: str = "utf-8",
) -> Path:
    """A bag with one file per record: ``(folder, 档号, 题名, content)``."""
    rows = [CSV_HEADER]
    for folder, code, title, content in records:
        write_payload(root, {f"data/{folder}/{title}.txt": content})
        rows.append(f"{folder},{code},{title},测试单位,{date},永久,公开,自动\r\n")
    write_payload(root, {"data/metadata/records.csv": "".join(rows).encode(encoding)})
    return make_bag(root, algorithms=("sha256",))


def many_file_bag(root: Path, code: str, n: int = 200, size: int = 20_000) -> Path:
    write_payload(root, {f"data/卷/件 {i:04d}.bin": os.urandom(size) for i in range(n)})
    write_payload(
        root,
        {"data/metadata/records.csv": (CSV_HEADER + f"卷,{code},大卷,测试,1990,永久,,自动\r\n").encode()},
    )
    return make_bag(root, algorithms=("sha256",))


def catalogue_counts(settings: Settings) -> tuple[int, int]:
    with db.read_session(settings) as s:
        return (
            s.execute(select(func.count()).select_from(Record)).scalar_one(),
            s.execute(select(func.count()).select_from(File)).scalar_one(),
        )


def stored_objects(settings: Settings) -> list[Path]:
    return sorted(p.parent for p in settings.ocfl_root.rglob("0=ocfl_object_1.1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], port: int, log_path: Path) -> Iterator[str]:
    """``archive serve`` on 127.0.0.1:``port`` with ``env`` until the block ends; yields its URL once /healthz
    answers (60 s at most; fails with the portal's log if it exits first)."""
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "archive", "serve", "--host", "127.0.0.1", "--port", str(port), "--no-drain"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"archive serve exited with {proc.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the portal did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
