"""The real ``archive`` command when the node's world fails: a service down, a tool missing, the disk full.

Each case runs ``python -m archive …`` in a subprocess and expects one coded line (``CODE 中文 / English``) on
stderr, a non-zero exit (3: the node cannot do it now) and no traceback. Services are made unreachable by
pointing at a loopback port that was just free (bound to port 0, then closed), never by stopping the shared
ones; the full disk is a 2 MiB tmpfs mounted by the test (root only, as in CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import db
from archive.config import Settings, get_settings
from archive.home import init_home, leftover_staging, store_for
from archive.models import Transfer
from ingest.bagwriter import make_bag, write_payload
from tests.e2e.helpers import CSV_HEADER, archive_cmd
from tests.preservation.helpers import ingest_files
from tests.preservation.samples import make_pdf

CODED_LINE = re.compile(r"^(?P<code>[A-Z]{3,4}\d{3}) (?P<zh>.+) / (?P<en>.+)$")


def closed_port() -> int:
    """A loopback port nothing listens on: bound to port 0 (the kernel picks a free one), then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def assert_one_coded_failure(proc: subprocess.CompletedProcess[str], code: str) -> re.Match[str]:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 3, output
    assert "Traceback" not in output, output
    coded = [m for line in proc.stderr.splitlines() if (m := CODED_LINE.match(line.strip()))]
    assert len(coded) == 1, output
    assert not [line for line in proc.stdout.splitlines() if CODED_LINE.match(line.strip())], output
    assert coded[0]["code"] == code, output
    return coded[0]


def test_reindex_with_elasticsearch_down(home: Settings) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    proc = archive_cmd("reindex", env={"ARCHIVE_ELASTICSEARCH_URL": url}, timeout=120)
    line = assert_one_coded_failure(proc, "SRC001")
    assert url in line["zh"] and url in line["en"] and "Connection refused" in line["en"]


def test_reindex_json_with_elasticsearch_down(home: Settings) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    proc = archive_cmd("reindex", "--json", env={"ARCHIVE_ELASTICSEARCH_URL": url}, timeout=120)
    assert proc.returncode == 3 and "Traceback" not in proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "SRC001" and error["service"] == "Elasticsearch" and error["url"] == url
    assert error["message_zh"] and error["message_en"]


def test_records_list_with_postgresql_down(home: Settings) -> None:
    url = f"postgresql+psycopg://x:secret@127.0.0.1:{closed_port()}/db"
    proc = archive_cmd("records", "list", env={"ARCHIVE_DATABASE_URL": url}, timeout=120)
    line = assert_one_coded_failure(proc, "ARC021")
    assert "secret" not in proc.stdout + proc.stderr  # the password is never printed
    assert "x:***@127.0.0.1" in line["en"]


def test_migrate_pending_with_redis_down(home: Settings, tmp_path: Path) -> None:
    ingest_files(home, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf")})
    url = f"redis://127.0.0.1:{closed_port()}/0"
    proc = archive_cmd("migrate", "--pending", env={"ARCHIVE_BROKER_URL": url}, timeout=120)
    line = assert_one_coded_failure(proc, "ARC022")
    assert url in line["en"]
    # the job is recorded (queued), not lost: a later `migrate --pending` or the worker's recovery sends it
    jobs = json.loads(archive_cmd("jobs", "--json").stdout)
    assert [(j["action"], j["state"]) for j in jobs] == [("pdfa", "queued")]


def _path_without(tool: str, into: Path) -> str:
    """A PATH holding every program of the current PATH except ``tool`` (symlinks in one directory)."""
    into.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = into / name
            if name != tool and not target.exists() and os.access(os.path.join(folder, name), os.X_OK):
                target.symlink_to(os.path.join(folder, name))
    return str(into)


def test_migration_with_ghostscript_missing(home: Settings, tmp_path: Path) -> None:
    if shutil.which("gs") is None:
        pytest.skip("Ghostscript is not installed here: nothing to hide")
    ingest_files(home, tmp_path, {"a.pdf": make_pdf(tmp_path / "a.pdf")})
    path = _path_without("gs", tmp_path / "bin")
    proc = archive_cmd("migrate", "--record", "GZ/R-1", "--now", env={"PATH": path}, timeout=300)
    line = assert_one_coded_failure(proc, "PRS006")
    assert "gs" in line["zh"] and "gs" in line["en"]
    jobs = json.loads(archive_cmd("jobs", "--json").stdout)
    assert [(j["action"], j["state"], j["reason_code"]) for j in jobs] == [("pdfa", "failed", "PRS006")]
    assert not leftover_staging(home)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only; CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs refused here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "zip"])
def test_ingest_onto_a_full_disk(
    full_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packed: bool
) -> None:
    monkeypatch.setenv("ARCHIVE_HOME", str(full_disk / "home"))
    monkeypatch.delenv("ARCHIVE_DATABASE_URL", raising=False)
    # the transfer limit defaults to half the free space, which would refuse the bag before a byte is
    # written; lift it so the disk itself fills up
    monkeypatch.setenv("ARCHIVE_MAX_TRANSFER_BYTES", str(100 * 1024**2))
    settings = get_settings()
    init_home(settings)
    assert archive_cmd("archives", "add", "GZ", "--name", "广州市档案馆", "--level", "city").returncode == 0
    bag = tmp_path / "bag"
    write_payload(bag, {f"data/卷/{i:02d}.bin": os.urandom(400_000) for i in range(8)})  # 3.2 MB > 2 MiB
    write_payload(
        bag, {"data/metadata/records.csv": (CSV_HEADER + "卷,GZ-1,大卷,测试,1990,永久,,自动\r\n").encode()}
    )
    make_bag(bag, algorithms=("sha256",))
    source = Path(shutil.make_archive(str(tmp_path / "transfer"), "zip", bag)) if packed else bag

    proc = archive_cmd("ingest", str(source), "--archive", "GZ")
    line = assert_one_coded_failure(proc, "ARC030")
    assert "No space left on device" in line["en"]

    # nothing half-written: no object, nothing staged, no record, the transfer not stored
    assert list(store_for(settings).iter_objects()) == []
    assert not leftover_staging(settings)
    assert json.loads(archive_cmd("records", "list", "--json").stdout) == []
    with db.read_session(settings) as s:
        statuses = [t.status for t in s.query(Transfer).all()]
    assert statuses and "stored" not in statuses
