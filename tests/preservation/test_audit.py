"""Fixity audits (preservation/audit/): real ingests into a temporary home, then faults injected by hand."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from archive import db, services
from archive.config import Settings
from archive.errors import UnknownArchive
from archive.events import FIXITY_CHECK, RECOVERY, REPLICATION, verify_chain
from archive.home import init_home, store_for
from archive.models import Event, File, FileRole, Record
from archive.storage import validate_root
from ingest.pipeline import ingest
from preservation.audit import AuditProgress, make_replica, run_audit
from preservation.audit import plan as plan_mod
from preservation.audit import run as run_mod
from preservation.audit import scope as scope_mod
from tests.conftest import REGION
from tests.e2e.helpers import simple_bag

GZ_RECORDS = [
    (
        "文书",
        "GZ·WS-2020-0001",
        "关于档案移交的通知",
        "第一份文件：关于做好档案移交工作的通知。\n".encode() * 50,
    ),
    ("照片", "GZ·ZP-2020-0002", "珠江夜景", os.urandom(300_000)),
    ("会计", "GZ·KJ-2020-0003", "年度预算", b"budget 2020\n" * 2000),
]
GD_RECORDS = [("文书", "GD·WS-1990-0001", "省档案馆通知", "广东省档案馆\n".encode() * 100)]


def _ingest_all(settings: Settings, work: Path) -> None:
    for archive, records in (("GZ", GZ_RECORDS), ("GD", GD_RECORDS)):
        bag = simple_bag(work / f"bag-{archive}", records)
        result = ingest(bag, archive, settings)
        assert result.stored, result.as_dict()


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite home with real ingests (GZ: 3 records, GD: 1), copied for every test that damages it."""
    base = tmp_path_factory.mktemp("audit-template")
    settings = Settings(home=base / "home", database_url=None)
    init_home(settings)
    with db.write_session(settings) as s:
        for code, name, level, parent in REGION:
            services.add_archive(s, code, name_zh=name, name_en=None, level=level, parent=parent)
    _ingest_all(settings, base)
    db.get_engine(settings).dispose()
    db.dispose_engines()
    return base / "home"


