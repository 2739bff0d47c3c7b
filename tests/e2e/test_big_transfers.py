"""Transfers of real size: tens of thousands of records (件) under a low open-file limit, and thousands of
problems kept whole in a file while every output stays bounded."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import ingest.pipeline as pipeline
from archive import db
from archive.config import Settings
from archive.home import leftover_staging
from archive.models import File, Outbox, Transfer
from ingest.bagwriter import make_bag, write_payload
from tests.e2e.helpers import CSV_HEADER, archive_cmd, catalogue_counts, ingest_json, stored_objects


def records_bag(root: Path, count: int, *, prefix: str = "GZ-BIG") -> Path:
    """A bag of ``count`` records of one tiny file each, described in records.csv."""
    rows = [CSV_HEADER]
    payload: dict[str, bytes] = {}
    for i in range(count):
        path = f"卷{i // 1000:03d}/件{i:06d}.txt"
        payload[f"data/{path}"] = f"第 {i} 件\n".encode()
        rows.append(f"{path},{prefix}-{i:06d},件{i},测试单位,1990-01-01,永久,公开,自动\r\n")
    payload["data/metadata/records.csv"] = "".join(rows).encode()
    write_payload(root, payload)
    return make_bag(root, algorithms=("sha256",))


def _limit_open_files(n: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fifty_thousand_records_under_a_low_open_file_limit(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 50_000
    bag = records_bag(tmp_path / "bag", count)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "archive", "ingest", str(bag), "--archive", "GZ", "--json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        preexec_fn=lambda: _limit_open_files(256),
        timeout=1200,
        check=False,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "stored" and result["records"] == count and result["files"] == count + 1
    assert catalogue_counts(home) == (count, count)
    assert len(stored_objects(home)) == count + 1  # and the transfer's own object
    assert leftover_staging(home) == []
    with capsys.disabled():  # the figures for the closing note (never asserted: the machine is shared)
        print(
            f"\n[{count} records under ulimit -n 256] {seconds:.1f} s, "
            f"{after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:.1f} CPU-s, "
            f"peak RSS of the largest process {after.ru_maxrss / 1024:.0f} MB; stages {result['timings']}"
        )


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("count", [5, 400])
def test_open_descriptors_do_not_grow_with_the_record_count(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """Descriptors open at each stage of an ingest, 5 records against 400: the same."""
    seen: dict[str, int] = {}
    base = _descriptors()

    def failpoint(name: str) -> None:
        seen[name] = max(seen.get(name, 0), _descriptors() - base)

    monkeypatch.setattr(pipeline, "failpoint", failpoint)
    bag = records_bag(tmp_path / "bag", count, prefix=f"GZ-FD{count}")
    result = pipeline.ingest(bag, "GZ", home)
    assert result.stored and len(result.records) == count, result.problems
    assert seen.keys() >= {"ingest:verified", "ingest:journaled", "ingest:object-stored"}
    # a journal, a lock, a database connection or two, Siegfried's pipes
    assert max(seen.values()) <= 16, seen
    with db.read_session(home) as s:  # the catalogue's multi-row INSERTs: one migrate row per file, by id
        files = set(s.execute(select(File.id)).scalars())
        migrate = list(s.execute(select(Outbox.file_id).where(Outbox.topic == "migrate")).scalars())
        indexed = s.execute(select(Outbox.record_id).where(Outbox.topic == "index")).scalars().all()
    assert None not in migrate and sorted(m for m in migrate if m is not None) == sorted(files)
    assert len(files) == count
    assert len(set(indexed)) == count


def bad_rows_bag(root: Path, count: int) -> Path:
    """records.csv with ``count`` rows that each name a path missing from the payload, and no title."""
    rows = [CSV_HEADER, "a,GZ-OK-1,好的一件,测试,1990,永久,公开,自动\r\n"]
    rows.extend(f"missing/{i}.txt,GZ-BAD-{i:06d},,测试,1990,永久,公开,自动\r\n" for i in range(count))
    write_payload(root, {"data/a/one.txt": b"one\n", "data/metadata/records.csv": "".join(rows).encode()})
    return make_bag(root, algorithms=("sha256",))


def test_thousands_of_problems_are_kept_whole_in_a_file_and_shown_bounded(
    home: Settings, tmp_path: Path
) -> None:
    count = 20_000
    bag = bad_rows_bag(tmp_path / "bad", count)
    proc = archive_cmd("ingest", str(bag), "--archive", "GZ", "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert len(proc.stdout) < 100_000, len(proc.stdout)
    result = json.loads(proc.stdout)
    counts = result["problem_counts"]
    assert sum(counts.values()) >= 2 * count  # each bad row: a missing path and an empty title
    shown = home.problems_shown
    by_code: dict[str, int] = {}
    for p in result["errors"] + result["warnings"]:
        by_code[p["code"]] = by_code.get(p["code"], 0) + 1
    assert by_code == {code: min(n, shown) for code, n in counts.items()}
    more = {m["code"]: m for m in result["more_problems"]}
    assert {c: m["count"] for c, m in more.items()} == {c: n - shown for c, n in counts.items() if n > shown}
    assert all("另有" in m["message_zh"] and "more" in m["message_en"] for m in more.values())
    # every problem is in the file beside the transfer
    problem_file = Path(result["problem_file"])
    assert problem_file == pipeline.problem_file(home, result["transfer_id"])
    lines = problem_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == sum(counts.values())
    assert {json.loads(line)["code"] for line in lines} == set(counts)
    # the database row and the listing are bounded alike
    with db.read_session(home) as s:
        row = s.execute(select(Transfer).where(Transfer.id == result["transfer_id"])).scalar_one()
        assert len(row.problems) + len(row.warnings) == sum(by_code.values())
        assert row.problem_counts == counts and row.problem_file == str(problem_file)
    listing = archive_cmd("transfers", "--json")
    assert listing.returncode == 0 and len(listing.stdout) < 100_000
    (entry,) = json.loads(listing.stdout)
    assert entry["problem_counts"] == counts
    assert {m["code"]: m["count"] for m in entry["more_problems"]} == {c: m["count"] for c, m in more.items()}
    text = archive_cmd("transfers")
    assert "more" in text.stdout and "另有" in text.stdout
    plain = archive_cmd("ingest", str(bag), "--archive", "GZ")
    assert plain.returncode == 1 and len(plain.stdout) < 100_000
    assert f"另有 {counts['META012'] - shown} 个 META012" in plain.stdout and "more META012" in plain.stdout
    assert catalogue_counts(home) == (0, 0) and stored_objects(home) == []


def test_validate_shows_problems_bounded_and_writes_them_all_on_request(
    home: Settings, tmp_path: Path
) -> None:
    count = 2_000
    bag = bad_rows_bag(tmp_path / "bad", count)
    every = tmp_path / "out" / "problems.jsonl"
    proc = archive_cmd("validate", str(bag), "--json", "--problems-file", str(every))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert len(proc.stdout) < 50_000, len(proc.stdout)
    result = json.loads(proc.stdout)
    counts = result["problem_counts"]
    assert result["valid"] is False and sum(counts.values()) >= 2 * count
    shown = home.problems_shown
    assert len(result["errors"]) + len(result["warnings"]) == sum(min(n, shown) for n in counts.values())
    assert {m["code"]: m["count"] for m in result["more_problems"]} == {
        c: n - shown for c, n in counts.items() if n > shown
    }
    assert all(str(every) in m["message_en"] for m in result["more_problems"])
    assert result["problems_file"] == str(every)
    assert len(every.read_text(encoding="utf-8").splitlines()) == sum(counts.values())
    plain = archive_cmd("validate", str(bag))
    assert plain.returncode == 1 and len(plain.stdout) < 50_000
    assert f"另有 {counts['META012'] - shown} 个 META012 问题未列出" in plain.stdout


def test_a_few_problems_are_all_shown(home: Settings, tmp_path: Path) -> None:
    bag = bad_rows_bag(tmp_path / "bad", 3)
    code, result = ingest_json(bag, "GZ")
    assert code == 1
    assert sum(result["problem_counts"].values()) == len(result["errors"]) + len(result["warnings"])
    assert result["more_problems"] == []
