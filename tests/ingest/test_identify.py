from __future__ import annotations

import dataclasses
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archive.config import Settings
from ingest import identify
from ingest.identify import Identification, _probe_pdfs, identify_files, tool_versions
from tests.samples import (
    make_chinese_text,
    make_csv,
    make_docx,
    make_encrypted_pdf,
    make_image,
    make_js_pdf,
    make_pdfa_claim_pdf,
    make_sample_pdf,
)

PDF_PUIDS = {"fmt/14", "fmt/15", "fmt/16", "fmt/17", "fmt/18", "fmt/19", "fmt/20", "fmt/276"}


def codes(ident: Identification) -> list[str]:
    return [p.code for p in ident.problems]


def one(path: Path, **kwargs: float) -> Identification:
    return identify_files([path], **kwargs)[path]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "build", "puids", "mime"),
    [
        ("档案 样例.pdf", lambda p: make_sample_pdf(p, "hello"), PDF_PUIDS, "application/pdf"),
        ("scan 1.png", lambda p: make_image(p, "PNG"), {"fmt/11", "fmt/12", "fmt/13"}, "image/png"),
        ("照片.jpg", lambda p: make_image(p, "JPEG"), {"fmt/43", "fmt/44"}, "image/jpeg"),
        ("page.tif", lambda p: make_image(p, "TIFF"), {"fmt/353"}, "image/tiff"),
        (
            "报告 final.docx",
            make_docx,
            {"fmt/412"},
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("目录.csv", make_csv, {"x-fmt/18"}, "text/csv"),
        ("通知 全文.txt", make_chinese_text, {"x-fmt/111"}, "text/plain"),
    ],
)
def test_formats(
    tmp_path: Path, name: str, build: Callable[[Path], Path], puids: set[str], mime: str
) -> None:
    path = build(tmp_path / name)
    ident = one(path)
    assert ident.puid in puids, ident
    assert ident.mime == mime
    assert ident.siegfried_mime
    assert ident.format_name
    assert ident.basis
    assert {"siegfried", "siegfried_signature", "libmagic"} <= ident.tools.keys()
    assert "error" not in ident.properties
    assert [c for c in codes(ident) if c != "IDN004"] == []  # CSV is matched on its extension only


def test_image_properties(tmp_path: Path) -> None:
    ident = one(make_image(tmp_path / "a.png", "PNG", size=(30, 20)))
    assert ident.properties == {"width": 30, "height": 20, "mode": "RGB", "image_format": "PNG"}
    assert "pillow" in ident.tools


def test_plain_pdf_properties(tmp_path: Path) -> None:
    ident = one(make_sample_pdf(tmp_path / "a.pdf", "text", pages=3))
    props = ident.properties
    assert props["pages"] == 3
    assert props["encrypted"] is False
    assert props["javascript"] is False
    assert props["pdfa"] is None
    assert props["damaged"] is False
    assert props["pdf_version"] in {"1.3", "1.4", "1.7"}
    assert codes(ident) == []
    assert {"pikepdf", "qpdf"} <= ident.tools.keys()


def test_javascript_pdf(tmp_path: Path) -> None:
    ident = one(make_js_pdf(tmp_path / "js.pdf"))
    assert ident.puid in PDF_PUIDS
    assert ident.properties["javascript"] is True
    assert codes(ident) == ["IDN006"]


def test_encrypted_pdf(tmp_path: Path) -> None:
    ident = one(make_encrypted_pdf(tmp_path / "owner only.pdf"))
    assert ident.properties["encrypted"] is True
    assert ident.properties["pages"] == 1
    assert codes(ident) == ["IDN005"]


def test_pdf_needing_a_password(tmp_path: Path) -> None:
    ident = one(make_encrypted_pdf(tmp_path / "locked.pdf", user_password="secret"))
    assert ident.properties["encrypted"] is True
    assert ident.properties["error"] == "password required"
    assert codes(ident) == ["IDN005"]
    assert "需要密码" in ident.problems[0].message_zh


