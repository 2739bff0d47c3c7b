"""Every policy action on real files made by the tools themselves; failures; damaged PDFs.

No mocks: Ghostscript, LibreOffice, ImageMagick, ffmpeg and qpdf really run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pikepdf
import pygfried
import pytest
from PIL import Image

from preservation import checks
from preservation.actions import ActionResult, FileIdentity, access_size, run_action
from preservation.pdf_repair import repair_pdf
from preservation.policy import ACTIONS
from preservation.tools import (
    NoSafeAction,
    OutputInvalid,
    PreservationError,
    ToolFailed,
    Unrepairable,
    tool_version,
)
from tests.preservation import samples

TIMEOUT = 60.0


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def assert_clean(workdir: Path) -> None:
    """No private directory is left behind under the work directory."""
    assert [p.name for p in workdir.glob(".*")] == []


def assert_result(result: ActionResult, workdir: Path, name: str) -> None:
    spec = ACTIONS[name]
    assert result.action == name and result.role == spec.role and result.extension == spec.extension
    assert result.output.parent == workdir / name and result.output.suffix == f".{spec.extension}"
    assert result.tool == spec.tool and result.tool_version == tool_version(spec.tool) != "unknown"
    assert_clean(workdir)


def test_pdf_to_pdfa_keeps_pages_and_chinese_text(tmp_path: Path) -> None:
    source = samples.make_pdf(tmp_path / "会议纪要.pdf", pages=3)
    before = source.read_bytes()
    result = run_action(ACTIONS["pdfa"], source, tmp_path / "work", TIMEOUT, identify=True)
    assert_result(result, tmp_path / "work", "pdfa")
    assert result.output.name == "会议纪要.pdf"
    assert source.read_bytes() == before  # the original is only read
    with pikepdf.open(result.output) as pdf:
        assert len(pdf.pages) == 3 and not pdf.is_encrypted
        meta = pdf.open_metadata()
        assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("2", "B")
    assert result.details["pages"] == 3 and result.details["pdfa"] == "2B"
    assert result.details["text_coverage"] >= 0.9
    # The non-embedded STSong-Light picked the legacy interpreter up front: one Ghostscript run.
    assert result.details["interpreter"] == "legacy" and result.details["gs_runs"] == 1
    assert result.details["unembedded_cid_fonts"] == ["STSong-Light"]
    text = subprocess.run(["pdftotext", str(result.output), "-"], capture_output=True, text=True).stdout
    assert samples.CHINESE in text
    assert pygfried.identify(str(result.output)) == "fmt/477"  # Siegfried: PDF/A-2b
    # Asked to, the action hashed and identified its output (while pdftotext read the text).
    data = result.output.read_bytes()
    assert result.identity == FileIdentity(
        len(data), hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest(), "fmt/477"
    )


def test_latin_pdf_uses_the_default_interpreter_once(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    source = tmp_path / "latin.pdf"
    c = canvas.Canvas(str(source))
    for n in range(2):
        c.setFont("Helvetica", 12)
        c.drawString(72, 700, f"Minutes of the meeting, page {n + 1}")
        c.showPage()
    c.save()
    result = run_action("pdfa", source, tmp_path / "work", TIMEOUT)
    assert result.details["interpreter"] == "default" and result.details["gs_runs"] == 1
    assert result.identity is None  # not asked for
    assert result.details["pages"] == 2 and result.details["text_coverage"] >= 0.9
    assert "unembedded_cid_fonts" not in result.details


def test_lost_text_falls_back_to_the_legacy_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text check is the safety net when the font inspection misses a font the default interpreter
    garbles: here the inspection is made blind, and Ghostscript 10.0's new interpreter loses the Chinese."""
    real = checks.inspect_pdf
    monkeypatch.setattr(checks, "inspect_pdf", lambda path: replace(real(path), unembedded_cid_fonts=()))
    source = samples.make_pdf(tmp_path / "纪要.pdf", pages=2)
    result = run_action("pdfa", source, tmp_path / "work", TIMEOUT)
    assert result.details["interpreter"] == "legacy" and result.details["gs_runs"] == 2
    assert result.details["text_coverage"] >= 0.9
    assert_clean(tmp_path / "work")


