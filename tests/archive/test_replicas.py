"""Replicas (archive/replicas/): targets, the replication outbox, sync and status, on file-system replicas.

The S3 side runs the same flows against the real SeaweedFS server (tests/archive/test_replicas_s3.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from archive import db
from archive.config import Settings
from archive.events import REPLICATION, verify_chain
from archive.models import Event, Outbox
from archive.replicas import BadReplicaTarget, FsTarget, NoReplicas, S3Target, status, sync, targets
from archive.replicas.models import ReplicaCopy
from archive.replicas.outbox import TOPIC
from archive.storage import validate_root
from archive.storage.inventory import INVENTORY
from ingest.pipeline import ingest
from tests.e2e.helpers import simple_bag

RECORDS = [
    ("文书", "GZ·WS-2020-0001", "关于档案移交的通知", "关于做好档案移交工作的通知。\n".encode() * 50),
    ("照片", "GZ·ZP-2020-0002", "珠江夜景", os.urandom(200_000)),
    ("会计", "GZ·KJ-2020-0003", "年度预算", b"budget 2020\n" * 2000),
]


def with_replicas(monkeypatch: pytest.MonkeyPatch, *entries: str, **env: str) -> Settings:
    monkeypatch.setenv("ARCHIVE_REPLICAS", ",".join(entries))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Settings()


def ingest_records(settings: Settings, work: Path) -> None:
    result = ingest(simple_bag(work / "bag", RECORDS), "GZ", settings)
    assert result.stored, result.as_dict()


def test_targets_are_parsed_in_one_place(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = with_replicas(
        monkeypatch,
        str(tmp_path / "r1"),
        "s3://bucket/some/prefix",
        ARCHIVE_S3_ENDPOINT_URL="http://127.0.0.1:1",
    )
    fs, s3 = targets(s)
    assert isinstance(fs, FsTarget) and fs.local_root == tmp_path / "r1"
    assert isinstance(s3, S3Target) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    for entry, variant in [
        ("relative/path", "relative"),
        ("ftp://host/x", "scheme"),
        ("s3:///prefix", "no_bucket"),
        (str(home.ocfl_root / "inside"), "inside_root"),
        (str(home.home_dir), "inside_root"),
    ]:
        with pytest.raises(BadReplicaTarget) as caught:
            targets(with_replicas(monkeypatch, entry))
        assert caught.value.code == "REP001" and caught.value.variant == variant, entry
    monkeypatch.delenv("ARCHIVE_S3_ENDPOINT_URL")
    with pytest.raises(BadReplicaTarget) as caught:
        targets(with_replicas(monkeypatch, "s3://bucket"))
    assert caught.value.variant == "no_endpoint"
    for env, variant, address in [
        ({"ARCHIVE_S3_ENDPOINT_URL": "ftp://s3.example.org"}, "endpoint", "ftp://s3.example.org"),
        ({"ARCHIVE_S3_ENDPOINT_URL": "s3.example.org:9000"}, "endpoint", "s3.example.org:9000"),
        (
            {"ARCHIVE_S3_ENDPOINT_URL": "https://s3.example.org", "HTTPS_PROXY": "https://proxy:3129"},
            "proxy",
            "https://proxy:3129",
        ),
    ]:
        with pytest.raises(BadReplicaTarget) as caught:
            targets(with_replicas(monkeypatch, "s3://bucket", **env))
        assert (caught.value.variant, caught.value.details["address"]) == (variant, address)
        assert address in caught.value.en and address in caught.value.zh
    # an http:// proxy, or one NO_PROXY bypasses, is fine
    targets(with_replicas(monkeypatch, "s3://bucket", HTTPS_PROXY="http://proxy:3128"))
    targets(
        with_replicas(monkeypatch, "s3://bucket", HTTPS_PROXY="https://proxy:3129", NO_PROXY="s3.example.org")
    )
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("NO_PROXY")
    # the older one-replica setting counts as one more file-system replica
    legacy = with_replicas(monkeypatch, "", ARCHIVE_REPLICA_ROOT=str(tmp_path / "old"))
    assert [t.local_root for t in targets(legacy)] == [tmp_path / "old"]
    monkeypatch.delenv("ARCHIVE_REPLICA_ROOT")
    with pytest.raises(NoReplicas):
        sync(with_replicas(monkeypatch, ""))


def test_ingest_enqueues_and_sync_copies_every_version_whole(
    any_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r1, r2 = tmp_path / "replica-1", tmp_path / "replica-2"
    settings = with_replicas(monkeypatch, str(r1), str(r2))
    ingest_records(settings, tmp_path)
    with db.read_session(settings) as s:
        rows = s.execute(select(Outbox).where(Outbox.topic == TOPIC)).scalars().all()
        assert len(rows) == 4  # three records and the transfer object, v1 each, with the catalogue commit
        assert all(r.done_at is None for r in rows)
    before = {r.replica: r for r in status(settings)}
    assert before[str(r1)].versions_behind == 4 and before[str(r1)].bytes_behind >= 200_000
    assert before[str(r1)].oldest_unreplicated_at is not None and before[str(r1)].rpo_seconds >= 0
    assert not r1.exists()  # nothing was copied on the ingest's path

    results = sync(settings)
    assert results is not None and [(r.versions, r.failures) for r in results] == [(4, []), (4, [])]
    for replica in (r1, r2):
        ok, messages = validate_root(replica)
        assert ok, messages
    after = {r.replica: r for r in status(settings)}
    assert after[str(r1)].versions_behind == 0 and after[str(r1)].bytes_behind == 0
    assert after[str(r1)].rpo_seconds == 0 and after[str(r2)].versions_copied == 4
    with db.read_session(settings) as s:
        assert all(
            r.done_at is not None for r in s.execute(select(Outbox).where(Outbox.topic == TOPIC)).scalars()
        )
        events = s.execute(select(Event).where(Event.event_type == REPLICATION)).scalars().all()
        assert len(events) == 8 and {e.outcome_detail["replica"] for e in events} == {str(r1), str(r2)}
        assert verify_chain(s).ok
    again = sync(settings)
    assert again is not None and [r.versions for r in again] == [0, 0]


def test_a_replica_added_later_is_behind_by_everything(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = with_replicas(monkeypatch, str(tmp_path / "r1"))
    ingest_records(first, tmp_path)
    assert sync(first) is not None
    both = with_replicas(monkeypatch, str(tmp_path / "r1"), str(tmp_path / "r2"))
    behind = {r.replica: r.versions_behind for r in status(both)}
    assert behind == {str(tmp_path / "r1"): 0, str(tmp_path / "r2"): 4}
    results = sync(both)
    assert results is not None and [r.versions for r in results] == [0, 4]


def test_versions_from_before_replication_are_backfilled(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_replicas(monkeypatch, str(tmp_path / "r1"))
    ingest_records(settings, tmp_path)
    with db.write_session(settings) as s:  # a home catalogued before this feature had no rows
        for row in s.execute(
            select(Outbox).where(Outbox.topic == TOPIC, Outbox.record_id.is_not(None))
        ).scalars():
            s.delete(row)
    results = sync(settings)
    assert results is not None and results[0].versions == 4  # 3 backfilled; the transfer's was still queued
    assert status(settings)[0].versions_behind == 0


def _sync_child(settings: Settings, failpoint: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ARCHIVE_HOME": str(settings.home_dir),
        "ARCHIVE_REPLICAS": ",".join(settings.replicas),
    }
    env.pop("ARCHIVE_FAILPOINT", None)
    if failpoint:
        env["ARCHIVE_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "archive", "replicas", "sync", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("point", ["replicas:file-copied", "replicas:before-root-inventory"])
def test_sync_killed_mid_copy_resumes_and_counts_nothing_half_copied(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    replica = tmp_path / "replica"
    settings = with_replicas(monkeypatch, str(replica))
    ingest_records(settings, tmp_path)
    killed = _sync_child(settings, point)
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no cleanup ran
    with db.read_session(settings) as s:
        assert s.execute(select(func.count(ReplicaCopy.id))).scalar_one() == 0
    assert status(settings)[0].versions_behind == 4
    # content reached the replica, but no object there has a root inventory: no reader takes one as whole
    assert any(p.is_file() for p in replica.rglob("v1/content/**/*"))
    assert not [p for p in replica.rglob(INVENTORY) if p.parent.name != "v1"]
    # a file whose copy the kill cut short (another copying thread's, at any point): swept on resume
    content = next(p for p in replica.rglob("v1/content") if p.is_dir())
    (content / ".replica-0123456789abcdef.tmp").write_bytes(b"half a file")

    resumed = _sync_child(settings, None)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["replicas"][0]["versions"] == 4
    ok, messages = validate_root(replica)
    assert ok, messages
    assert not list(replica.rglob(".replica-*.tmp"))
    assert status(settings)[0].versions_behind == 0


def test_status_and_sync_cli(home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = with_replicas(monkeypatch, str(tmp_path / "replica"))
    ingest_records(settings, tmp_path)
    env = {
        **os.environ,
        "ARCHIVE_HOME": str(settings.home_dir),
        "ARCHIVE_REPLICAS": str(tmp_path / "replica"),
        "COLUMNS": "400",
    }
    cmd = [sys.executable, "-m", "archive", "replicas"]
    out = subprocess.run([*cmd, "status", "--json"], env=env, capture_output=True, text=True, check=True)
    (line,) = json.loads(out.stdout)["replicas"]
    assert line["versions_behind"] == 4 and line["kind"] == "fs" and line["rpo_seconds"] >= 0
    subprocess.run([*cmd, "sync"], env=env, capture_output=True, text=True, check=True)
    out = subprocess.run([*cmd, "status"], env=env, capture_output=True, text=True, check=True)
    assert str(tmp_path / "replica") in out.stdout
    bad = subprocess.run(
        [*cmd, "status", "--json"],
        env={**env, "ARCHIVE_REPLICAS": "not/absolute"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["code"] == "REP001"
    unknown = subprocess.run(
        [*cmd, "sync", "--replica", "/elsewhere", "--json"], env=env, capture_output=True, text=True
    )
    assert unknown.returncode == 2 and json.loads(unknown.stdout)["error"]["code"] == "REP006"
    unreachable = subprocess.run(
        [*cmd, "sync", "--json"],
        env={
            **env,
            "ARCHIVE_REPLICAS": "s3://b",
            "ARCHIVE_S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unreachable.returncode == 3, unreachable.stdout + unreachable.stderr


def _tree(root: Path) -> dict[str, bytes]:
    """Every file of a replica but the storage root's own journal (which grows with each drain's events)."""
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return {k: v for k, v in files.items() if not k.startswith("extensions/pearl-catalogue-journal/")}


def test_parallel_sync_in_small_batches_copies_what_a_serial_one_does(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial_root, parallel_root = tmp_path / "serial", tmp_path / "parallel"
    settings = with_replicas(monkeypatch, str(serial_root), str(parallel_root))
    ingest_records(settings, tmp_path)
    serial, parallel = targets(settings)
    one = with_replicas(monkeypatch, str(serial_root), str(parallel_root), ARCHIVE_REPLICATION_WORKERS="1")
    (first,) = sync(one, only=[serial]) or []
    # four workers, a flush after every object: each batch settles while the next one is being copied
    (second,) = (
        sync(with_replicas(monkeypatch, str(serial_root), str(parallel_root)), only=[parallel], batch=1) or []
    )
    assert (first.versions, first.files, first.bytes, first.failures) == (
        second.versions,
        second.files,
        second.bytes,
        second.failures,
    )
    assert first.versions == 4
    copied = _tree(serial_root)
    assert copied == _tree(parallel_root) and len([k for k in copied if k.endswith(INVENTORY)]) == 8
    ok, messages = validate_root(parallel_root)
    assert ok, messages
    with db.read_session(settings) as s:
        rows = s.execute(select(ReplicaCopy)).scalars().all()
        assert sorted((r.replica, r.version) for r in rows) == sorted(
            [(str(serial_root), "v1")] * 4 + [(str(parallel_root), "v1")] * 4
        )
        assert len(s.execute(select(Event).where(Event.event_type == REPLICATION)).scalars().all()) == 8
        assert verify_chain(s).ok


def test_a_version_failing_in_one_worker_fails_alone_and_nothing_of_it_is_marked(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica = tmp_path / "replica"
    settings = with_replicas(monkeypatch, str(replica), ARCHIVE_REPLICATION_WORKERS="4")
    ingest_records(settings, tmp_path)
    # bit rot at the primary in the photo (same size, one byte flipped): its version must not be sent
    photo = max(
        settings.ocfl_root.rglob("v1/content/**/*"), key=lambda p: p.stat().st_size if p.is_file() else 0
    )
    data = bytearray(photo.read_bytes())
    data[1000] ^= 0xFF
    photo.write_bytes(bytes(data))
    obj = next(p for p in photo.parents if (p / "0=ocfl_object_1.1").is_file())
    rel = obj.relative_to(settings.ocfl_root)

    (result,) = sync(settings, batch=1) or []
    assert result.versions == 3 and result.unavailable is None
    (failure,) = result.failures
    assert failure["code"] == "REP005" and failure["version"] == "v1"
    assert not (replica / rel / INVENTORY).exists()  # the replica never shows the damaged version as whole
    assert not list(replica.rglob(".replica-*.tmp"))
    with db.read_session(settings) as s:
        marked = {r.object_id for r in s.execute(select(ReplicaCopy)).scalars()}
        assert len(marked) == 3 and failure["object_id"] not in marked
        events = s.execute(select(Event).where(Event.event_type == REPLICATION)).scalars().all()
        assert len(events) == 3
    assert status(settings)[0].versions_behind == 1
    # the primary repaired, the next drain copies just that version
    data[1000] ^= 0xFF
    photo.write_bytes(bytes(data))
    (again,) = sync(settings) or []
    assert (again.versions, again.failures) == (1, [])
    ok, messages = validate_root(replica)
    assert ok, messages


def test_fs_target_makes_each_folder_once_and_copes_with_folders_removed_behind_it(tmp_path: Path) -> None:
    import hashlib
    import shutil

    from archive.replicas import SourceDamaged

    src = tmp_path / "src.bin"
    src.write_bytes(b"archive bytes\n" * 1000)
    digest = hashlib.sha512(src.read_bytes()).hexdigest()
    # the replica's folder and its parents do not exist yet
    target = FsTarget(tmp_path / "mnt" / "offsite" / "ocfl")
    target.put_file("ab1/cd2/ef3/obj/v1/content/a.bin", src, ("sha512", digest), durable=False)
    target.put_file("ab1/cd2/ef3/obj/v1/content/b.bin", src, ("sha512", digest))
    target.put_file("ab1/ff0/000/obj2/v1/content/a.bin", src, ("sha512", digest))
    assert target.list() == {
        "ab1/cd2/ef3/obj/v1/content/a.bin": src.stat().st_size,
        "ab1/cd2/ef3/obj/v1/content/b.bin": src.stat().st_size,
        "ab1/ff0/000/obj2/v1/content/a.bin": src.stat().st_size,
    }
    # someone removes a whole branch after the target made it: the next copy there makes it again
    shutil.rmtree(tmp_path / "mnt" / "offsite" / "ocfl" / "ab1" / "cd2")
    target.put_file("ab1/cd2/ef3/obj/v1/content/c.bin", src, ("sha512", digest))
    assert target.hash("ab1/cd2/ef3/obj/v1/content/c.bin", "sha512") == digest
    # a source whose bytes are not the inventory's is refused, and leaves neither file nor temporary file
    with pytest.raises(SourceDamaged):
        target.put_file("ab1/cd2/ef3/obj/v1/content/d.bin", src, ("sha512", "0" * 128))
    assert sorted(p.name for p in (target.root / "ab1/cd2/ef3/obj/v1/content").iterdir()) == ["c.bin"]
