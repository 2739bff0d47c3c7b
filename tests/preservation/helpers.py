"""Helpers of the preservation tests, shared with tests/e2e/test_preservation_flow.py: ingest sample files,
read what a migration made, check the home is consistent, and run real ``archive worker`` processes.

The fixtures :func:`broker` and :func:`workers` are imported (re-exported) by the test modules that use them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import func, select

from archive import db
from archive.config import Settings, get_settings
from archive.events import MIGRATION, verify_chain
from archive.home import leftover_staging, store_for
from archive.models import Event, File, Record
from archive.storage import validate_root
from ingest.bagwriter import make_bag, write_payload
from ingest.pipeline import ingest
from preservation import jobs
from preservation.celery_app import close_apps
from tests.e2e.helpers import CSV_HEADER

# -- what a migration made -----------------------------------------------------------------------------------


def ingest_files(
    settings: Settings, tmp: Path, files: Mapping[str, Path], code: str = "R-1", archive: str = "GZ"
) -> dict[str, int]:
    """Ingest one record holding ``files`` (name → sample file); return name → File id."""
    root = tmp / f"bag-{code}"
    payload = {f"data/r/{name}": path.read_bytes() for name, path in files.items()}
    payload["data/metadata/records.csv"] = (
        CSV_HEADER + f"r,{code},测试案卷,测试单位,1990-01-01,永久,公开,自动\r\n"
    ).encode()
    write_payload(root, payload)
    result = ingest(make_bag(root, algorithms=("sha256",)), archive, settings)
    assert result.status == "stored", result
    with db.read_session(settings) as s:
        rows = s.execute(select(File.logical_path, File.id).where(File.role == "original")).all()
    return {path.rsplit("/", 1)[-1]: fid for path, fid in rows if path.rsplit("/", 1)[-1] in files}


def object_id(settings: Settings, file_id: int) -> str:
    with db.read_session(settings) as s:
        file = s.get(File, file_id)
        assert file is not None
        record = s.get(Record, file.record_id)
        assert record is not None
        return record.ocfl_object_id


def versions(settings: Settings, file_id: int) -> list[str]:
    inventory = store_for(settings).read_inventory(object_id(settings, file_id))
    return sorted(inventory["versions"], key=lambda v: int(v[1:]))


def migration_events(settings: Settings, outcome: str = "success") -> int:
    with db.read_session(settings) as s:
        return s.execute(
            select(func.count())
            .select_from(Event)
            .where(Event.event_type == MIGRATION, Event.outcome == outcome)
        ).scalar_one()


def derivatives(settings: Settings, file_id: int) -> list[File]:
    with db.read_session(settings) as s:
        return list(
            s.execute(select(File).where(File.derived_from_id == file_id).order_by(File.id)).scalars()
        )


def assert_consistent(settings: Settings) -> None:
    """Storage validates, staging is empty, the event chain holds, the record's head is the object's."""
    ok, messages = validate_root(settings.ocfl_root)
    assert ok, messages
    assert leftover_staging(settings) == []
    with db.read_session(settings) as s:
        assert verify_chain(s).ok
        for record in s.execute(select(Record)).scalars():
            assert record.ocfl_head == store_for(settings).read_inventory(record.ocfl_object_id)["head"]


# -- real worker processes -----------------------------------------------------------------------------------


def redis_url() -> str:
    url = os.environ.get("ARCHIVE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("ARCHIVE_TEST_REDIS_URL is not set: scripts/services.sh must start Redis in CI")
        pytest.skip("Redis not started (run scripts/services.sh start redis)")
    return url


@pytest.fixture(params=["sqlite", "redis"])
def broker(
    request: pytest.FixtureRequest, home: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The home on the SQLite broker (the default) or on Redis under a key prefix of its own."""
    if request.param == "redis":
        monkeypatch.setenv("ARCHIVE_BROKER_URL", f"{redis_url()}?prefix=test-{uuid.uuid4().hex[:8]}:")
    else:
        monkeypatch.delenv("ARCHIVE_BROKER_URL", raising=False)
    yield get_settings()
    close_apps()


class Worker:
    """``archive worker`` in its own process group, logging to a file."""

    def __init__(
        self,
        log: Path,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        beat: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        argv = [sys.executable, "-m", "archive", "worker", f"--pool={pool}", f"--concurrency={concurrency}"]
        if beat:
            argv.append("--beat")
        self.offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: "ready." in self.text() or self.proc.poll() is not None, 60, self)
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_bytes()[self.offset :].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def wait_for(predicate: Callable[[], bool], timeout: float, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = worker.text()[-4000:] if worker else ""
            pytest.fail(f"condition not met within {timeout}s\n{tail}")
        time.sleep(0.1)


def states(settings: Settings) -> dict[str, str]:
    return {j.key: j.state for j in jobs.list_jobs(settings)}


def all_final(settings: Settings) -> bool:
    found = states(settings)
    return bool(found) and all(s in ("done", "failed") for s in found.values())


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(**kwargs: object) -> Worker:
        w = Worker(tmp_path / "worker.log", **kwargs)  # type: ignore[arg-type]
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children…), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        here = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{here}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{here}/task/{tid}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
