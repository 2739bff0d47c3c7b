"""Replicas on the real SeaweedFS S3 server: multipart uploads of big files, and the parallel drain in small
batches copying what a file-system drain does."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from archive.config import Settings
from archive.replicas import FsTarget, S3Target, SourceDamaged, sync, targets
from archive.storage.inventory import INVENTORY
from ingest.pipeline import ingest
from tests.conftest import s3_env
from tests.e2e.helpers import simple_bag

pytestmark = pytest.mark.s3

RECORDS = [
    ("文书", "GZ·WS-2020-0001", "关于档案移交的通知", "关于做好档案移交工作的通知。\n".encode() * 50),
    ("照片", "GZ·ZP-2020-0002", "珠江夜景", os.urandom(300_000)),
]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> str:
    """The S3 endpoint (its credentials set in the environment) and a prefix of one bucket for this test."""
    for name, value in s3_env().items():
        monkeypatch.setenv(name, value)
    return f"archive-test/{uuid.uuid4().hex[:12]}"


def test_a_big_file_goes_in_verified_parts_and_a_rotten_one_leaves_nothing(s3: str, tmp_path: Path) -> None:
    bucket, _, prefix = s3.partition("/")
    target = S3Target(
        bucket, prefix, os.environ["ARCHIVE_S3_ENDPOINT_URL"], "us-east-1", f"s3://{s3}", part_size=5 << 20
    )
    target.ensure_bucket()
    data = os.urandom((11 << 20) + 7)  # three parts: 5 MiB, 5 MiB, 1 MiB and 7 bytes
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    target.put_file("o/v1/content/big.bin", src, ("sha512", hashlib.sha512(data).hexdigest()))
    assert target.read_bytes("o/v1/content/big.bin") == data
    assert target.hash("o/v1/content/big.bin", "sha512") == hashlib.sha512(data).hexdigest()

    with pytest.raises(SourceDamaged) as caught:  # the inventory says otherwise: never completed
        target.put_file("o/v1/content/rotten.bin", src, ("sha512", hashlib.sha512(b"other").hexdigest()))
    assert caught.value.code == "REP005"
    assert set(target.list("o")) == {"o/v1/content/big.bin"}
    uploads = target.client.list_multipart_uploads(Bucket=bucket, Prefix=f"{prefix}/o/")
    assert not uploads.get("Uploads")  # aborted: no half-uploaded parts left behind


def test_parallel_drain_to_s3_in_small_batches_matches_a_file_system_replica(
    home: Settings, s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs_root = tmp_path / "replica"
    monkeypatch.setenv("ARCHIVE_REPLICAS", f"{fs_root},s3://{s3}")
    monkeypatch.setenv("ARCHIVE_REPLICATION_WORKERS", "3")
    settings = Settings()
    result = ingest(simple_bag(tmp_path / "bag", RECORDS), "GZ", settings)
    assert result.stored, result.as_dict()
    fs_target, s3_target = targets(settings)
    assert isinstance(fs_target, FsTarget) and isinstance(s3_target, S3Target)
    assert s3_target.connections >= 5  # the copying threads never wait for a connection
    done = sync(settings, batch=1)
    assert done is not None and [(r.versions, r.failures, r.unavailable) for r in done] == [(3, [], None)] * 2
    objects = {k: v for k, v in fs_target.list().items() if "pearl-catalogue-journal" not in k}
    at_s3 = {k: v for k, v in s3_target.list().items() if "pearl-catalogue-journal" not in k}
    assert objects == at_s3 and len([k for k in objects if k.endswith(INVENTORY)]) == 6
    for key in objects:
        if key.endswith(INVENTORY):
            assert s3_target.read_bytes(key) == (fs_root / key).read_bytes()
