"""Audits with replicas (preservation/audit/replica.py, copies.py): damage on the primary repaired from a
replica — file system and the real SeaweedFS S3 server alike — a tampered replica never used, and every
replica compared with the catalogue (missing, extra, different)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.events import RECOVERY, verify_chain
from archive.models import Event, File, Record
from archive.replicas import status, sync, targets
from archive.replicas.target import Target
from archive.storage import validate_root
from archive.storage.inventory import INVENTORY, SIDECAR, sidecar_bytes
from archive.storage.layout import object_relpath
from ingest.pipeline import ingest
from preservation.audit import run_audit
from preservation.audit.copies import check_replicas
from preservation.migrate import migrate
from tests.conftest import s3_env
from tests.e2e.helpers import simple_bag
from tests.preservation.helpers import ingest_files
from tests.preservation.samples import make_pdf

RECORDS = [
    ("文书", "GZ·WS-2020-0001", "关于档案移交的通知", "关于做好档案移交工作的通知。\n".encode() * 50),
    ("照片", "GZ·ZP-2020-0002", "珠江夜景", os.urandom(200_000)),
]


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def replicated(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> Iterator[Settings]:
    """A home with two records ingested and copied to two replicas of the kind under test."""
    if kind == "s3":
        for k, v in s3_env().items():
            monkeypatch.setenv(k, v)
        prefix = f"archive-test/{uuid.uuid4().hex[:12]}"  # one bucket, a prefix per test
        entries = [f"s3://{prefix}/one", f"s3://{prefix}/two"]
    else:
        entries = [str(tmp_path / "replica-1"), str(tmp_path / "replica-2")]
    monkeypatch.setenv("ARCHIVE_REPLICAS", ",".join(entries))
    settings = Settings()
    result = ingest(simple_bag(tmp_path / "bag", RECORDS), "GZ", settings)
    assert result.stored, result.as_dict()
    done = sync(settings)
    assert done is not None and all(r.versions == 3 and not r.failures for r in done)
    yield settings


def _photo(settings: Settings) -> tuple[str, Path, str, File]:
    """(object folder relative to the root, its path, the photo's content path, its catalogue row)."""
    with db.read_session(settings) as s:
        record = s.execute(select(Record).where(Record.archival_code == "GZ·ZP-2020-0002")).scalar_one()
        f = s.execute(select(File).where(File.record_id == record.id)).scalars().first()
        assert f is not None
        rel = object_relpath(record.ocfl_object_id).as_posix()
    content = f"v1/content/{f.logical_path}"
    return rel, settings.ocfl_root / rel, content, f


def _tamper(target: Target, key: str) -> None:
    data = bytearray(target.read_bytes(key))
    data[100] ^= 0x01
    tmp = Path(f"/tmp/tamper-{uuid.uuid4().hex}")
    tmp.write_bytes(bytes(data))
    try:
        target.put_file(key, tmp)
    finally:
        tmp.unlink()


def _recoveries(settings: Settings) -> list[Event]:
    with db.read_session(settings) as s:
        return list(s.execute(select(Event).where(Event.event_type == RECOVERY).order_by(Event.id)).scalars())


def test_bit_rot_and_deletion_repaired_from_a_replica(replicated: Settings) -> None:
    _rel, obj, content, _row = _photo(replicated)
    data = bytearray((obj / content).read_bytes())
    data[500] ^= 0x01
    (obj / content).write_bytes(bytes(data))
    doc = next(p for p in (replicated.ocfl_root / object_relpath(_first_record(replicated))).rglob("*.txt"))
    doc.unlink()
    report = run_audit(replicated, replicas=targets(replicated))
    assert {f.kind for f in report.failures} == {"bitrot", "missing"}
    assert report.intact and all(f.repaired for f in report.failures)
    assert (obj / content).read_bytes() != bytes(data) and doc.is_file()
    events = _recoveries(replicated)
    assert len(events) == 2 and all(e.outcome == "success" for e in events)
    assert run_audit(replicated, replicas=targets(replicated), resume=False).ok
    ok, messages = validate_root(replicated.ocfl_root)
    assert ok, messages


def _first_record(settings: Settings) -> str:
    with db.read_session(settings) as s:
        record = s.execute(select(Record).where(Record.archival_code == "GZ·WS-2020-0001")).scalar_one()
        return record.ocfl_object_id


def test_a_tampered_inventory_on_the_primary_is_restored_from_a_replica(replicated: Settings) -> None:
    _rel, obj, _content, _row = _photo(replicated)
    inventory = json.loads((obj / INVENTORY).read_bytes())
    inventory["message"] = "rewritten by someone"
    data = json.dumps(inventory).encode()
    (obj / INVENTORY).write_bytes(data)
    (obj / SIDECAR).write_bytes(
        sidecar_bytes(data)
    )  # consistent with its sidecar: only the head's copy differs
    report = run_audit(replicated, replicas=targets(replicated))
    assert [f.kind for f in report.failures] == ["inventory"] and report.intact, report.failures
    assert (obj / INVENTORY).read_bytes() == (obj / "v1" / INVENTORY).read_bytes()
    assert run_audit(replicated, replicas=targets(replicated), resume=False).ok
    (event,) = _recoveries(replicated)
    assert event.outcome == "success" and event.outcome_detail["replica"] == targets(replicated)[0].name


def test_a_tampered_replica_is_never_used(replicated: Settings) -> None:
    rel, obj, content, row = _photo(replicated)
    first, second = targets(replicated)
    _tamper(first, f"{rel}/{content}")
    data = bytearray((obj / content).read_bytes())
    data[500] ^= 0x01
    (obj / content).write_bytes(bytes(data))

    only_bad = run_audit(replicated, replicas=[first])
    (f,) = only_bad.failures
    assert not f.repaired and "damaged too" in (f.repair_detail or "")
    assert (obj / content).read_bytes() == bytes(data)  # left as it was: the bad copy was not used
    (event,) = _recoveries(replicated)
    assert event.outcome == "failure" and event.outcome_detail["replica_sha512"] != row.sha512

    both = run_audit(replicated, replicas=[first, second], resume=False)
    (f,) = both.failures
    assert f.repaired and second.name in (f.repair_detail or "")
    assert run_audit(replicated, replicas=[second], resume=False).ok
    with db.read_session(replicated) as s:
        assert verify_chain(s).ok


def _put(target: Target, key: str, data: bytes) -> None:
    tmp = Path(f"/tmp/put-{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    try:
        target.put_file(key, tmp)
    finally:
        tmp.unlink()


def _rewrite_inventories(copy: Target | Path, rel: str) -> bytes:
    """Rewrite the object's root and v1 inventories in ``copy`` consistently (same new bytes, sidecars to
    match, every digest the catalogue holds unchanged): only the version's seal can tell."""
    key = f"{rel}/{INVENTORY}"
    inventory = json.loads(copy.read_bytes(key) if isinstance(copy, Target) else (copy / key).read_bytes())
    inventory["versions"]["v1"]["message"] = "rewritten by someone"
    data = json.dumps(inventory).encode()
    for where in ("", "v1/"):
        for name, content in ((INVENTORY, data), (SIDECAR, sidecar_bytes(data))):
            if isinstance(copy, Target):
                _put(copy, f"{rel}/{where}{name}", content)
            else:
                (copy / rel / f"{where}{name}").write_bytes(content)
    return data


def test_a_consistently_rewritten_replica_inventory_is_refused_by_its_seal(replicated: Settings) -> None:
    rel, obj, _content, _row = _photo(replicated)
    first, second = targets(replicated)
    good = (obj / INVENTORY).read_bytes()
    # the primary: the root inventory rewritten (its sidecar to match), the head's own copy rotted, so no
    # sound inventory at the primary can vouch for or against a replica's
    (obj / INVENTORY).write_bytes(good.replace(b'"id"', b'"id" ', 1))
    (obj / SIDECAR).write_bytes(sidecar_bytes((obj / INVENTORY).read_bytes()))
    (obj / "v1" / INVENTORY).write_bytes(good.replace(b'"head"', b'"head" ', 1))
    forged = _rewrite_inventories(first, rel)

    only_forged = run_audit(replicated, replicas=[first])
    failures = [f for f in only_forged.failures if f.kind == "inventory"]
    assert failures and not any(f.repaired for f in failures), failures
    assert all("seal" in (f.repair_detail or "") for f in failures)
    assert (obj / INVENTORY).read_bytes() != forged and (obj / "v1" / INVENTORY).read_bytes() != forged
    assert all(e.outcome == "failure" for e in _recoveries(replicated))

    both = run_audit(replicated, replicas=[first, second], resume=False)
    assert both.intact and all(f.repaired and second.name in (f.repair_detail or "") for f in both.failures)
    assert (obj / INVENTORY).read_bytes() == good == (obj / "v1" / INVENTORY).read_bytes()
    assert run_audit(replicated, replicas=[second], resume=False).ok


def test_an_unsealed_version_is_trusted_on_its_digests_and_reported(replicated: Settings) -> None:
    """A home older than the seals: no seal at the primary nor at the replica. The replica's inventory is
    trusted as before (sidecar, id, catalogue), and the repair says it was not sealed; but a seal removed
    from a replica alone never makes its inventory trusted on digests."""
    rel, obj, _content, _row = _photo(replicated)
    first, second = targets(replicated)
    seal = "extensions/pearl-inventory-seals/v1.seal.json"
    sealed = (obj / seal).read_bytes()
    good = (obj / INVENTORY).read_bytes()
    (obj / seal).unlink()
    first.delete(f"{rel}/{seal}")
    (obj / INVENTORY).write_bytes(good.replace(b'"id"', b'"id" ', 1))
    report = run_audit(replicated, replicas=[first])
    found = [f for f in report.failures if f.kind == "inventory"]
    assert found and all(f.repaired and "no seal" in (f.repair_detail or "") for f in found), found
    assert (obj / INVENTORY).read_bytes() == good
    events = _recoveries(replicated)
    assert events and all(e.outcome_detail["sealed"] is False for e in events)

    (obj / seal).write_bytes(sealed)  # the primary was sealed; only the replica lost its seal
    second.delete(f"{rel}/{seal}")
    (obj / INVENTORY).write_bytes(good.replace(b'"id"', b'"id" ', 1))
    again = run_audit(replicated, replicas=[second], resume=False)
    found = [f for f in again.failures if f.kind == "inventory"]
    assert found and not any(f.repaired for f in found)
    assert all("seal" in (f.repair_detail or "") for f in found), found


def test_replica_audit_finds_missing_extra_and_different_copies(replicated: Settings) -> None:
    rel, _obj, content, _row = _photo(replicated)
    first, second = targets(replicated)
    _tamper(first, f"{rel}/{content}")
    doc_rel = object_relpath(_first_record(replicated)).as_posix()
    doc_key = next(k for k in first.list(doc_rel) if k.endswith(".txt"))
    second.delete(doc_key)
    stray = Path(f"/tmp/stray-{uuid.uuid4().hex}")
    stray.write_bytes(b"not ours")
    try:
        second.put_file(f"{rel}/v1/content/stray.bin", stray)
    finally:
        stray.unlink()

    checks = check_replicas(replicated, [first, second])
    problems = {(c.replica, p.kind, p.path, p.repaired) for c in checks for p in c.problems}
    assert problems == {
        (first.name, "different", f"{rel}/{content}", True),
        (second.name, "missing", doc_key, True),
        (second.name, "extra", f"{rel}/v1/content/stray.bin", False),
    }
    again = check_replicas(replicated, [first, second])
    assert [(c.replica, [p.kind for p in c.problems]) for c in again] == [
        (first.name, []),
        (second.name, ["extra"]),
    ]
    assert all(e.outcome == "success" for e in _recoveries(replicated))


def test_audit_cli_with_replicas(replicated: Settings) -> None:
    rel, _obj, content, _row = _photo(replicated)
    first, _second = targets(replicated)
    first.delete(f"{rel}/{content}")
    env = {**os.environ, "ARCHIVE_HOME": str(replicated.home_dir)}
    run = subprocess.run(
        [sys.executable, "-m", "archive", "audit", "--replicas", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    answer = json.loads(run.stdout)
    assert answer["ok"] is True  # the storage root itself is whole; the replica is not
    kinds = [[p["kind"] for p in r["problems"]] for r in answer["replicas"]]
    assert kinds == [["missing"], []]
    again = subprocess.run(
        [sys.executable, "-m", "archive", "audit", "--replicas", "--json", "--restart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_damaged_version_inventory_is_restored_from_a_replica(replicated: Settings) -> None:
    obj = replicated.ocfl_root / object_relpath(_first_record(replicated))
    original = (obj / "v1" / INVENTORY).read_bytes()
    (obj / "v1" / INVENTORY).write_bytes(
        original.replace(b'"message"', b'"messagE"')
    )  # sidecar left as it was
    report = run_audit(replicated, replicas=targets(replicated))
    assert report.failures and {f.kind for f in report.failures} == {"inventory"} and report.intact
    assert (obj / "v1" / INVENTORY).read_bytes() == original
    assert run_audit(replicated, replicas=targets(replicated), resume=False).ok


def test_a_migrated_version_is_enqueued_with_its_catalogue_commit_and_replicated(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica = tmp_path / "replica"
    monkeypatch.setenv("ARCHIVE_REPLICAS", str(replica))
    settings = Settings()
    ids = ingest_files(settings, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf", pages=2)})
    assert sync(settings) is not None
    assert migrate(settings, ids["a.pdf"], "pdfa").version == "v2"
    (behind,) = status(settings)
    assert behind.versions_behind == 1 and behind.bytes_behind > 0
    done = sync(settings)
    assert done is not None and done[0].versions == 1
    ok, messages = validate_root(replica)
    assert ok, messages
    with db.read_session(settings) as s:
        record = s.execute(select(Record)).scalar_one()
        rel = object_relpath(record.ocfl_object_id)
    assert json.loads((replica / rel / INVENTORY).read_bytes())["head"] == "v2"
    assert check_replicas(settings, targets(settings))[0].ok