def test_office_to_pdfa_in_parallel(tmp_path: Path) -> None:
    """Three LibreOffice runs at once: each has its own profile, so none collides with another."""
    sources = [
        samples.make_docx(tmp_path / "通知.docx"),
        samples.make_xlsx(tmp_path / "目录.xlsx"),
        samples.make_odt(tmp_path / "说明.odt"),
    ]
    work = tmp_path / "work"
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda s: run_action("office-pdfa", s, work, TIMEOUT), sources))
    for source, result in zip(sources, results, strict=True):
        assert_result(result, work, "office-pdfa")
        assert result.output.name == f"{source.stem}.pdf"
        with pikepdf.open(result.output) as pdf:
            assert len(pdf.pages) >= 1
            assert pdf.open_metadata()["pdfaid:part"] == "2"
        assert result.details["pdfa"] == "2B"
    text = subprocess.run(["pdftotext", str(results[0].output), "-"], capture_output=True, text=True).stdout
    assert samples.CHINESE in text


@pytest.mark.parametrize(("fmt", "ext"), [("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp"), ("GIF", "gif")])
def test_image_to_tiff_and_access_jpeg(tmp_path: Path, fmt: str, ext: str) -> None:
    source = samples.make_image(tmp_path / f"scan.{ext}", fmt, size=(120, 80))
    work = tmp_path / "work"
    tiff = run_action("image-tiff", source, work, TIMEOUT, identify=True)
    jpeg = run_action("image-access-jpeg", source, work, TIMEOUT)
    assert_result(tiff, work, "image-tiff")
    assert_result(jpeg, work, "image-access-jpeg")
    assert tiff.identity is not None and tiff.identity.size == tiff.output.stat().st_size
    assert tiff.identity.puid == pygfried.identify(str(tiff.output))
    with Image.open(tiff.output) as img:
        assert img.format == "TIFF" and img.size == (120, 80)
        img.load()
        if fmt in ("PNG", "BMP"):  # lossless sources: the TIFF holds exactly the same pixels
            with Image.open(source) as src:
                assert img.convert("RGB").tobytes() == src.convert("RGB").tobytes()
    with Image.open(jpeg.output) as img:
        assert img.format == "JPEG" and img.size == (120, 80)


def test_tiff_access_copy_is_shrunk_and_flattened(tmp_path: Path) -> None:
    big = Image.new("RGBA", (3000, 1000), (0, 90, 200, 0))
    big.paste((200, 0, 0, 255), (0, 0, 1500, 1000))
    source = tmp_path / "big.tif"
    big.save(source, "TIFF", compression="tiff_lzw")
    result = run_action("image-access-jpeg", source, tmp_path / "work", TIMEOUT)
    with Image.open(result.output) as img:
        assert img.size == (2000, 667) == access_size((3000, 1000))
        assert img.mode == "RGB"
        pixel = img.getpixel((1900, 300))
        assert isinstance(pixel, tuple) and pixel[0] > 240  # the transparent half came out white, not black
    assert access_size((100, 50), orientation=6) == (50, 100)


def test_wav_to_flac(tmp_path: Path) -> None:
    source = samples.make_wav(tmp_path / "录音.wav", seconds=1.0)
    result = run_action("audio-flac", source, tmp_path / "work", TIMEOUT)
    assert_result(result, tmp_path / "work", "audio-flac")
    info = ffprobe(result.output)
    assert [s["codec_name"] for s in info["streams"]] == ["flac"]
    assert abs(float(info["format"]["duration"]) - 1.0) < 0.05


