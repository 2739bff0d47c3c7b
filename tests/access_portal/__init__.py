"""A demo node for the portal tests, built once per session, with records that must never be seen.

On top of ``archive demo`` (GD → GZ → GZ-TH, open and closed records, indexed through the outbox):

- ``GZ/GZ-099-1990-永久-0099``: classified (秘密), so restricted; its title, description, keywords, file name
  and file text hold :data:`SECRET` (never sent by any test, so it can only come back as a leak) and
  :data:`PROBE` (the word the tests search for);
- ``GZ-TH/TH-009-1980-Y-0009``: restricted by the archivist, with :data:`SECRET` too;
- ``GZ/GZ-098-1980-永久-0098``: open and indexed, then closed in the catalogue **without** draining the
  outbox — a stale index entry, holding :data:`STALE`, that the portal must still never show;
- ``GD/GD-002-1998-永久-0003``: given an access copy (v2, ``access/…jpg`` derived from the TIFF), so the
  public downloads the access copy and not that original.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.home import store_for
from archive.models import File, FileRole, Record
from ingest.bagwriter import make_bag, write_payload
from ingest.demo import CN_HEADER, records_csv, run_demo
from ingest.pipeline import ingest
from search import drain, get_backend

with warnings.catch_warnings():  # Starlette asks for httpx2, not installed here; the client works with httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "绝密词XYZZY"
PROBE = "探针词PLUGH"
STALE = "撤回词QUUX"
SECRET_CODE = "GZ-099-1990-永久-0099"
ARCHIVIST_CLOSED = ("GZ-TH", "TH-009-1980-Y-0009")
STALE_CODE = "GZ-098-1980-永久-0098"
OPEN_PDF = ("GD", "GD-001-1995-永久-0001")
PDF_NAME = "关于珠江三角洲经济区规划的通知.pdf"
WITH_ACCESS_COPY = ("GD", "GD-002-1998-永久-0003")
ACCESS_COPY_PATH = "access/0003 港口照片/黄埔港码头 1998.jpg"
TIFF_PATH = "originals/0003 港口照片/黄埔港码头 1998.tif"


@dataclass(frozen=True)
class PortalHome:
    settings: Settings
    root: Path


def _row(
    path: str, code: str, title: str, security: str, access: str, fonds: str, desc: str, kw: str
) -> list[str]:
    return [path, code, title, "测试机关", code.split("-")[2], "永久", security, access, fonds, desc, kw]


def _secret_bag(root: Path) -> Path:
    write_payload(
        root,
        {
            f"data/秘密/{SECRET}报告.txt": f"正文：{SECRET} {PROBE} 不得公开。\n".encode(),
            f"data/撤回/{STALE}公告.txt": f"{STALE} 后来撤回开放。\n".encode(),
        },
    )
    rows = [
        _row(
            "秘密",
            SECRET_CODE,
            f"{SECRET}专案报告",
            "秘密",
            "自动",
            "099",
            f"{SECRET}摘要 {PROBE}",
            f"{SECRET}；{PROBE}",
        ),
        _row("撤回", STALE_CODE, f"{STALE}公告", "", "开放", "098", f"{STALE}摘要", STALE),
    ]
    write_payload(root, {"data/metadata/records.csv": records_csv(CN_HEADER, rows, "utf-8")})
    return make_bag(root, algorithms=("sha256",))


def _closed_bag(root: Path) -> Path:
    write_payload(root, {f"data/控制/{SECRET}.txt": f"{SECRET} {PROBE}\n".encode()})
    rows = [_row("控制", ARCHIVIST_CLOSED[1], f"{SECRET}控制件", "", "控制", "009", PROBE, PROBE)]
    write_payload(root, {"data/metadata/records.csv": records_csv(CN_HEADER, rows, "utf-8")})
    return make_bag(root, algorithms=("sha256",))


def _add_access_copy(settings: Settings) -> None:
    """v2 of the record's object: an access JPEG derived from the TIFF, as a migration would add it."""
    import hashlib

    with db.write_session(settings) as s:
        record = s.execute(select(Record).where(Record.archival_code == WITH_ACCESS_COPY[1])).scalar_one()
        tiff = next(f for f in record.files if f.logical_path == TIFF_PATH)
        jpeg = next(f for f in record.files if f.logical_path.endswith(".jpg"))
        store = store_for(settings)
        data = (store.object_path(record.ocfl_object_id) / "v1" / "content" / jpeg.logical_path).read_bytes()
        builder = store.begin_version(record.ocfl_object_id)
        builder.add_bytes(ACCESS_COPY_PATH, data)
        version = store.commit(builder, message="access copy (test)", user_name="tests")
        s.add(
            File(
                record_id=record.id,
                logical_path=ACCESS_COPY_PATH,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                sha512=hashlib.sha512(data).hexdigest(),
                mime="image/jpeg",
                format_name="JPEG File Interchange Format",
                role=FileRole.access,
                derived_from_id=tiff.id,
                ocfl_version=version,
            )
        )
        record.ocfl_head = version


def build_portal_home(root: Path) -> PortalHome:
    settings = Settings(
        home=root / "home",
        database_url=None,
        elasticsearch_url=None,
        storage_root=None,
        public_url="http://testserver",  # the test client's address, for the absolute links (OAI-PMH, CSV)
    )
    run_demo(settings, root / "bags", Console(file=io.StringIO()))
    for archive, bag in (
        ("GZ", _secret_bag(root / "secret-bag")),
        ("GZ-TH", _closed_bag(root / "closed-bag")),
    ):
        result = ingest(bag, archive, settings)
        assert result.stored, result.problems
    _add_access_copy(settings)
    backend = get_backend(settings)
    backend.ensure_ready()
    counts = drain(settings, backend)
    assert counts.failed == 0, counts.errors
    with db.write_session(settings) as s:  # closed after indexing, outbox not drained: a stale index entry
        stale = s.execute(select(Record).where(Record.archival_code == STALE_CODE)).scalar_one()
        stale.access_status = "restricted"
    return PortalHome(settings, root)


@pytest.fixture(scope="session")
def portal_home(tmp_path_factory: pytest.TempPathFactory) -> PortalHome:
    """The demo node described above (built once per test session, ~20 s)."""
    return build_portal_home(tmp_path_factory.mktemp("portal"))


@pytest.fixture(scope="session")
def client(portal_home: PortalHome) -> Iterator[TestClient]:
    from access_portal.app import create_app

    # raise_server_exceptions: a bug fails the test with its traceback instead of hiding behind a 500 page
    with TestClient(create_app(portal_home.settings)) as c:
        yield c


def open_records(settings: Settings) -> list[tuple[str, str]]:
    with db.read_session(settings) as s:
        rows = s.execute(select(Record).where(Record.access_status == "open")).scalars().all()
        return sorted((r.archive.code, r.archival_code) for r in rows)


def closed_files(settings: Settings) -> list[tuple[str, str, str]]:
    """(archive, code, logical path) of every file of every record that is not open."""
    with db.read_session(settings) as s:
        rows = s.execute(select(Record).where(Record.access_status != "open")).scalars().all()
        return [(r.archive.code, r.archival_code, f.logical_path) for r in rows for f in r.files]


__all__ = ["TestClient", "client", "portal_home"]
