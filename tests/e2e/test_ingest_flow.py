"""End to end: the `archive` command on a real ARCHIVE_HOME (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.events import VALIDATION, verify_chain
from archive.home import leftover_staging
from archive.models import Event, Record
from archive.services import get_record
from archive.storage import validate_root
from ingest.bagwriter import make_bag, write_payload
from tests.e2e.helpers import archive_cmd, catalogue_counts, ingest_json, simple_bag, stored_objects


def _ocfl_validate(root: Path) -> None:
    """ocfl-py's validator, root and every object (its CLI passes a root with a broken object)."""
    ok, messages = validate_root(root, use_cli=True)
    assert ok, messages


def test_demo_builds_a_region_and_stores_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_HOME", str(tmp_path / "home"))
    proc = archive_cmd("demo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("stored") >= 3 and "rejected" in proc.stdout
    listing = json.loads(archive_cmd("records", "list", "--json").stdout)
    by_code = {r["archival_code"]: r for r in listing}
    assert by_code["GD-001-1995-永久-0001"]["access_status"] == "open"  # older than 25 years
    assert by_code["GD-001-2016-30年-0002"]["access_status"] == "restricted"  # too recent
    assert by_code["GD-001-1990-永久-0004"]["access_status"] == "restricted"  # 秘密: never automatic
    assert by_code["GZ-030-2021-永久-0003"]["access_status"] == "restricted"  # the archivist said 控制
    assert by_code["GZ-010-1985-永久-0001"]["title"] == "广州市城市总体规划（1984—2000年）说明"  # GB18030 CSV
    assert {r["archive"] for r in listing} == {"GD", "GZ", "GZ-TH"}
    again = archive_cmd("demo")
    assert again.returncode == 0 and "already ingested" in again.stdout
    assert len(json.loads(archive_cmd("records", "list", "--json").stdout)) == len(listing)
    assert archive_cmd("events", "verify").returncode == 0
    _ocfl_validate(tmp_path / "home" / "ocfl")
    show = archive_cmd("records", "show", "GD/GD-001-1995-永久-0001", "--json")
    detail = json.loads(show.stdout)
    assert detail["file_list"][0]["puid"].startswith("fmt/")


def test_ingest_stores_files_byte_for_byte(any_home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(
        tmp_path / "bag one",
        [
            ("卷 一", "GZ-1-0001", "会议 纪要", "第一次会议\n".encode()),
            ("卷 二", "GZ-1-0002", "通知", b"notice\n"),
        ],
    )
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    assert result["records"] == 2 and result["files"] == 3  # two records + records.csv
    with db.read_session(any_home) as s:
        record = get_record(s, "GZ", "GZ-1-0001")
        assert record.title == "会议 纪要" and record.access_status == "open"
        [f] = record.files
        assert f.logical_path == "originals/卷 一/会议 纪要.txt"
        assert f.sha256 == hashlib.sha256("第一次会议\n".encode()).hexdigest()
        object_id = record.ocfl_object_id
        assert verify_chain(s).ok
    stored = [p for p in any_home.ocfl_root.rglob("会议 纪要.txt")]
    assert len(stored) == 1 and hashlib.sha256(stored[0].read_bytes()).hexdigest() == f.sha256
    inventory = json.loads(
        next(p for p in stored_objects(any_home) if object_id in (p / "inventory.json").read_text())
        .joinpath("inventory.json")
        .read_text()
    )
    assert inventory["digestAlgorithm"] == "sha512"
    _ocfl_validate(any_home.ocfl_root)


def test_rejected_transfer_leaves_nothing_and_lists_every_problem(any_home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(
        tmp_path / "bad", [("a", "GZ-2-0001", "甲", b"one\n"), ("b", "GZ-2-0002", "乙", b"two\n")]
    )
    (bag / "data/a/甲.txt").write_bytes(b"changed\n")  # fixity
    (bag / "data/stray.txt").write_bytes(b"not in the manifest\n")  # extra file
    code, result = ingest_json(bag, "GZ")
    assert code == 1
    codes = {p["code"] for p in result["errors"]}
    assert len(codes) >= 2, codes
    assert catalogue_counts(any_home) == (0, 0)
    assert stored_objects(any_home) == []
    transfers = json.loads(archive_cmd("transfers", "--json").stdout)
    assert transfers[0]["status"] == "rejected" and len(transfers[0]["problems"]) >= 2
    assert leftover_staging(any_home) == []


def test_duplicates_are_refused(any_home: Settings, tmp_path: Path) -> None:
    first = simple_bag(tmp_path / "first", [("a", "GZ-3-0001", "甲", b"one\n")])
    code, stored = ingest_json(first, "GZ")
    assert code == 0, stored
    code, again = ingest_json(first, "GZ")  # the same bag twice
    assert code == 1
    assert [p["code"] for p in again["errors"]] == ["ING003"]
    assert stored["transfer_id"] in again["errors"][0]["message_en"]
    other = simple_bag(tmp_path / "other", [("x", "GZ-3-0001", "另一件", b"other\n")])
    code, dup = ingest_json(other, "GZ")  # same 档号, different content
    assert code == 1 and dup["errors"][0]["code"] == "ING002" and dup["errors"][0]["dat_70_2018"] == "1-8"
    assert catalogue_counts(any_home) == (1, 1)  # records.csv belongs to the transfer object
    code, elsewhere = ingest_json(other, "GD")  # 档号 is unique per archive only
    assert code == 0, elsewhere


def test_exit_codes(home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "ok", [("a", "GZ-4-0001", "甲", b"one\n")])
    assert archive_cmd("ingest", str(bag), "--archive", "NOPE").returncode == 2
    assert archive_cmd("ingest", str(tmp_path / "missing"), "--archive", "GZ").returncode == 2
    assert archive_cmd("ingest", str(bag)).returncode == 2  # --archive is required
    assert archive_cmd("validate", str(bag)).returncode == 0
    (bag / "data/a/甲.txt").write_bytes(b"changed\n")
    proc = archive_cmd("validate", str(bag), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["valid"] is False
    assert archive_cmd("records", "show", "GZ/none").returncode == 1
    assert archive_cmd("records", "show", "no-slash").returncode == 2


def test_uninitialised_home_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_HOME", str(tmp_path / "nothing"))
    proc = archive_cmd("records", "list")
    assert proc.returncode == 2 and "archive init" in proc.stderr


def test_sm3_manifest_and_recorded_sm3_digests(home: Settings, tmp_path: Path) -> None:
    """GB/T 32905 SM3: accepted as a bag manifest, and recorded per file when configured."""
    bag = tmp_path / "sm3"
    write_payload(bag, {"data/卷/文件.txt": "国密算法\n".encode()})
    make_bag(bag, algorithms=("sm3",))
    code, result = ingest_json(bag, "GZ", env={"ARCHIVE_EXTRA_DIGESTS": "sm3"})
    assert code == 0, result
    with db.read_session(home) as s:
        [f] = get_record(s, "GZ", "卷").files
    assert f.digests["sm3"] == hashlib.new("sm3", "国密算法\n".encode()).hexdigest()


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def stage(self, name: str, total_files: int = 0, total_bytes: int = 0) -> None:
        self.calls.append(("stage", name, total_files, total_bytes))

    def advance(self, files: int, nbytes: int) -> None:
        self.calls.append(("advance", files, nbytes))


def test_progress_reports_every_stage_with_identification_in_files_and_bytes(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identification is the longest stage of a big ingest: it gets its own files/bytes progress."""
    from ingest import identify
    from ingest.pipeline import ingest

    monkeypatch.setattr(identify, "BATCH", 2)  # several Siegfried batches, so several steps
    bag = simple_bag(
        tmp_path / "bag",
        [(f"卷{i}", f"GZ-9-000{i}", f"题名{i}", f"内容 {i}\n".encode() * (i + 1)) for i in range(5)],
    )
    recorder = _Recorder()
    result = ingest(bag, "GZ", home, recorder)
    assert result.stored, result.problems
    stages = [c for c in recorder.calls if c[0] == "stage"]
    assert [c[1] for c in stages] == ["open", "verify", "identify", "check", "store"]
    total = sum(f.stat().st_size for f in (bag / "data").rglob("*") if f.is_file())
    at = recorder.calls.index(stages[2])
    assert stages[2] == ("stage", "identify", 6, total)  # five records and records.csv
    steps = [c for c in recorder.calls[at:] if c[0] == "advance"]
    assert steps[-1] == ("advance", 6, total)
    assert [c[1] for c in steps] == sorted(c[1] for c in steps)  # never backwards
    assert all(0 <= c[2] <= total for c in steps)


def test_a_records_validation_event_names_its_own_warnings_only(home: Settings, tmp_path: Path) -> None:
    """Each record's validation event lists the warnings of its own files and the transfer's counts per
    code — not every warning of the transfer (that grew as records × warnings)."""
    noise = bytes(range(256)) * 64  # no PRONOM match: IDN003, a warning
    bag = simple_bag(
        tmp_path / "warn",
        [
            ("a", "GZ-W-0001", "甲", noise),
            ("b", "GZ-W-0002", "乙", noise),
            ("c", "GZ-W-0003", "丙", b"text\n"),
        ],
    )
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    with db.read_session(home) as s:
        rows = s.execute(
            select(Record.archival_code, Event.outcome_detail)
            .join(Event, Event.record_id == Record.id)
            .where(Event.event_type == VALIDATION)
        ).all()
    details = {c: d for c, d in rows}
    assert set(details) == {"GZ-W-0001", "GZ-W-0002", "GZ-W-0003"}
    assert details["GZ-W-0001"]["warnings"] == details["GZ-W-0002"]["warnings"]
    assert "IDN003" in details["GZ-W-0001"]["warnings"]
    assert details["GZ-W-0003"]["warnings"] == []
    assert all(d["transfer_warnings"].get("IDN003") == 2 for d in details.values())