@pytest.mark.parametrize("ext", ["mp4", "avi"])
def test_video_to_ffv1_and_h264(tmp_path: Path, ext: str) -> None:
    source = samples.make_video(tmp_path / f"影像.{ext}", seconds=1.0)
    work = tmp_path / "work"
    ffv1 = run_action("video-ffv1", source, work, TIMEOUT)
    mp4 = run_action("video-access-mp4", source, work, TIMEOUT)
    assert_result(ffv1, work, "video-ffv1")
    assert_result(mp4, work, "video-access-mp4")
    kinds = {s["codec_type"]: s["codec_name"] for s in ffprobe(ffv1.output)["streams"]}
    assert kinds == {"video": "ffv1", "audio": "flac"}
    assert ffprobe(ffv1.output)["format"]["format_name"].startswith("matroska")
    kinds = {s["codec_type"]: s["codec_name"] for s in ffprobe(mp4.output)["streams"]}
    assert kinds == {"video": "h264", "audio": "aac"}
    for result in (ffv1, mp4):
        assert abs(result.details["duration"] - 1.0) <= 0.5


# -------------------- failures: always a typed error, never a half-made output


@pytest.mark.parametrize(
    ("action", "make"),
    [
        ("pdfa", lambda d: samples.make_garbage_pdf(d / "bad.pdf")),
        ("image-tiff", lambda d: samples.corrupt(samples.make_image(d / "bad.jpg", "JPEG", (400, 300)), 20)),
        ("image-access-jpeg", lambda d: samples.corrupt(samples.make_image(d / "bad.png", "PNG"), 16)),
        ("audio-flac", lambda d: samples.corrupt(samples.make_wav(d / "bad.wav", 0.2), 12)),
        ("video-ffv1", lambda d: samples.corrupt(samples.make_video(d / "bad.mp4", 0.5), 32)),
        ("office-pdfa", lambda d: samples.corrupt(samples.make_docx(d / "bad.docx"), 30)),
    ],
)
def test_corrupt_input_gives_a_typed_error(tmp_path: Path, action: str, make: object) -> None:
    source = make(tmp_path)  # type: ignore[operator]
    work = tmp_path / "work"
    with pytest.raises(PreservationError) as err:
        run_action(action, source, work, TIMEOUT)
    assert isinstance(err.value, ToolFailed | OutputInvalid), err.value
    assert err.value.code in {"PRS002", "PRS004"} and err.value.zh and err.value.en
    assert not (work / action).exists() or not any((work / action).iterdir())
    assert_clean(work)


def test_unknown_action_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NoSafeAction) as err:
        run_action("ofd-to-pdf", samples.make_ofd(tmp_path / "a.ofd"), tmp_path / "work", TIMEOUT)
    assert err.value.code == "PRS005"


# -------------------- damaged PDFs


def test_damaged_pdf_is_repaired(tmp_path: Path) -> None:
    source = samples.make_damaged_pdf(tmp_path / "damaged.pdf", pages=2)
    check = subprocess.run(["qpdf", "--check", str(source)], capture_output=True, text=True)
    assert check.returncode != 0
    result = repair_pdf(source, tmp_path / "work", TIMEOUT)
    assert result.repaired and result.output is not None and result.pages == 2
    assert result.tool == "qpdf" and result.tool_version == tool_version("qpdf")
    assert result.action == "pdf-repair" and result.role == "preservation"
    assert "damaged" in result.note or "xref" in result.note
    assert subprocess.run(["qpdf", "--check", str(result.output)], capture_output=True).returncode == 0
    assert_clean(tmp_path / "work")
    # The repaired copy then migrates like any PDF.
    pdfa = run_action("pdfa", result.output, tmp_path / "work2", TIMEOUT)
    assert pdfa.details["pages"] == 2


def test_sound_pdf_needs_no_repair(tmp_path: Path) -> None:
    result = repair_pdf(samples.make_pdf(tmp_path / "ok.pdf"), tmp_path / "work", TIMEOUT)
    assert not result.repaired and result.output is None


def test_garbage_pdf_is_unrepairable(tmp_path: Path) -> None:
    with pytest.raises(Unrepairable) as err:
        repair_pdf(samples.make_garbage_pdf(tmp_path / "garbage.pdf"), tmp_path / "work", TIMEOUT)
    assert err.value.code == "PRS008" and "PDF" in err.value.zh
    assert_clean(tmp_path / "work")