@pytest.fixture
def stocked(template_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    home = tmp_path / "home"
    shutil.copytree(template_home, home, symlinks=True)
    monkeypatch.setenv("ARCHIVE_HOME", str(home))
    monkeypatch.delenv("ARCHIVE_DATABASE_URL", raising=False)
    settings = Settings()
    yield settings
    db.get_engine(settings).dispose()
    db.dispose_engines()


# -- helpers -----------------------------------------------------------------------------------------------


def object_of(settings: Settings, code: str) -> tuple[str, Path]:
    with db.read_session(settings) as s:
        oid = s.execute(select(Record.ocfl_object_id).where(Record.archival_code == code)).scalar_one()
    return oid, store_for(settings).object_path(oid)


def original(settings: Settings, code: str) -> tuple[Path, File]:
    """The content file of the record's (only) original, and its catalogue row."""
    oid, obj = object_of(settings, code)
    with db.read_session(settings) as s:
        row = s.execute(
            select(File).join(Record).where(Record.archival_code == code, File.role == FileRole.original)
        ).scalar_one()
    inv = store_for(settings).read_inventory(oid)
    digest = next(d for d, lps in inv["versions"]["v1"]["state"].items() if row.logical_path in lps)
    return obj / inv["manifest"][digest][0], row


def expected_totals(settings: Settings, object_ids: set[str] | None = None) -> tuple[int, int, int]:
    """Objects, content files and bytes, counted independently of the audit."""
    store = store_for(settings)
    objects = files = nbytes = 0
    for oid in store.iter_objects():
        if object_ids is not None and oid not in object_ids:
            continue
        objects += 1
        for paths in store.read_inventory(oid)["manifest"].values():
            for p in paths:
                files += 1
                nbytes += (store.object_path(oid) / p).stat().st_size
    return objects, files, nbytes


def events(settings: Settings, event_type: str) -> list[Event]:
    with db.read_session(settings) as s:
        return list(
            s.execute(select(Event).where(Event.event_type == event_type).order_by(Event.id)).scalars()
        )


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def flip_byte(path: Path, offset: int = 10) -> bytes:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


# -- a clean run -------------------------------------------------------------------------------------------


def test_clean_audit_on_both_databases(any_home: Settings, tmp_path: Path) -> None:
    _ingest_all(any_home, tmp_path)
    with db.write_session(any_home) as s:
        s.execute(update(File).values(last_fixity_at=None))
    seen: list[AuditProgress] = []

    report = run_audit(any_home, progress=lambda p: seen.append(dataclasses.replace(p)))

    objects, files, nbytes = expected_totals(any_home)
    assert objects == 6  # 4 records + 2 transfer objects
    assert report.ok and report.intact and not report.failures
    assert (report.objects, report.files, report.bytes) == (objects, files, nbytes)
    assert report.scope == {"archive": None, "since": None, "algorithms": ["sha512"]}
    assert seen and seen[-1].objects_done == objects == seen[-1].objects_total
    assert report.report_dir == any_home.home_dir / "audits" / report.run_id
    for name in ("report.json", "report.csv", "summary.txt", "report.sha256"):
        assert (report.report_dir / name).is_file()
    body = json.loads(report.report_json.read_bytes())  # type: ignore[union-attr]
    assert body["ok"] is True and body["totals"]["files"] == files and body["failures"] == []
    assert body["throughput_mb_s"] >= 0 and body["duration_seconds"] > 0

    # the auditor's re-check: sha256 of the report file == the value the event log holds
    (summary,) = events(any_home, FIXITY_CHECK)
    assert summary.outcome == "success" and summary.object_type == "node"
    assert summary.object_id == f"audit:{report.run_id}" and summary.identifier == report.event_identifier
    recorded = summary.outcome_detail["report_sha256"]
    for name in ("report.json", "report.csv", "summary.txt"):
        assert hashlib.sha256((report.report_dir / name).read_bytes()).hexdigest() == recorded[name]
    if shutil.which("sha256sum"):
        check = subprocess.run(
            ["sha256sum", "-c", "report.sha256"],
            cwd=report.report_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    with db.read_session(any_home) as s:
        assert verify_chain(s).ok
        assert all(f.last_fixity_at is not None for f in s.execute(select(File)).scalars())
    csv_bytes = report.report_csv.read_bytes()  # type: ignore[union-attr]
    assert csv_bytes.startswith(b"\xef\xbb\xbf") and "档号" in csv_bytes.decode("utf-8-sig")
    summary_text = report.summary_txt.read_text("utf-8")  # type: ignore[union-attr]
    assert "通过" in summary_text and "PASSED" in summary_text


# -- injected faults ---------------------------------------------------------------------------------------


def test_bit_rot_is_detected_with_both_digests(stocked: Settings) -> None:
    path, row = original(stocked, "GZ·ZP-2020-0002")
    damaged = flip_byte(path, 12345)

    report = run_audit(stocked)

    assert not report.ok
    (f,) = report.failures
    assert f.kind == "bitrot"
    assert (f.archive, f.archival_code, f.logical_path, f.version) == (
        "GZ",
        "GZ·ZP-2020-0002",
        row.logical_path,
        "v1",
    )
    assert f.content_path == f"v1/content/{row.logical_path}"
    assert f.expected_sha512 == row.sha512 and f.actual_sha512 == sha512(damaged)
    assert f.expected_sha256 == row.sha256 and f.expected_size == f.actual_size == row.size
    assert f.file_id == row.id and not f.repaired
    # one failure event for the object, and the run's summary is the alert
    fixity = events(stocked, FIXITY_CHECK)
    per_object = [e for e in fixity if e.object_type == "record"]
    assert len(per_object) == 1 and per_object[0].outcome == "failure"
    assert per_object[0].outcome_detail["failures"][0]["content_path"] == f.content_path
    alert = fixity[-1]
    assert (
        alert.object_type == "node"
        and alert.outcome == "failure"
        and (alert.detail or "").startswith("ALERT")
    )
    # the damaged file is not marked verified; the others are
    with db.read_session(stocked) as s:
        assert s.get(File, row.id).last_fixity_at == row.last_fixity_at  # type: ignore[union-attr]
    rows = list(csv.reader(io.StringIO(report.report_csv.read_bytes().decode("utf-8-sig"))))  # type: ignore[union-attr]
    assert (
        len(rows) == 2
        and rows[1][0] == "bitrot"
        and rows[1][1] == "比特损坏"
        and rows[1][3] == "GZ·ZP-2020-0002"
    )
    assert rows[1][9] == sha512(damaged)


def test_truncation_is_detected(stocked: Settings) -> None:
    path, row = original(stocked, "GZ·KJ-2020-0003")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    (f,) = run_audit(stocked).failures

    assert f.kind == "truncated"
    assert (f.expected_size, f.actual_size) == (row.size, row.size // 2)
    assert f.actual_sha512 == sha512(data[: len(data) // 2]) and f.expected_sha512 == row.sha512


def test_deleted_file_is_detected(stocked: Settings) -> None:
    path, row = original(stocked, "GZ·WS-2020-0001")
    files = expected_totals(stocked)[1]
    path.unlink()

    report = run_audit(stocked)

    (f,) = report.failures
    assert f.kind == "missing" and f.logical_path == row.logical_path and f.actual_sha512 is None
    assert report.files == files - 1


def test_extra_file_in_a_content_directory_is_detected(stocked: Settings) -> None:
    _oid, obj = object_of(stocked, "GD·WS-1990-0001")
    stray = obj / "v1" / "content" / "originals" / "夹带.txt"
    stray.write_bytes(b"not listed anywhere")

    (f,) = run_audit(stocked, archive="GD").failures

    assert f.kind == "extra" and f.content_path == "v1/content/originals/夹带.txt" and f.actual_size == 19
    assert f.archival_code == "GD·WS-1990-0001"


def test_tampered_inventory_is_detected(stocked: Settings) -> None:
    oid, obj = object_of(stocked, "GZ·WS-2020-0001")
    inv = json.loads((obj / "inventory.json").read_bytes())
    digest = next(iter(inv["manifest"]))
    inv["manifest"]["0" * 128] = inv["manifest"].pop(digest)
    (obj / "inventory.json").write_text(json.dumps(inv, ensure_ascii=False, indent=2) + "\n", "utf-8")

    report = run_audit(stocked)

    kinds = sorted((f.kind, f.detail) for f in report.failures)
    assert [k for k, _ in kinds] == ["inventory", "inventory"], kinds
    assert any("sidecar" in d for _, d in kinds) and any("head version" in d for _, d in kinds)
    assert all(f.object_id == oid and f.content_path == "inventory.json" for f in report.failures)
    sidecar = next(f for f in report.failures if "sidecar" in f.detail)
    assert sidecar.actual_sha512 == sha512((obj / "inventory.json").read_bytes())
    assert sidecar.expected_sha512 == (obj / "inventory.json.sha512").read_text().split()[0]


def test_root_inventory_differing_from_the_head_version_is_detected(stocked: Settings) -> None:
    oid, obj = object_of(stocked, "GZ·KJ-2020-0003")
    inv = json.loads((obj / "inventory.json").read_bytes())
    inv["versions"]["v1"]["message"] = "rewritten"
    data = (json.dumps(inv, ensure_ascii=False, indent=2) + "\n").encode()
    (obj / "inventory.json").write_bytes(data)
    (obj / "inventory.json.sha512").write_text(f"{sha512(data)}  inventory.json\n")  # a consistent forgery

    (f,) = run_audit(stocked).failures

    assert f.kind == "inventory" and "head version" in f.detail and f.object_id == oid and f.version == "v1"


def test_garbage_inventory_is_reported_and_content_still_checked(stocked: Settings) -> None:
    _oid, obj = object_of(stocked, "GZ·KJ-2020-0003")
    path, _row = original(stocked, "GZ·KJ-2020-0003")
    (obj / "inventory.json").write_bytes(b"{not json")
    flip_byte(path)

    failures = sorted(run_audit(stocked).failures, key=lambda f: (f.kind, f.detail))

    # the root inventory is reported (sidecar, not an inventory); the content is judged by v1/inventory.json
    assert [f.kind for f in failures] == ["bitrot", "inventory", "inventory"]
    assert "sidecar" in failures[1].detail and "not a valid OCFL inventory" in failures[2].detail


def test_missing_object_is_detected(stocked: Settings) -> None:
    oid, obj = object_of(stocked, "GD·WS-1990-0001")
    shutil.rmtree(obj)

    (f,) = run_audit(stocked).failures

    assert f.kind == "missing" and f.object_id == oid and "not in the storage root" in f.detail
    assert f.archival_code == "GD·WS-1990-0001"


def test_inventory_pointing_outside_the_object_is_refused(stocked: Settings) -> None:
    _oid, obj = object_of(stocked, "GD·WS-1990-0001")
    inv = json.loads((obj / "inventory.json").read_bytes())
    digest = next(iter(inv["manifest"]))
    inv["manifest"][digest] = ["v1/content/../../../../../../etc/passwd"]
    data = (json.dumps(inv, ensure_ascii=False, indent=2) + "\n").encode()
    for where in (obj, obj / "v1"):
        (where / "inventory.json").write_bytes(data)
        (where / "inventory.json.sha512").write_text(f"{sha512(data)}  inventory.json\n")

    report = run_audit(stocked, archive="GD")

    assert any(f.kind == "inventory" and "unsafe" in f.detail for f in report.failures)
    assert not any(f.content_path and "passwd" in f.content_path for f in report.failures)


def test_catalogue_disagreement_is_reported(stocked: Settings) -> None:
    _path, row = original(stocked, "GZ·WS-2020-0001")
    with db.write_session(stocked) as s:
        s.execute(update(File).where(File.id == row.id).values(size=row.size + 1))

    (f,) = run_audit(stocked).failures

    assert f.kind == "catalogue" and "size" in f.detail and f.expected_size == row.size + 1


def test_deep_audit_checks_sha256_too(stocked: Settings) -> None:
    _path, row = original(stocked, "GZ·WS-2020-0001")
    with db.write_session(stocked) as s:
        s.execute(update(File).where(File.id == row.id).values(sha256="0" * 64))

    assert run_audit(stocked).ok  # the default audit computes sha512 only
    report = run_audit(stocked, algorithms=("sha512", "sha256"), resume=False)

    (f,) = report.failures
    assert f.kind == "catalogue" and "sha256" in f.detail
    assert f.actual_sha256 == hashlib.sha256(_path.read_bytes()).hexdigest()


def test_every_version_is_checked_not_only_the_head(stocked: Settings) -> None:
    oid, _obj = object_of(stocked, "GZ·KJ-2020-0003")
    path, row = original(stocked, "GZ·KJ-2020-0003")
    store = store_for(stocked)
    builder = store.begin_version(oid)
    builder.add_bytes("preservation/年度预算.txt", b"converted\n")
    builder.remove(row.logical_path)  # the original is now only in v1's state
    store.commit(builder, message="migration", user_name="test")
    new = next(cf for cf in store.content_files(oid) if cf.logical_path.startswith("preservation/"))
    with db.write_session(stocked) as s:
        s.add(
            File(
                record_id=row.record_id,
                logical_path=new.logical_path,
                size=10,
                sha256=new.fixity["sha256"],
                sha512=new.sha512,
                role=FileRole.preservation,
                derived_from_id=row.id,
                ocfl_version="v2",
            )
        )
    clean = run_audit(stocked)
    assert clean.ok, clean.failures

    flip_byte(path)
    (f,) = run_audit(stocked).failures

    assert f.kind == "bitrot" and f.version == "v1" and f.logical_path == row.logical_path


# -- replica repair ----------------------------------------------------------------------------------------


def test_replica_repairs_bit_rot_and_a_deleted_file(stocked: Settings, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    first = make_replica(stocked, replica)
    assert first.files_copied > 0
    # the run's own event went into the root's catalogue journal after it copied: only that file again
    assert make_replica(stocked, replica, record_event=False).files_copied == 1
    assert make_replica(stocked, replica).files_copied == 0  # idempotent
    assert events(stocked, REPLICATION)[-1].outcome_detail["files_copied"] == 0
    rotten, row = original(stocked, "GZ·ZP-2020-0002")
    good = rotten.read_bytes()
    flip_byte(rotten)
    gone, gone_row = original(stocked, "GD·WS-1990-0001")
    gone_bytes = gone.read_bytes()
    gone.unlink()

    report = run_audit(stocked, replica_root=replica)

    assert not report.ok and report.intact and report.repaired == 2
    assert sorted(f.kind for f in report.failures) == ["bitrot", "missing"]
    assert rotten.read_bytes() == good and gone.read_bytes() == gone_bytes
    recoveries = events(stocked, RECOVERY)
    assert len(recoveries) == 2 and all(e.outcome == "success" for e in recoveries)
    assert {e.outcome_detail["content_path"] for e in recoveries} == {
        f"v1/content/{row.logical_path}",
        f"v1/content/{gone_row.logical_path}",
    }
    assert not list((stocked.staging_dir / "audit-repair").iterdir())
    with db.read_session(stocked) as s:
        assert s.get(File, row.id).last_fixity_at is not None  # type: ignore[union-attr]

    again = run_audit(stocked, replica_root=replica)
    assert again.ok and not again.failures
    for root in (stocked.ocfl_root, replica):  # the independent validator agrees with both roots
        ok, messages = validate_root(root)
        assert ok, messages


def test_bad_replica_copy_does_not_repair(stocked: Settings, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    make_replica(stocked, replica)
    rotten, row = original(stocked, "GZ·ZP-2020-0002")
    damaged = flip_byte(rotten, 100)
    flip_byte(replica / rotten.relative_to(stocked.ocfl_root), 200)

    report = run_audit(stocked, replica_root=replica)

    (f,) = report.failures
    assert f.kind == "bitrot" and not f.repaired and "damaged too" in (f.repair_detail or "")
    assert not report.intact and rotten.read_bytes() == damaged
    (recovery,) = events(stocked, RECOVERY)
    assert recovery.outcome == "failure" and recovery.outcome_detail["replica_sha512"] != row.sha512


# -- scope -------------------------------------------------------------------------------------------------


def test_since_audits_the_oldest_verified_objects_only(stocked: Settings) -> None:
    run_audit(stocked)
    now = dt.datetime.now(dt.UTC)
    with db.write_session(stocked) as s:
        ids = {code: rid for code, rid in s.execute(select(Record.archival_code, Record.id))}
        s.execute(
            update(File)
            .where(File.record_id == ids["GZ·KJ-2020-0003"])
            .values(last_fixity_at=now - dt.timedelta(days=40))
        )
        s.execute(update(File).where(File.record_id == ids["GZ·WS-2020-0001"]).values(last_fixity_at=None))
    order: list[str] = []
    real_plan = plan_mod.plan_object

    def spy(obj_dir: Path, target: scope_mod.Target) -> plan_mod.Plan:
        order.append(target.object_id)
        return real_plan(obj_dir, target)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_mod, "plan_object", spy)
        report = run_audit(stocked, since=now - dt.timedelta(days=30), workers=1)

    gz_transfer = next(o for o in order if ":transfer:" in o)
    assert order == [
        "urn:pearl-archive:GZ:GZ·WS-2020-0001",
        gz_transfer,
        "urn:pearl-archive:GZ:GZ·KJ-2020-0003",
    ]
    assert report.ok and report.objects == 3
    assert report.scope["since"] == (now - dt.timedelta(days=30)).isoformat()
    with db.read_session(stocked) as s:
        stamps = {f.record_id: f.last_fixity_at for f in s.execute(select(File)).scalars()}
    assert all(v is not None for v in stamps.values())
    # nothing is due any more
    assert run_audit(stocked, since=now - dt.timedelta(days=30)).objects == 0


def test_archive_filter(stocked: Settings) -> None:
    flip_byte(original(stocked, "GZ·ZP-2020-0002")[0])  # outside the scope below

    report = run_audit(stocked, archive="gd")

    gd_objects = {o for o in store_for(stocked).iter_objects() if o.startswith("urn:pearl-archive:GD:")}
    assert len(gd_objects) == 2  # the record and its transfer
    assert report.ok and (report.objects, report.files, report.bytes) == expected_totals(stocked, gd_objects)
    assert report.scope["archive"] == "GD"
    with pytest.raises(UnknownArchive):
        run_audit(stocked, archive="NOPE")


def test_uncatalogued_object_is_audited_but_not_a_failure(stocked: Settings) -> None:
    store = store_for(stocked)
    b = store.begin_object("urn:pearl-archive:GZ:孤儿")
    b.add_bytes("x.txt", b"orphan")
    store.commit(b, message="test", user_name="test")

    report = run_audit(stocked)

    assert report.ok and report.uncatalogued_objects == 1 and report.objects == 7


# -- interruption ------------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def test_resume_after_interruption_does_not_rehash_finished_objects(stocked: Settings) -> None:
    total_objects, total_files, total_bytes = expected_totals(stocked)

    def stop_after_two_objects(p: AuditProgress) -> None:
        if p.objects_done >= 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_audit(stocked, progress=stop_after_two_objects, workers=1)

    (run_dir,) = (stocked.home_dir / "audits").iterdir()
    state = json.loads((run_dir / "run.json").read_bytes())
    assert state["status"] == "running" and state["sessions"][0]["interrupted"] is True
    done = [json.loads(line)["object"] for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert len(done) == 2
    done_dirs = [store_for(stocked).object_path(o) for o in done]
    with db.read_session(stocked) as s:
        assert not [
            e
            for e in s.execute(select(Event).where(Event.object_type == "node")).scalars()
            if e.event_type == FIXITY_CHECK
        ]

    hashed: list[Path] = []
    real_hash = plan_mod.hash_file

    def recording_hash(path: Path, algorithms: tuple[str, ...] = ("sha512",)) -> tuple[int, dict[str, str]]:
        hashed.append(path)
        return real_hash(path, algorithms)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan_mod, "hash_file", recording_hash)
        report = run_audit(stocked)

    assert report.run_id == run_dir.name and len(report.sessions) == 2
    assert hashed and not [p for p in hashed if any(d in p.parents for d in done_dirs)]
    assert (report.objects, report.files, report.bytes) == (total_objects, total_files, total_bytes)
    assert report.ok and json.loads((run_dir / "run.json").read_bytes())["status"] == "finished"
    # a finished run is not resumed: the next audit is a new run
    assert run_audit(stocked).run_id != report.run_id


def test_resume_false_starts_over(stocked: Settings) -> None:
    def stop(p: AuditProgress) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        run_audit(stocked, progress=stop)
    report = run_audit(stocked, resume=False)
    assert len(report.sessions) == 1 and report.objects == expected_totals(stocked)[0]


def test_no_repair_when_catalogue_and_inventory_disagree(stocked: Settings, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    make_replica(stocked, replica)
    rotten, row = original(stocked, "GZ·WS-2020-0001")
    damaged = flip_byte(rotten)
    with db.write_session(stocked) as s:
        s.execute(update(File).where(File.id == row.id).values(sha512="f" * 128))

    (f,) = run_audit(stocked, replica_root=replica).failures

    assert f.kind == "bitrot" and not f.repaired and "disagree" in (f.repair_detail or "")
    assert rotten.read_bytes() == damaged
    (recovery,) = events(stocked, RECOVERY)
    assert recovery.outcome == "failure" and recovery.outcome_detail["replica_sha512"] is None
