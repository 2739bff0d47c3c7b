"""The migration service (preservation/migrate.py) and the job bookkeeping (preservation/jobs.py), in process.

Crashes are real: the service runs in a child process that kills itself with SIGKILL at a failpoint.
Worker processes and brokers are in test_worker.py; the helpers both use are in helpers.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from archive import db
from archive.config import Settings
from archive.home import leftover_staging, store_for
from archive.models import File
from preservation import actions as actions_mod
from preservation import jobs
from preservation.migrate import clean_staging, migrate, target_path
from preservation.policy import ACTIONS, REPAIR_ACTION
from preservation.tools import ToolFailed, ToolTimeout, Unrepairable
from tests.preservation.helpers import (
    assert_consistent,
    derivatives,
    ingest_files,
    migration_events,
    object_id,
    versions,
)
from tests.preservation.samples import (
    make_bad_stream_pdf,
    make_damaged_pdf,
    make_garbage_pdf,
    make_image,
    make_ofd,
    make_pdf,
)

# `preservation.migrate` names both the module and the function the package re-exports
migrate_mod = sys.modules["preservation.migrate"]


def run_killed(settings: Settings, file_id: int, action: str, failpoint: str) -> int:
    """Run migrate() in a child that SIGKILLs itself at ``failpoint``; return its exit status."""
    code = f"from archive.config import get_settings; from preservation.migrate import migrate; migrate(get_settings(), {file_id}, {action!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ARCHIVE_FAILPOINT": failpoint},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode


# -- paths --------------------------------------------------------------------------------------------------


def test_target_paths() -> None:
    pdfa, jpeg = ACTIONS["pdfa"], ACTIONS["image-access-jpeg"]
    assert target_path("originals/卷/a.pdf", pdfa) == "preservation/卷/a.pdf"
    assert target_path("originals/卷/a.png", jpeg) == "access/卷/a.jpg"
    siblings = ["originals/卷/a.doc", "originals/卷/a.pdf"]
    assert target_path("originals/卷/a.doc", ACTIONS["office-pdfa"], siblings) == "preservation/卷/a.doc.pdf"
    assert target_path("originals/卷/a.pdf", REPAIR_ACTION) == "preservation/卷/a.repaired.pdf"
    assert target_path("originals/noext", pdfa) == "preservation/noext.pdf"


# -- the normal path and idempotency ------------------------------------------------------------------------


def test_migrate_pdf_once(any_home: Settings, tmp_path: Path) -> None:
    ids = ingest_files(any_home, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf", pages=2)})
    first = migrate(any_home, ids["a.pdf"], "pdfa")
    assert (first.status, first.version, first.logical_path) == ("migrated", "v2", "preservation/r/a.pdf")
    again = migrate(any_home, ids["a.pdf"], "pdfa")
    assert (again.status, again.version, again.derivative_id) == ("already-done", "v2", first.derivative_id)
    assert versions(any_home, ids["a.pdf"]) == ["v1", "v2"]
    assert migration_events(any_home) == 1
    (row,) = derivatives(any_home, ids["a.pdf"])
    assert (row.role, row.tool, row.ocfl_version, row.puid) == ("preservation", "gs", "v2", "fmt/477")
    assert row.tool_version and row.properties["action"] == "pdfa"
    inventory = store_for(any_home).read_inventory(object_id(any_home, ids["a.pdf"]))
    assert row.sha512 in inventory["versions"]["v2"]["state"]
    assert "with gs " in inventory["versions"]["v2"]["message"]
    (job,) = jobs.list_jobs(any_home)
    assert (job.state, job.outcome, job.version) == ("done", "migrated", "v2")
    assert_consistent(any_home)


def test_two_actions_of_one_record_at_once(home: Settings, tmp_path: Path) -> None:
    """Concurrent commits on one object: the loser of the race re-stages on the new head (VersionConflict)."""
    ids = ingest_files(home, tmp_path, {"b.png": make_image(tmp_path / "b.png", "PNG")})
    results = {}

    def go(action: str) -> None:
        results[action] = migrate(home, ids["b.png"], action)

    threads = [threading.Thread(target=go, args=(a,)) for a in ("image-tiff", "image-access-jpeg")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status for r in results.values()} == {"migrated"}
    assert sorted(r.version or "" for r in results.values()) == ["v2", "v3"]
    assert versions(home, ids["b.png"]) == ["v1", "v2", "v3"]
    assert sorted(f.logical_path for f in derivatives(home, ids["b.png"])) == [
        "access/r/b.jpg",
        "preservation/r/b.tif",
    ]
    assert_consistent(home)


# -- crashes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failpoint", "stored"),
    [("migrate:after-action", False), ("migrate:after-ocfl-commit", True), ("migrate:after-db-commit", True)],
)
def test_killed_migration_finishes_once(home: Settings, tmp_path: Path, failpoint: str, stored: bool) -> None:
    ids = ingest_files(home, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf")})
    assert run_killed(home, ids["a.pdf"], "pdfa", failpoint) == -9
    assert versions(home, ids["a.pdf"]) == (["v1", "v2"] if stored else ["v1"])
    clean_staging(home)  # what a worker does when it starts
    outcome = migrate(home, ids["a.pdf"], "pdfa")
    expected = {"migrate:after-action": "migrated", "migrate:after-ocfl-commit": "completed"}
    assert outcome.status == expected.get(failpoint, "already-done")
    assert versions(home, ids["a.pdf"]) == ["v1", "v2"]
    assert migration_events(home) == 1
    (row,) = derivatives(home, ids["a.pdf"])
    assert (row.tool, row.ocfl_version) == ("gs", "v2")
    assert_consistent(home)


# -- damaged PDFs, failures, risks --------------------------------------------------------------------------


def test_damaged_pdf_is_repaired_then_converted(home: Settings, tmp_path: Path) -> None:
    ids = ingest_files(home, tmp_path, {"d.pdf": make_damaged_pdf(tmp_path / "d.pdf")})
    outcome = migrate(home, ids["d.pdf"], "pdfa")
    assert outcome.status == "migrated" and outcome.repaired is not None
    assert (outcome.repaired.logical_path, outcome.repaired.version) == (
        "preservation/r/d.repaired.pdf",
        "v2",
    )
    assert outcome.version == "v3"
    (repaired,) = derivatives(home, ids["d.pdf"])
    assert (repaired.tool, repaired.properties["action"]) == ("qpdf", "pdf-repair")
    (pdfa,) = derivatives(home, repaired.id)
    assert (pdfa.logical_path, pdfa.tool) == ("preservation/r/d.pdf", "gs")
    assert migration_events(home) == 2
    assert {j.action: j.state for j in jobs.list_jobs(home)} == {"pdfa": "done", "pdf-repair": "done"}
    assert_consistent(home)


def test_only_pdfs_the_ingest_read_cleanly_are_checked_beside_ghostscript(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real_check, real_run = migrate_mod.needs_repair, migrate_mod.run_action
    beside, action_started = False, threading.Event()

    def check(source: Path, timeout: float) -> bool:
        # The check beside the action ends after the action has started: left to the scheduler, its thread
        # could run qpdf to the end before the action is even called. A check run first waits in vain.
        if beside:
            assert action_started.wait(60), "the check did not run beside the action"
        damaged = real_check(source, timeout)
        order.append(f"check done: {damaged}")
        return damaged

    def run(*args: Any, **kwargs: Any) -> Any:
        order.append("action")
        action_started.set()
        return real_run(*args, **kwargs)

    monkeypatch.setattr(migrate_mod, "needs_repair", check)
    monkeypatch.setattr(migrate_mod, "run_action", run)
    ids = ingest_files(
        home, tmp_path, {"d.pdf": make_damaged_pdf(tmp_path / "d.pdf"), "a.pdf": make_pdf(tmp_path / "a.pdf")}
    )
    migrate(home, ids["d.pdf"], "pdfa")  # the ingest's probe found the damage: checked first
    assert order == ["check done: True", "action"]
    order.clear()
    action_started.clear()
    beside = True
    migrate(home, ids["a.pdf"], "pdfa")  # read cleanly: the check runs while the action does
    assert order == ["action", "check done: False"]
    assert_consistent(home)


def gs_spy(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """Ghostscript runs as usual; the event is set when one starts, the list gets how each ended."""
    started, ended = threading.Event(), []
    real = actions_mod.run_tool

    def run_tool(argv: list[str], **kwargs: Any) -> Any:
        if kwargs.get("name") != "gs":
            return real(argv, **kwargs)
        started.set()
        try:
            result = real(argv, **kwargs)
        except ToolFailed as exc:
            ended.append(exc.en)
            raise
        ended.append("done")
        return result

    monkeypatch.setattr(actions_mod, "run_tool", run_tool)
    return started, ended


def test_damage_found_beside_ghostscript_stops_it(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check's answer comes while Ghostscript runs: its run is stopped and thrown away, the repair
    comes first, as when the check ran first (here qpdf finds nothing to repair after all)."""
    started, ended = gs_spy(monkeypatch)

    def damaged(source: Path, timeout: float) -> bool:
        assert started.wait(60)
        return True

    monkeypatch.setattr(migrate_mod, "needs_repair", damaged)
    ids = ingest_files(home, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf", pages=5)})
    outcome = migrate(home, ids["a.pdf"], "pdfa")
    assert outcome.status == "migrated" and outcome.repaired is not None
    assert outcome.repaired.status == "not-needed"
    assert len(ended) == 2 and "stopped" in ended[0] and ended[1] == "done"
    assert versions(home, ids["a.pdf"]) == ["v1", "v2"]
    assert [f.logical_path for f in derivatives(home, ids["a.pdf"])] == ["preservation/r/a.pdf"]
    assert_consistent(home)


def test_a_failed_check_beside_ghostscript_is_reported_before_it(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, ended = gs_spy(monkeypatch)

    def times_out(source: Path, timeout: float) -> bool:
        assert started.wait(60)
        raise ToolTimeout("qpdf", timeout)

    monkeypatch.setattr(migrate_mod, "needs_repair", times_out)
    ids = ingest_files(home, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf", pages=5)})
    with pytest.raises(ToolTimeout) as err:
        migrate(home, ids["a.pdf"], "pdfa")
    assert err.value.code == "PRS001"
    assert len(ended) == 1 and "stopped" in ended[0]
    assert versions(home, ids["a.pdf"]) == ["v1"] and derivatives(home, ids["a.pdf"]) == []
    assert_consistent(home)


def test_damage_only_qpdf_sees_gives_the_same_outcome(home: Settings, tmp_path: Path) -> None:
    """Stream damage the ingest's probe does not look for: the check beside Ghostscript finds it, the repair
    cannot mend it — PRS008, as when the check ran first — and nothing is stored."""
    ids = ingest_files(home, tmp_path, {"s.pdf": make_bad_stream_pdf(tmp_path / "s.pdf")})
    with db.read_session(home) as s:
        file = s.get(File, ids["s.pdf"])
        assert file is not None and file.properties["damaged"] is False
    with pytest.raises(Unrepairable) as err:
        migrate(home, ids["s.pdf"], "pdfa")
    assert err.value.code == "PRS008"
    assert versions(home, ids["s.pdf"]) == ["v1"] and derivatives(home, ids["s.pdf"]) == []
    assert_consistent(home)


def test_failure_leaves_nothing_and_is_reported(home: Settings, tmp_path: Path) -> None:
    ids = ingest_files(home, tmp_path, {"g.pdf": make_garbage_pdf(tmp_path / "g.pdf")})
    with pytest.raises(Unrepairable) as caught:
        migrate(home, ids["g.pdf"], "pdfa")
    assert versions(home, ids["g.pdf"]) == ["v1"]
    assert leftover_staging(home) == []
    jobs.mark_failed(home, ids["g.pdf"], "pdfa", caught.value)
    (job,) = jobs.list_jobs(home, states=["failed"])
    assert job.reason_code == "PRS008" and "repaired" in (job.reason or "")
    assert migration_events(home, "failure") == 1
    assert_consistent(home)


def test_dispatch_makes_jobs_and_records_risks(home: Settings, tmp_path: Path) -> None:
    ids = ingest_files(
        home,
        tmp_path,
        {
            "a.pdf": make_pdf(tmp_path / "a.pdf"),
            "b.jpg": make_image(tmp_path / "b.jpg", "JPEG"),
            "c.ofd": make_ofd(tmp_path / "c.ofd"),
        },
    )
    plan = jobs.plan_pending(home)
    assert (plan.files, plan.risks) == (3, 1)
    assert sorted((w.file_id, w.action) for w in plan.work) == sorted(
        [(ids["a.pdf"], "pdfa"), (ids["b.jpg"], "image-tiff"), (ids["b.jpg"], "image-access-jpeg")]
    )
    assert jobs.plan_pending(home).work == []  # claimed: nothing new, leases not run out
    states = {(j.path, j.action): (j.state, j.outcome) for j in jobs.list_jobs(home)}
    assert states[("originals/r/c.ofd", "risk")] == ("done", "risk")
    assert states[("originals/r/a.pdf", "pdfa")] == ("queued", None)
    assert migration_events(home, "warning") == 1