def test_pdfa_claim(tmp_path: Path) -> None:
    ident = one(make_pdfa_claim_pdf(tmp_path / "a.pdf", "2", "b"))
    assert ident.properties["pdfa"] == "2B"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_pdf_is_a_property_not_an_exception(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "bad.pdf"
    if damage == "truncated":
        data = make_sample_pdf(tmp_path / "good.pdf").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    ident = one(path)
    assert ident.properties["damaged"] is True
    assert ident.properties["error"]
    assert "IDN002" in codes(ident)


def test_unreadable_and_special_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    missing = tmp_path / "missing.txt"
    found = identify_files([fifo, missing])
    assert [codes(found[fifo]), codes(found[missing])] == [["IDN007"], ["IDN007"]]
    assert found[fifo].puid is None and found[missing].puid is None


def test_empty_file_is_not_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.touch()
    assert codes(one(path)) == []


def test_probe_timeout_kills_and_carries_on(tmp_path: Path) -> None:
    """A FIFO never delivers data, so pikepdf blocks on it as on a hostile PDF."""
    fifo = tmp_path / "hang.pdf"
    os.mkfifo(fifo)
    good = make_sample_pdf(tmp_path / "good.pdf")
    started = time.monotonic()
    results = _probe_pdfs([str(fifo), str(good)], workers=1, timeout=3)
    assert results[str(fifo)] == {"error": "timeout"}
    assert results[str(good)]["pages"] == 1
    assert time.monotonic() - started < 20


def test_timeout_gives_warning_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = identify._siegfried  # Siegfried gets its usual time; only the PDF probe is starved
    monkeypatch.setattr(
        identify,
        "_siegfried",
        lambda paths, workers, timeout, *rest: real(paths, workers, 60, *rest),
    )
    ident = one(make_sample_pdf(tmp_path / "a.pdf"), timeout=0.001)  # not even time to start the probe
    assert ident.properties["error"] == "timeout"
    assert codes(ident) == ["IDN001"]
    assert ident.problems[0].severity == "warning"


def test_batch_keeps_every_file_and_order(tmp_path: Path) -> None:
    paths = []
    for n in range(300):
        path = tmp_path / f"文件 {n}.txt"
        path.write_text(f"第 {n} 号\n", encoding="utf-8")
        paths.append(path)
    paths.append(make_image(tmp_path / "x.png", "PNG"))
    found = identify_files(list(reversed(paths)), workers=2)
    assert list(found) == list(reversed(paths))
    assert all(found[p].puid == "x-fmt/111" and found[p].mime == "text/plain" for p in paths[:-1])
    assert found[paths[-1]].puid in {"fmt/11", "fmt/12", "fmt/13"}


def test_as_dict_is_json(tmp_path: Path) -> None:
    ident = one(make_js_pdf(tmp_path / "js.pdf"))
    data = json.loads(json.dumps(ident.as_dict()))
    assert data["puid"] == ident.puid
    assert data["problems"][0]["code"] == "IDN006"
    assert data["properties"]["javascript"] is True


def test_tool_versions() -> None:
    tools = tool_versions()
    assert tools["siegfried"].count(".") == 2
    assert "DROID" in tools["siegfried_signature"]
    assert {"libmagic", "pikepdf", "qpdf", "pillow"} <= tools.keys()


def test_nothing_to_identify() -> None:
    assert identify_files([]) == {}


def test_damaged_image(tmp_path: Path) -> None:
    data = bytearray(make_image(tmp_path / "broken.png", "PNG").read_bytes())
    data[29] ^= 0xFF  # the IHDR chunk's CRC
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    ident = one(path)
    assert "error" in ident.properties
    assert "IDN009" in codes(ident)


def test_siegfried_hang_is_cut_and_only_that_file_is_reported(tmp_path: Path) -> None:
    """Siegfried blocks on a FIFO as on a file from a hung network share; the batch is retried file by file."""
    fifo = tmp_path / "hang.txt"
    os.mkfifo(fifo)
    good = make_image(tmp_path / "x.png", "PNG")
    started = time.monotonic()
    reports = identify._siegfried([fifo, good], 2, 2)
    assert time.monotonic() - started < 30
    assert reports[fifo]["failed"] and "timed out after 2 s" in reports[fifo]["errors"]
    assert reports[good]["matches"][0]["id"] in {"fmt/11", "fmt/12", "fmt/13"}
    ident = identify._from_siegfried(fifo, reports[fifo])
    assert ident.puid is None
    assert codes(ident) == ["IDN010"]
    assert ident.problems[0].severity == "warning"


def test_a_dead_siegfried_process_is_replaced(tmp_path: Path) -> None:
    text = make_chinese_text(tmp_path / "说明.txt")
    assert one(text).puid == "x-fmt/111"
    process = identify._slot(0).process
    assert process is not None
    process.process.kill()
    process.process.wait()
    assert one(text).puid == "x-fmt/111"  # the first request fails, the file alone in a fresh process works
    assert identify._slot(0).process is not process


def test_as_dict_names_every_field(tmp_path: Path) -> None:
    ident = one(make_sample_pdf(tmp_path / "a.pdf"))
    assert set(ident.as_dict()) == {f.name for f in dataclasses.fields(Identification)}
    assert json.loads(json.dumps(ident.as_dict()))["properties"]["pages"] == 1


def test_batches_give_the_same_answers_as_one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files identified in several Siegfried batches get the answers of one call: none lost or mixed up."""
    files = [make_image(tmp_path / f"i{i}.png", "PNG") for i in range(3)]
    files += [make_image(tmp_path / f"j{i}.jpg", "JPEG") for i in range(2)]
    for i in range(4):
        (tmp_path / f"t{i}.txt").write_text(f"第 {i} 行\n" * 20, encoding="utf-8")
        files.append(tmp_path / f"t{i}.txt")
    (tmp_path / "empty.bin").write_bytes(b"")
    files.append(tmp_path / "empty.bin")
    whole = identify_files(files, workers=2)
    monkeypatch.setattr(identify, "BATCH", 3)
    batched = identify_files(files, workers=2)
    assert list(batched) == list(whole) == files
    for path in files:
        a, b = whole[path].as_dict(), batched[path].as_dict()
        assert (a["puid"], a["mime"], a["properties"]) == (b["puid"], b["mime"], b["properties"]), path
    assert batched[files[0]].mime == "image/png" and batched[files[3]].mime == "image/jpeg"
    assert batched[files[5]].puid == "x-fmt/111"


def _mixed_files(root: Path) -> list[Path]:
    """A bit of everything an ingest meets: PDFs (probed), images (Pillow), Office, text, CSV, empty, noise."""
    files = [
        make_sample_pdf(root / "a.pdf", "你好"),
        make_js_pdf(root / "js.pdf"),
        make_image(root / "b.png", "PNG"),
        make_image(root / "c.jpg", "JPEG"),
        make_chinese_text(root / "说明.txt"),
        make_csv(root / "表.csv"),
        make_docx(root / "d.docx"),
    ]
    (root / "empty.bin").write_bytes(b"")
    (root / "noise.bin").write_bytes(bytes(range(256)) * 64)
    (root / "plain.txt").write_text("第 1 行\n" * 40, encoding="utf-8")
    return [*files, root / "empty.bin", root / "noise.bin", root / "plain.txt"]


def _slots_used(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The slot of every batch call. In the parallel path (the ``siegfried-N`` threads) the first batch of
    children 0 and 1 wait for each other, so that both take one whatever the scheduling (left alone, one
    thread may take every batch before the other has started)."""
    used: list[int] = []
    real = identify._siegfried_batch
    both_started = threading.Barrier(2, timeout=30)
    seen: set[int] = set()

    def spy(chunk: list[Path], workers: int, timeout: float, slot: int) -> dict[Path, dict[str, object]]:
        used.append(slot)
        if threading.current_thread().name.startswith("siegfried-") and slot < 2 and slot not in seen:
            seen.add(slot)
            both_started.wait()
        return real(chunk, workers, timeout, slot)

    monkeypatch.setattr(identify, "_siegfried_batch", spy)
    return used


def test_parallel_siegfried_children_give_the_serial_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several batches, two children identify at once; every file gets what one child alone says."""
    files = _mixed_files(tmp_path)
    monkeypatch.setattr(identify, "BATCH", 2)
    used = _slots_used(monkeypatch)
    serial = identify_files(files, workers=1)
    assert set(used) == {0}
    used.clear()
    parallel = identify_files(files, workers=2, processes=2)
    assert set(used) == {0, 1}  # both children took batches
    assert len(used) == (len(files) + 1) // 2  # each batch once
    assert list(parallel) == list(serial) == files
    for path in files:
        assert parallel[path].as_dict() == serial[path].as_dict(), path
    assert parallel[files[0]].puid in PDF_PUIDS and parallel[files[0]].properties["pages"] == 1
    assert codes(parallel[files[1]]) == ["IDN006"]
    assert parallel[files[2]].mime == "image/png" and parallel[files[3]].mime == "image/jpeg"
    assert parallel[files[-1]].puid == "x-fmt/111"
    used.clear()
    one_child = identify_files(files, workers=2)  # ARCHIVE_SIEGFRIED_PROCESSES=1, the default
    assert set(used) == {0}
    assert all(one_child[path].as_dict() == serial[path].as_dict() for path in files)


def test_a_child_that_dies_in_the_parallel_path_costs_a_retry_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second child is killed before its first batch: that batch goes file by file to a fresh child."""
    files = _mixed_files(tmp_path)
    monkeypatch.setattr(identify, "BATCH", 3)
    serial = identify_files(files, workers=1)
    real = identify._siegfried_call
    killed: list[int] = []

    def kill_first(request: dict[str, object] | None, timeout: float, slot: int = 0) -> dict[str, object]:
        if slot == 1 and not killed and request is not None:
            real({"paths": [], "workers": 1}, timeout, slot)  # started ...
            process = identify._slot(slot).process
            assert process is not None
            process.process.kill()  # ... and gone before the batch is sent
            process.process.wait()
            killed.append(process.process.pid)
        return real(request, timeout, slot)

    monkeypatch.setattr(identify, "_siegfried_call", kill_first)
    used = _slots_used(monkeypatch)  # child 1 takes a batch, whatever the scheduling
    parallel = identify_files(files, workers=2, processes=2)
    assert killed and 1 in used
    for path in files:
        assert parallel[path].as_dict() == serial[path].as_dict(), path
        assert "IDN010" not in codes(parallel[path])


def test_a_hang_in_the_parallel_path_is_cut_and_only_that_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "hang.txt"
    os.mkfifo(fifo)
    images = [make_image(tmp_path / f"{i}.png", "PNG") for i in range(5)]
    monkeypatch.setattr(identify, "BATCH", 2)
    used = _slots_used(monkeypatch)
    reports = identify._siegfried([images[0], images[1], fifo, *images[2:]], 2, 2, processes=2)
    assert set(used) == {0, 1}
    assert reports[fifo]["failed"] and "timed out after 2 s" in reports[fifo]["errors"]
    assert all(reports[p]["matches"][0]["id"] in {"fmt/11", "fmt/12", "fmt/13"} for p in images)
    assert codes(identify._from_siegfried(fifo, reports[fifo])) == ["IDN010"]


def test_a_failure_in_a_siegfried_thread_is_raised_and_nothing_is_stored(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child thread that fails otherwise than Siegfried timing out or dying (which costs a retry) stops
    the ingest with its coded error: no thread left behind, nothing stored, no staged copy left."""
    from ingest.pipeline import ingest
    from tests.e2e.helpers import catalogue_counts, simple_bag, stored_objects

    bag = simple_bag(
        tmp_path / "bag", [(f"卷{i}", f"GZ-P-000{i}", f"题名{i}", f"内容 {i}\n".encode()) for i in range(6)]
    )
    monkeypatch.setattr(identify, "BATCH", 2)
    real = identify._siegfried_batch
    calls = itertools.count()

    def fail_second(
        chunk: list[Path], workers: int, timeout: float, slot: int
    ) -> dict[Path, dict[str, object]]:
        # the second batch taken, whichever thread took it (one thread may take every batch before the
        # other starts, so failing on a given slot would not always fail)
        if next(calls) == 1:
            raise identify.SiegfriedFailed(variant="exited", returncode=-9)
        return real(chunk, workers, timeout, slot)

    monkeypatch.setattr(identify, "_siegfried_batch", fail_second)
    with pytest.raises(identify.SiegfriedFailed) as raised:
        ingest(bag, "GZ", home.model_copy(update={"siegfried_processes": 2}))
    assert raised.value.code == "IDN020"
    assert not [t for t in threading.enumerate() if t.name.startswith("siegfried-")]
    assert catalogue_counts(home) == (0, 0)
    assert stored_objects(home) == []
    staged = [p for p in home.staging_dir.rglob("*") if p.is_file() and "ocfl-locks" not in p.parts]
    assert staged == []
