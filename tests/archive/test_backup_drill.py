"""``archive backup db`` / ``archive restore db`` on SQLite and PostgreSQL, and ``archive drill`` over the
primary root and the replica targets (a file system, and the real SeaweedFS S3 server), seals included."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from archive import db, services
from archive.config import Settings
from archive.events import verify_chain
from archive.models import Event, Record
from archive.recovery.rows import iter_dump
from archive.replicas import sync, targets
from archive.storage.layout import object_relpath
from ingest.pipeline import ingest
from tests.conftest import s3_env
from tests.e2e.helpers import archive_cmd, simple_bag


def dump(settings: Settings) -> list[str]:
    with db.read_session(settings) as s:
        return list(iter_dump(s))


def stored(settings: Settings, tmp: Path, n: int = 3) -> None:
    bag = simple_bag(tmp / "bag", [(f"f{i}", f"B-{i}", f"文件{i}", f"内容 {i}".encode()) for i in range(n)])
    assert ingest(bag, "GZ", settings).status == "stored"


def lose_database(settings: Settings) -> None:
    db.dispose_engines()
    if settings.database_url is None:
        for suffix in ("", "-wal", "-shm"):
            (settings.home_dir / f"catalogue.sqlite3{suffix}").unlink(missing_ok=True)
    else:
        with db.get_engine(settings).begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        db.dispose_engines()


def test_backup_and_restore(any_home: Settings, tmp_path: Path) -> None:
    stored(any_home, tmp_path)
    before = dump(any_home)
    backup = tmp_path / "backups" / "catalogue.bak"
    done = archive_cmd("backup", "db", str(backup), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == ("sqlite" if any_home.database_url is None else "postgresql")
    # a restore never writes over a catalogue that is there
    refused = archive_cmd("restore", "db", str(backup), "--json")
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"]["code"] == "RBD001"
    lose_database(any_home)
    done = archive_cmd("restore", "db", str(backup))
    assert done.returncode == 0, done.stderr
    assert dump(any_home) == before
    assert archive_cmd("events", "verify").returncode == 0


def test_restore_refuses_a_file_that_is_no_backup(home: Settings, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bak"
    junk.write_bytes(b"PGDMP not really")
    lose_database(home)
    done = archive_cmd("restore", "db", str(junk), "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["error"]["code"] == "RBD005"


def test_sqlite_backup_is_consistent_while_the_node_writes(home: Settings, tmp_path: Path) -> None:
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with db.write_session(home) as s:
                services.add_archive(
                    s, f"W{n}", name_zh=f"档案馆{n}", name_en=None, level="county", parent="GZ"
                )

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for i in range(3):
            assert archive_cmd("backup", "db", str(tmp_path / f"b{i}.sqlite3")).returncode == 0
    finally:
        stop.set()
        thread.join()
    for i in range(3):
        copy = home.model_copy()
        restored = Settings(**{**copy.model_dump(), "home": tmp_path / f"r{i}"})
        (tmp_path / f"r{i}").mkdir()
        shutil.copy(tmp_path / f"b{i}.sqlite3", tmp_path / f"r{i}" / "catalogue.sqlite3")
        with db.read_session(restored) as s:
            assert verify_chain(s).ok


def test_drill_over_primary_and_replica(home: Settings, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stored(home, tmp_path, n=4)
    replica = tmp_path / "replica"
    shutil.copytree(home.ocfl_root, replica)
    env = {"ARCHIVE_REPLICAS": str(replica)}
    done = archive_cmd("drill", "--sample", "10", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [s["objects"] for s in report["sources"]] == [4, 4]
    assert Path(report["report_file"]).is_file()
    with db.read_session(home) as s:
        event = s.execute(select(Event).where(Event.object_id == f"drill:{report['run_id']}")).scalar_one()
    assert event.outcome == "success" and event.outcome_detail["seed"] == report["seed"]
    assert not (home.home_dir / "drills" / f"scratch-{report['run_id']}").exists()

    # bit rot in the replica, and a catalogue row changed behind the log's back: both named, exit 1
    victim = next(p for p in replica.rglob("content/originals/f1/*") if p.is_file())
    victim.write_bytes(b"rot")
    with db.write_session(home) as s:
        s.execute(update(Record).where(Record.archival_code == "B-2").values(title="篡改"))
    done = archive_cmd("drill", "--sample", "10", "--seed", str(report["seed"]), "--json", env=env)
    assert done.returncode == 1
    again = json.loads(done.stdout)
    primary, copy = again["sources"]
    assert any("B-2" in p and "records.title" in p for p in primary["problems"])
    assert any("sha512 differs" in p and "f1" in p for p in copy["problems"])
    assert not any("sha512" in p for p in primary["problems"])


def test_the_drill_runs_monthly_on_the_beat(home: Settings) -> None:
    from preservation import tasks
    from preservation.celery_app import DRILL_TASK, make_app

    entry = make_app(home).conf.beat_schedule["monthly-recovery-drill"]
    assert entry["task"] == DRILL_TASK == tasks.recovery_drill.name
    assert entry["schedule"].day_of_month == {1}


@pytest.mark.parametrize("kind", ["fs", pytest.param("s3", marks=pytest.mark.s3)])
def test_drill_restores_from_every_replica_target_and_checks_the_seals(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    env = s3_env() if kind == "s3" else {}
    entry = f"s3://archive-test/drill-{uuid.uuid4().hex[:12]}" if kind == "s3" else str(tmp_path / "replica")
    env["ARCHIVE_REPLICAS"] = entry
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    stored(settings, tmp_path, n=3)
    done_sync = sync(settings)
    assert done_sync is not None and all(not r.failures for r in done_sync)

    done = archive_cmd("drill", "--sample", "10", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [(s["source"], s["objects"], s["problems"]) for s in report["sources"]] == [
        ("primary", 3, []),
        (entry, 3, []),
    ]
    assert report["sources"][1]["bytes"] > 0

    # a seal tampered with at the replica alone: that source fails, naming the object and the signature
    with db.read_session(settings) as s:
        object_id = s.execute(select(Record.ocfl_object_id).where(Record.archival_code == "B-1")).scalar_one()
    (replica,) = targets(settings)
    key = f"{object_relpath(object_id).as_posix()}/extensions/pearl-inventory-seals/v1.seal.json"
    body = json.loads(replica.read_bytes(key))
    body["signature"]["value"] = base64.b64encode(bytes(64)).decode()
    forged = tmp_path / "forged.seal.json"
    forged.write_text(json.dumps(body), encoding="utf-8")
    replica.put_file(key, forged)
    done = archive_cmd("drill", "--sample", "10", "--seed", str(report["seed"]), "--json", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    primary, copy = json.loads(done.stdout)["sources"]
    assert primary["problems"] == []
    assert [p for p in copy["problems"]] == [
        f"{object_id}: v1: the inventory signature does not verify (signature does not match)"
    ]
