"""The preservation cycle's batched path: the objects' inventories read and their seals verified on the
worker threads, the event log and the seals checked beside the file pass. Faults planted in stored records are
still reported under their DA/T 70 items, by the record and file they are in; the threaded reads give what the
serial ones give."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from archive import db
from archive.checks import run_cycle
from archive.checks.run import load_views
from archive.checks.seals import check_seals
from archive.checks.subjects import from_catalogue
from archive.config import Settings, get_settings
from archive.events import INGESTION
from archive.home import store_for
from archive.models import Event, Record
from archive.storage.layout import object_relpath
from ingest.pipeline import ingest
from tests.archive.test_checks import transfer

PREFIX = "GZ-010-1990-永久"


@pytest.fixture
def checked_any(any_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """SQLite and PostgreSQL, ClamAV with the EICAR test signature, two worker threads at least."""
    eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    db_file = tmp_path / "clamav" / "test.ndb"
    db_file.parent.mkdir()
    db_file.write_text(f"Eicar-Test-Signature:0:*:{eicar.hex()}\n", encoding="ascii")
    monkeypatch.setenv("ARCHIVE_CLAMAV_DB", str(db_file))
    monkeypatch.setenv("ARCHIVE_HASH_WORKERS", "3")
    return get_settings()


def _stored(settings: Settings, n: int, tmp_path: Path) -> dict[str, Record]:
    rows = [
        (f"{i}.txt", f"{PREFIX}-{i:04d}", f"件{i}", f"第{i}件的内容\n".encode() * 40) for i in range(1, n + 1)
    ]
    assert ingest(transfer(tmp_path / "bag", rows), "GZ", settings).stored
    with db.read_session(settings) as s:
        records = s.execute(select(Record)).scalars().all()
        s.expunge_all()
    return {r.archival_code: r for r in records}


def _content(settings: Settings, record: Record, name: str) -> Path:
    return next((settings.ocfl_root / object_relpath(record.ocfl_object_id)).rglob(name))


def test_a_sample_cycle_reports_planted_faults_under_their_items(
    checked_any: Settings, tmp_path: Path
) -> None:
    settings = checked_any
    records = _stored(settings, 12, tmp_path)
    clean = run_cycle(settings, "sample", seed=7, fraction=1.0)
    assert clean.records == 12 and clean.files == 12
    assert clean.status == "pass", [(i.check.code, i.failures) for i in clean.items if i.status == "fail"]

    rotten = _content(settings, records[f"{PREFIX}-0003"], "3.txt")
    body = bytearray(rotten.read_bytes())
    body[5] ^= 0x20  # one bit flipped: the same size, other bytes
    rotten.chmod(0o644)
    rotten.write_bytes(bytes(body))
    unlogged = records[f"{PREFIX}-0007"]
    bad_code = records[f"{PREFIX}-0010"]
    with db.write_session(settings) as s:
        s.execute(delete(Event).where(Event.record_id == unlogged.id, Event.event_type == INGESTION))
        s.execute(update(Record).where(Record.id == bad_code.id).values(archival_code="坏的档号"))
    inventory = (
        settings.ocfl_root / object_relpath(records[f"{PREFIX}-0012"].ocfl_object_id) / "inventory.json"
    )
    inventory.chmod(0o644)
    inventory.write_bytes(b"{ not an inventory")

    report = run_cycle(settings, "sample", seed=7, fraction=1.0)
    assert report.status == "fail"

    def failed(code: str) -> list[tuple[str | None, str | None]]:
        item = report.item(code)
        assert item.status == "fail", (code, item.status)
        return [(f.record, f.path) for f in item.failures]

    fixity = failed("1-1")  # the flipped bit; and the seal over an inventory that no longer parses
    assert (f"GZ/{PREFIX}-0003", f"originals/{PREFIX}-0003/3.txt") in fixity
    assert {r for r, _ in fixity} == {f"GZ/{PREFIX}-0003", f"GZ/{PREFIX}-0012"}
    assert (f"GZ/{PREFIX}-0007", None) in failed("2-6")
    assert any("no ingestion event" in f.detail for f in report.item("2-6").failures)
    assert failed("1-7") == [("GZ/坏的档号", None)]
    assert [r for r, _ in failed("4-4")] == [f"GZ/{PREFIX}-0012"]  # read on a worker thread, reported
    assert (f"GZ/{PREFIX}-0012", f"originals/{PREFIX}-0012/12.txt") in failed("1-14")
    for code in ("1-2", "1-3", "1-4", "1-6", "1-8", "3-2", "3-3", "3-4", "4-1", "4-5"):
        assert report.item(code).status == "pass", (code, report.item(code).failures)


def test_an_infected_file_in_a_sample_is_found(checked_any: Settings, tmp_path: Path) -> None:
    settings = checked_any
    records = _stored(settings, 5, tmp_path)
    infected = _content(settings, records[f"{PREFIX}-0004"], "4.txt")
    infected.chmod(0o644)
    infected.write_bytes(rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
    report = run_cycle(settings, "sample", seed=1, fraction=1.0)
    virus = report.item("4-1")
    assert virus.status == "fail"
    assert [(f.record, f.path) for f in virus.failures] == [
        (f"GZ/{PREFIX}-0004", f"originals/{PREFIX}-0004/4.txt")
    ]
    assert report.item("1-10").status == "fail"  # its size changed too


def test_threaded_reads_give_what_serial_reads_give(checked_any: Settings, tmp_path: Path) -> None:
    settings = checked_any
    records = _stored(settings, 9, tmp_path)
    seal = (
        settings.ocfl_root
        / object_relpath(records[f"{PREFIX}-0005"].ocfl_object_id)
        / "extensions/pearl-inventory-seals/v1.seal.json"
    )
    seal.chmod(0o644)
    seal.write_bytes(b"{}")  # a failure and a warning among the findings, in record order
    ids = sorted(r.id for r in records.values())
    threaded = load_views(settings, ids)
    with db.read_session(settings) as s:
        serial = list(from_catalogue(s, store_for(settings), ids))
    assert threaded == serial and [v.record_id for v in threaded] == ids
    with ThreadPoolExecutor(3) as pool:
        in_pool = check_seals(settings, threaded, pool)
    alone = check_seals(settings, serial)
    assert in_pool == alone
    assert [f.record for f in alone.failures] == [f"GZ/{PREFIX}-0005"]
