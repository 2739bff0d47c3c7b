"""Real Celery worker processes (``archive worker``) on both brokers: the server-less SQLite transport and
Redis (``ARCHIVE_TEST_REDIS_URL``, started by scripts/services.sh). No ``task_always_eager`` anywhere.

The kill-the-worker tests: a worker dies with SIGKILL in the middle of a migration — the whole worker at a
failpoint (before and after the OCFL commit), or only the prefork child running the task, killed from
outside — and after a restart there is exactly one new version per (file, action), no partial files in
storage or staging, no duplicate event, an intact event chain and a valid OCFL root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from archive.config import Settings
from preservation import jobs
from tests.preservation.helpers import (
    Worker,
    alive,
    all_final,
    assert_consistent,
    derivatives,
    descendants,
    ingest_files,
    migration_events,
    states,
    versions,
    wait_for,
)
from tests.preservation.helpers import broker as broker  # the fixtures, re-exported for pytest
from tests.preservation.helpers import workers as workers
from tests.preservation.samples import corrupt, make_image, make_pdf

pytestmark = pytest.mark.slow


def broken_png(path: Path) -> Path:
    """Identified as PNG (signature and IEND intact), but its image data is noise: the tools fail."""
    corrupt(make_image(path, "PNG", size=(300, 200)))
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    return path


def hopeless_pdf(path: Path) -> Path:
    """Identified as PDF 1.7 (header and %%EOF), but there is nothing qpdf could rebuild."""
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\nnot a pdf\n%%EOF\n")
    return path


@pytest.mark.parametrize(
    ("broker", "failpoint"),
    [
        ("sqlite", "migrate:after-action"),
        ("sqlite", "migrate:after-ocfl-commit"),
        ("redis", "migrate:after-ocfl-commit"),
    ],
    indirect=["broker"],
)
def test_worker_killed_at_failpoint_and_restarted(
    broker: Settings, tmp_path: Path, workers: Callable[..., Worker], failpoint: str
) -> None:
    ids = ingest_files(broker, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf", pages=3)})
    first = workers(env={"ARCHIVE_FAILPOINT": failpoint})
    jobs.dispatch(broker)
    wait_for(lambda: first.proc.poll() is not None, 60, first)
    assert first.proc.returncode == -signal.SIGKILL
    assert states(broker) == {f"migrate:{ids['a.pdf']}:pdfa": "running"}
    assert derivatives(broker, ids["a.pdf"]) == []

    second = workers()  # re-queues the dead worker's job, cleans its staging
    wait_for(lambda: all_final(broker), 60, second)
    (job,) = jobs.list_jobs(broker)
    assert (job.state, job.version) == ("done", "v2")
    assert job.outcome == ("completed" if failpoint == "migrate:after-ocfl-commit" else "migrated")
    assert versions(broker, ids["a.pdf"]) == ["v1", "v2"]
    assert len(derivatives(broker, ids["a.pdf"])) == 1
    assert migration_events(broker) == 1
    second.stop()
    assert_consistent(broker)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_prefork_child_killed_mid_task(
    broker: Settings, tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    """The OOM killer takes the child running a migration: the message comes back (acks late, reject on
    worker lost) and the replacement child finishes it once. (On the SQLite broker the same path is the
    virtual transport's reject-with-requeue; the failpoint tests above cover that broker.)"""
    # 40 pages: the migration runs long enough to be killed in the middle even on a fast machine
    ids = ingest_files(broker, tmp_path, {"big.pdf": make_pdf(tmp_path / "big.pdf", pages=40)})
    worker = workers(pool="prefork")
    jobs.dispatch(broker)
    key = f"migrate:{ids['big.pdf']}:pdfa"

    def running() -> bool:
        (job,) = jobs.list_jobs(broker)
        return job.state == "running" and job.worker is not None

    wait_for(running, 60, worker)
    (job,) = jobs.list_jobs(broker)
    child = int(str(job.worker).rpartition(":")[2])
    assert child != worker.proc.pid
    wait_for(lambda: bool(descendants(child)), 60, worker)  # inside the action: a tool runs
    tools = descendants(child)
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: states(broker)[key] == "done", 90, worker)
    assert "WorkerLostError" in worker.text() or "SIGKILL" in worker.text()
    (job,) = jobs.list_jobs(broker)
    assert job.attempts >= 2
    assert versions(broker, ids["big.pdf"]) == ["v1", "v2"]
    assert migration_events(broker) == 1
    worker.stop()
    # the killed child's tool (its own process group) finishes in its deleted directory
    wait_for(lambda: not any(alive(p) for p in tools), 60)
    from preservation.migrate import clean_staging

    clean_staging(broker)
    assert_consistent(broker)


def test_beat_drains_outbox_retries_and_reports_failures(
    home: Settings, tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    """``worker --beat`` on the default SQLite broker picks work up from the outbox by itself; a tool failure
    is retried with backoff and then left failed, a hopeless file fails at once; both show in ``jobs``."""
    ids = ingest_files(
        home,
        tmp_path,
        {
            "ok.png": make_image(tmp_path / "ok.png", "PNG"),
            "bad.png": broken_png(tmp_path / "bad.png"),
            "junk.pdf": hopeless_pdf(tmp_path / "junk.pdf"),
        },
    )
    worker = workers(beat=True, env={"ARCHIVE_DISPATCH_INTERVAL": "1", "ARCHIVE_TASK_MAX_RETRIES": "1"})
    wait_for(lambda: len(states(home)) == 5 and all_final(home), 90, worker)
    found = {(j.file_id, j.action): j for j in jobs.list_jobs(home)}
    assert found[(ids["ok.png"], "image-tiff")].state == "done"
    assert found[(ids["ok.png"], "image-access-jpeg")].state == "done"
    bad = found[(ids["bad.png"], "image-tiff")]
    assert (bad.state, bad.attempts) == ("failed", 2), bad
    assert bad.reason_code in ("PRS002", "PRS004")
    junk = found[(ids["junk.pdf"], "pdfa")]
    assert (junk.state, junk.attempts, junk.reason_code) == ("failed", 1, "PRS008")
    assert migration_events(home, "failure") == 3
    assert versions(home, ids["bad.png"]) == ["v1", "v2", "v3"]  # only ok.png's two derivatives

    listed = subprocess.run(
        [sys.executable, "-m", "archive", "jobs", "--state", "failed", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    failed = json.loads(listed.stdout)
    assert {j["key"] for j in failed} == {bad.key, junk.key, f"migrate:{ids['bad.png']}:image-access-jpeg"}
    assert all(j["reason"] for j in failed)
    worker.stop()
    assert_consistent(home)
