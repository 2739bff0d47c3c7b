"""A transfer killed at any point leaves nothing behind, and several ingests at once finish or refuse cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive import db
from archive.config import Settings
from archive.events import verify_chain
from archive.home import leftover_staging, recover_transfers
from tests.e2e.helpers import (
    archive_cmd,
    catalogue_counts,
    ingest_json,
    many_file_bag,
    simple_bag,
    stored_objects,
)

CRASH_POINTS = ["ingest:verified", "ingest:journaled", "ingest:object-stored", "ingest:catalogue-flushed"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_ingest_is_rolled_back(any_home: Settings, tmp_path: Path, point: str) -> None:
    bag = simple_bag(
        tmp_path / "bag", [(f"f{i}", f"GZ-9-{i:04d}", f"件{i}", os.urandom(5000)) for i in range(5)]
    )
    proc = archive_cmd("ingest", str(bag), "--archive", "GZ", "--json", env={"ARCHIVE_FAILPOINT": point})
    assert proc.returncode == -9, proc.stderr  # killed by SIGKILL at the point
    rolled = recover_transfers(any_home)
    assert len(rolled) == 1
    assert catalogue_counts(any_home) == (0, 0)
    assert stored_objects(any_home) == []
    assert leftover_staging(any_home) == []
    transfers = json.loads(archive_cmd("transfers", "--json").stdout)
    assert transfers[0]["status"] == "interrupted"
    code, result = ingest_json(bag, "GZ")  # the next ingest works
    assert code == 0, result
    assert catalogue_counts(any_home) == (5, 5)
    with db.read_session(any_home) as s:
        assert verify_chain(s).ok


def test_kill_after_commit_keeps_the_transfer(home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "bag", [("a", "GZ-8-0001", "甲", b"one\n")])
    proc = archive_cmd("ingest", str(bag), "--archive", "GZ", env={"ARCHIVE_FAILPOINT": "ingest:committed"})
    assert proc.returncode == -9
    recover_transfers(home)
    assert catalogue_counts(home) == (1, 1)
    assert len(stored_objects(home)) == 2  # the record and the transfer object


def test_kill_at_random_moments(home: Settings, tmp_path: Path) -> None:
    """SIGKILL from outside at several moments of a larger transfer; every time nothing or everything."""
    bag = many_file_bag(tmp_path / "big", "GZ-7-0001", n=300)
    for delay in (0.3, 0.8, 1.5, 2.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "archive", "ingest", str(bag), "--archive", "GZ"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        recover_transfers(home)
        records, files = catalogue_counts(home)
        objects = stored_objects(home)
        assert (records, len(objects)) in {(0, 0), (1, 2)}, (records, files, objects)
        if records:
            break
    with db.read_session(home) as s:
        assert verify_chain(s).ok


def test_concurrent_ingests(any_home: Settings, tmp_path: Path) -> None:
    """Six processes at once: four distinct bags, the same bag twice; one code clash among the distinct ones."""
    bags = [
        simple_bag(
            tmp_path / f"b{i}",
            [(f"r{i}-{j}", f"GZ-6-{i}{j:03d}", f"件{j}", os.urandom(3000)) for j in range(3)],
        )
        for i in range(3)
    ]
    clash = simple_bag(
        tmp_path / "clash", [("c", "GZ-6-0000", "重复档号", b"clash\n")]
    )  # same code as bags[0]
    jobs = [*bags, clash, bags[1]]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "archive", "ingest", str(b), "--archive", "GZ", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for b in jobs
    ]
    outputs = [(p, *p.communicate(timeout=600)) for p in procs]  # wait for every one before judging
    results = []
    for p, out, err in outputs:
        assert p.returncode in (0, 1), err
        assert out.strip(), err
        results.append((p.returncode, json.loads(out)))
    stored = [r for code, r in results if code == 0]
    refused = [r for code, r in results if code == 1]
    # bags[1] twice: exactly one stored; bags[0] and clash share a code: exactly one stored
    assert len(stored) == 3 and len(refused) == 2, results
    refusal_codes = {e["code"] for r in refused for e in r["errors"]}
    assert refusal_codes <= {"ING002", "ING003"}, refusal_codes
    records, _ = catalogue_counts(any_home)
    assert records == sum(r["records"] for r in stored)
    assert len(stored_objects(any_home)) == records + len(stored)
    with db.read_session(any_home) as s:
        assert verify_chain(s).ok


def test_any_command_sweeps_staging_left_by_dead_writers(home: Settings, tmp_path: Path) -> None:
    """A writer killed between creating its staging folder and locking it leaves an empty ``ocfl-txn-*``; one
    killed after its catalogue commit leaves its (unlocked) staging batch. Neither needs a rollback, and the
    next command of any kind sweeps both."""
    bag = simple_bag(tmp_path / "bag", [("a", "GZ-5-0001", "甲", b"one\n")])
    proc = archive_cmd("ingest", str(bag), "--archive", "GZ", env={"ARCHIVE_FAILPOINT": "ingest:committed"})
    assert proc.returncode == -9
    (home.staging_dir / "ocfl-txn-0123456789abcdef").mkdir()
    assert len(list(home.staging_dir.glob("ocfl-txn-*"))) == 2
    assert archive_cmd("transfers").returncode == 0
    assert leftover_staging(home) == []
    assert catalogue_counts(home) == (1, 1)  # the committed transfer is kept
