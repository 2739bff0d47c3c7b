"""A bag of real files of every policy format through ingest → migration → validation → new versions, with
real ``archive`` commands and a real prefork worker, on both brokers (SQLite transport and Redis).

PDF → PDF/A (Ghostscript), DOCX → PDF/A (LibreOffice), JPEG/PNG → TIFF + access JPEG, TIFF → access JPEG,
WAV → FLAC, MP4 → FFV1/MKV + H.264/MP4; OFD is kept and reported as a preservation risk. Two workers'
worth of concurrency on two records, so commits to one object race (VersionConflict → re-staged).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.models import File, Record
from ingest.bagwriter import make_bag, write_payload
from tests.e2e.helpers import CSV_HEADER, archive_cmd
from tests.preservation.helpers import Worker, all_final, assert_consistent, migration_events, wait_for
from tests.preservation.helpers import broker as broker  # the fixtures, re-exported for pytest
from tests.preservation.helpers import workers as workers
from tests.preservation.samples import make_docx, make_image, make_ofd, make_pdf, make_video, make_wav

pytestmark = pytest.mark.slow

#: original → the derivatives expected (logical path, role, tool)
EXPECTED = {
    "originals/docs/通知.pdf": [("preservation/docs/通知.pdf", "preservation", "gs")],
    "originals/docs/报告.docx": [("preservation/docs/报告.pdf", "preservation", "soffice")],
    "originals/docs/公文.ofd": [],
    "originals/media/photo.jpg": [
        ("preservation/media/photo.tif", "preservation", "convert"),
        ("access/media/photo.jpg", "access", "convert"),
    ],
    "originals/media/scan.png": [
        ("preservation/media/scan.tif", "preservation", "convert"),
        ("access/media/scan.jpg", "access", "convert"),
    ],
    "originals/media/page.tif": [("access/media/page.jpg", "access", "convert")],
    "originals/media/speech.wav": [("preservation/media/speech.flac", "preservation", "ffmpeg")],
    "originals/media/clip.mp4": [
        ("preservation/media/clip.mkv", "preservation", "ffmpeg"),
        ("access/media/clip.mp4", "access", "ffmpeg"),
    ],
}


def policy_bag(root: Path, samples: Path) -> Path:
    samples.mkdir()
    files = {
        "docs/通知.pdf": make_pdf(samples / "a.pdf", pages=2),
        "docs/报告.docx": make_docx(samples / "b.docx"),
        "docs/公文.ofd": make_ofd(samples / "c.ofd"),
        "media/photo.jpg": make_image(samples / "d.jpg", "JPEG"),
        "media/scan.png": make_image(samples / "e.png", "PNG"),
        "media/page.tif": make_image(samples / "f.tif", "TIFF"),
        "media/speech.wav": make_wav(samples / "g.wav", seconds=0.5),
        "media/clip.mp4": make_video(samples / "h.mp4", seconds=1.0),
    }
    payload = {f"data/{name}": path.read_bytes() for name, path in files.items()}
    payload["data/metadata/records.csv"] = (
        CSV_HEADER
        + "docs,GZ-DOCS-1,公文与报告,测试单位,1990-01-01,永久,公开,自动\r\n"
        + "media,GZ-MEDIA-1,照片录音录像,测试单位,1990-01-01,永久,公开,自动\r\n"
    ).encode()
    write_payload(root, payload)
    return make_bag(root, algorithms=("sha256",))


def test_every_policy_format_is_migrated(
    broker: Settings,
    tmp_path: Path,
    workers: Callable[..., Worker],
) -> None:
    bag = policy_bag(tmp_path / "bag", tmp_path / "samples")
    done = archive_cmd("ingest", str(bag), "--archive", "GZ", "--json")
    assert done.returncode == 0, done.stdout + done.stderr

    worker = workers(pool="prefork", concurrency=2)
    queued = archive_cmd("migrate", "--pending", "--json")
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout) == {"ok": True, "files": 8, "risks": 1, "requeued": 0, "queued": 10}
    wait_for(lambda: all_final(broker), 150, worker)

    listed = json.loads(archive_cmd("jobs", "--json").stdout)
    assert len(listed) == 11
    assert {j["state"] for j in listed} == {"done"}, [j for j in listed if j["state"] != "done"]
    (risk,) = [j for j in listed if j["action"] == "risk"]
    assert risk["path"] == "originals/docs/公文.ofd" and "OFD" in risk["reason"]

    with db.read_session(broker) as s:
        rows = list(s.execute(select(File)).scalars())
        heads = sorted(tuple(r) for r in s.execute(select(Record.archival_code, Record.ocfl_head)).all())
    assert heads == [("GZ-DOCS-1", "v3"), ("GZ-MEDIA-1", "v9")]  # v1 + one version per (file, action)
    by_id = {f.id: f for f in rows}
    made: dict[str, list[tuple[str, str, str | None]]] = {path: [] for path in EXPECTED}
    for f in rows:
        if f.derived_from_id is not None:
            made[by_id[f.derived_from_id].logical_path].append((f.logical_path, f.role, f.tool))
            assert f.tool_version and f.puid and f.ocfl_version != "v1"
    assert {k: sorted(v) for k, v in made.items()} == {k: sorted(v) for k, v in EXPECTED.items()}
    assert migration_events(broker) == 10
    assert migration_events(broker, "warning") == 1

    assert archive_cmd("events", "verify").returncode == 0
    audit = archive_cmd("audit", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert json.loads(audit.stdout)["totals"]["failures"] == 0

    # queued again by hand: every job finishes as a no-op, nothing new is stored
    again = archive_cmd("migrate", "--record", "GZ/GZ-MEDIA-1", "--json")
    assert json.loads(again.stdout)["queued"] == 8
    wait_for(lambda: all_final(broker), 60, worker)
    outcomes = {
        j["outcome"] for j in json.loads(archive_cmd("jobs", "--json").stdout) if j["action"] != "risk"
    }
    assert outcomes <= {"migrated", "completed", "already-done"}
    assert migration_events(broker) == 10
    worker.stop()
    assert_consistent(broker)
