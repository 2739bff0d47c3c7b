"""The tool runner (preservation/tools.py) and output validation (preservation/checks.py)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from preservation import checks
from preservation.tools import (
    OutputInvalid,
    OutputLimit,
    OutputTooLarge,
    ToolFailed,
    ToolMissing,
    ToolTimeout,
    run_tool,
    tool_version,
)
from tests.preservation import samples


def gone(pid: int) -> bool:
    """The process no longer runs (it may linger as a zombie until its new parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in "ZX"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as err:
        run_tool(
            ["sh", "-c", "sleep 30 & echo $! > child.pid; echo waiting >&2; wait"], cwd=tmp_path, timeout=0.5
        )
    assert time.monotonic() - started < 5
    assert err.value.code == "PRS001" and "0.5" in err.value.en and "0.5" in err.value.zh
    assert "waiting" in err.value.stderr
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 2
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def test_sleep_through_the_runner_times_out(tmp_path: Path) -> None:
    with pytest.raises(ToolTimeout):
        run_tool(["sleep", "5"], cwd=tmp_path, timeout=0.5)


def test_output_too_large_is_stopped(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(OutputTooLarge) as err:
        run_tool(
            ["sh", "-c", "head -c 5000000 /dev/zero > big; sleep 20"],
            cwd=tmp_path,
            timeout=30,
            input_size=1000,
            limit=OutputLimit(ratio=10, floor=100_000, cap=10**9),
        )
    assert time.monotonic() - started < 5
    assert err.value.code == "PRS003"
    assert OutputLimit(ratio=10, floor=100, cap=500).bytes_for(1000) == 500
    assert OutputLimit(ratio=10, floor=100, cap=10**6).bytes_for(5) == 100
    assert OutputLimit(ratio=10, floor=100, cap=10**6).bytes_for(1000) == 10_000


def test_failure_carries_the_stderr_tail(tmp_path: Path) -> None:
    with pytest.raises(ToolFailed) as err:
        run_tool(["sh", "-c", "echo 'x' >&2; echo 'the real reason' >&2; exit 3"], cwd=tmp_path, timeout=5)
    assert err.value.code == "PRS002" and err.value.returncode == 3
    assert "the real reason" in err.value.stderr and "the real reason" in err.value.en
    assert run_tool(["sh", "-c", "exit 3"], cwd=tmp_path, timeout=5, ok_codes=(0, 3)).returncode == 3
    with pytest.raises(ToolMissing) as missing:
        run_tool(["no-such-tool-here"], cwd=tmp_path, timeout=5)
    assert missing.value.code == "PRS006"


def test_a_run_is_stopped_from_outside_with_its_process_group(tmp_path: Path) -> None:
    stop = threading.Event()
    with pytest.raises(ToolFailed, match="stopped") as err:
        run_tool(
            ["sh", "-c", "sleep 30 & echo $! > child.pid; wait"],
            cwd=tmp_path,
            timeout=60,
            started=stop.set,  # called once the process runs: stop it at once
            stop=stop,
        )
    assert err.value.code == "PRS002"
    if (tmp_path / "child.pid").exists():  # the shell got that far: its child went with the group
        child = int((tmp_path / "child.pid").read_text())
        deadline = time.monotonic() + 10
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child)
    with pytest.raises(ToolFailed, match="stopped"):  # already stopped: nothing starts
        run_tool(["touch", "ran"], cwd=tmp_path, timeout=5, stop=stop)
    assert not (tmp_path / "ran").exists()


def test_tool_versions() -> None:
    for name in ("gs", "soffice", "ffmpeg", "convert", "qpdf", "pikepdf"):
        version = tool_version(name)
        assert version != "unknown" and version[0].isdigit(), (name, version)
    assert tool_version("no-such-tool-here") == "unknown"


# -------------------- PDF


def test_check_pdfa_refuses_plain_encrypted_and_short(tmp_path: Path) -> None:
    plain = samples.make_pdf(tmp_path / "plain.pdf", pages=2)
    with pytest.raises(OutputInvalid) as err:
        checks.check_pdfa(plain, expected_pages=2)
    assert err.value.code == "PRS004" and "PDF/A-2B" in err.value.en

    claim = tmp_path / "claim.pdf"
    with pikepdf.open(plain) as pdf:
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
        pdf.save(claim)
    with pytest.raises(OutputInvalid, match="output intent"):
        checks.check_pdfa(claim, expected_pages=2)
    with pytest.raises(OutputInvalid, match="2 pages"):
        checks.check_pdfa(claim, expected_pages=3)

    encrypted = tmp_path / "enc.pdf"
    with pikepdf.open(claim) as pdf:
        pdf.save(encrypted, encryption=pikepdf.Encryption(user="", owner="o", R=6))
    with pytest.raises(OutputInvalid, match="encrypted"):
        checks.check_pdfa(encrypted)

    with pytest.raises(OutputInvalid, match="cannot be opened"):
        checks.check_pdfa(samples.make_garbage_pdf(tmp_path / "g.pdf"))


def test_inspect_pdf_counts_pages_and_finds_unembedded_cjk_fonts(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    cjk_pdf = samples.make_pdf(tmp_path / "cjk.pdf", pages=3)
    cjk = checks.inspect_pdf(cjk_pdf)
    assert cjk == checks.PdfSource(pages=3, unembedded_cid_fonts=("STSong-Light",), text_pages=(1,))
    # The text check's sample: page 1, where both fonts first appear; pages are read as asked.
    assert checks.pdf_text(cjk_pdf, 10, cjk.text_pages) == checks.pdf_text(cjk_pdf, 10, [1])
    text = checks.pdf_text(cjk_pdf, 10, [1, 3]) or ""
    assert "第1页" in text and "第3页" in text and "第2页" not in text
    latin = tmp_path / "latin.pdf"
    c = canvas.Canvas(str(latin))
    for n in range(2):
        c.setFont("Helvetica", 12)  # a standard font, not embedded either, but not CID-keyed
        c.drawString(72, 700, f"Latin only (page {n + 1})")
        c.showPage()
    c.save()
    assert checks.inspect_pdf(latin) == checks.PdfSource(pages=2, unembedded_cid_fonts=(), text_pages=(1,))
    # A font used only inside a form XObject counts too.
    nested = tmp_path / "nested.pdf"
    with pikepdf.open(samples.make_pdf(tmp_path / "src.pdf")) as src, pikepdf.new() as pdf:
        page = src.pages[0]
        pdf.pages.append(pikepdf.Page(pikepdf.Dictionary(Type=pikepdf.Name.Page, MediaBox=[0, 0, 612, 792])))
        form = pdf.copy_foreign(page.as_form_xobject())
        pdf.pages[0].obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fx=form))
        pdf.save(nested)
    assert checks.inspect_pdf(nested).unembedded_cid_fonts == ("STSong-Light",)
    # A font first drawn on a later page adds that page to the sample.
    mixed = tmp_path / "mixed.pdf"
    with pikepdf.open(latin) as pdf, pikepdf.open(cjk_pdf) as other:
        pdf.pages.append(other.pages[1])
        pdf.save(mixed)
    assert checks.inspect_pdf(mixed).text_pages == (1, 3)
    with pytest.raises(ToolFailed, match="cannot be read"):
        checks.inspect_pdf(samples.make_garbage_pdf(tmp_path / "g.pdf"))


def test_pdfa_text_is_read_from_a_copy_without_the_output_intent(tmp_path: Path) -> None:
    """poppler's colour transform for the output intent costs ~40 ms a page; the copy pdftotext reads instead
    gives the same text: the same pages, form fields drawn, hidden layers still hidden."""
    plain = samples.make_pdf(tmp_path / "plain.pdf", pages=3)
    pdfa = samples.with_output_intent(plain, tmp_path / "intent.pdf")

    def pdftotext(path: Path, first: int, last: int) -> str:
        argv = ["pdftotext", "-q", "-enc", "UTF-8", "-f", str(first), "-l", str(last), str(path), "-"]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    work = tmp_path / "work"
    work.mkdir()
    source = checks.text_source(pdfa, [3, 1], work)
    assert source == checks.TextSource(work / "view.pdf", None)
    with pikepdf.open(source.path) as view:
        assert len(view.pages) == 2 and "/OutputIntents" not in view.Root
    text = checks.read_text(source, work, 10)
    assert text == pdftotext(pdfa, 1, 1) + pdftotext(pdfa, 3, 3)
    assert "FIELD-VALUE" in text and "HIDDEN-LAYER" not in text and "第3页" in text
    assert checks.pdf_text(pdfa, 10, [1, 3]) == text
    # Without an output intent, or encrypted (pdftotext applies the copy permission): read as it is.
    assert checks.text_source(plain, [1, 2, 3], work) == checks.TextSource(plain, ((1, 3),))
    encrypted = tmp_path / "encrypted.pdf"
    with pikepdf.open(pdfa) as pdf:
        pdf.save(encrypted, encryption=pikepdf.Encryption(user="", owner="o", R=6))
    assert checks.text_source(encrypted, [1], work) == checks.TextSource(encrypted, ((1, 1),))


def test_text_coverage() -> None:
    assert checks.text_coverage("关于做好档案移交工作的通知", "关于做好档案移交工作的通知 page 1") == 1.0
    assert checks.text_coverage("关于做好档案移交工作的通知", "頣銈陒㕾䑶䑛銯㧮鏅") == 0.0
    assert checks.text_coverage("short", "") is None  # too little text to judge


# -------------------- images


def test_check_image(tmp_path: Path) -> None:
    png = samples.make_image(tmp_path / "a.png", "PNG", size=(40, 30))
    assert checks.check_image(png, expected_size=(40, 30), fmt="PNG").facts["width"] == 40
    with pytest.raises(OutputInvalid, match="expected 41"):
        checks.check_image(png, expected_size=(41, 30))
    assert checks.check_image(png, expected_size=(41, 31), tolerance=1).facts["height"] == 30
    with pytest.raises(OutputInvalid, match="not TIFF"):
        checks.check_image(png, expected_size=(40, 30), fmt="TIFF")
    truncated = tmp_path / "t.png"
    truncated.write_bytes(png.read_bytes()[:-40])
    with pytest.raises(OutputInvalid, match="does not decode"):
        checks.check_image(truncated, expected_size=(40, 30))
    multi = tmp_path / "m.tif"
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    frames[0].save(multi, save_all=True, append_images=frames[1:])
    with pytest.raises(OutputInvalid, match="2 frames"):
        checks.check_image(multi, expected_size=(10, 10), expected_frames=1)


# -------------------- audio / video


def test_check_av_durations_codecs_and_decoding(tmp_path: Path) -> None:
    wav = samples.make_wav(tmp_path / "a.wav", seconds=1.0)
    short = samples.make_wav(tmp_path / "short.wav", seconds=0.3)
    source = checks.probe(wav, 10)
    assert source.audio == ("pcm_s16le",) and source.video == ()
    assert source.duration is not None and abs(source.duration - 1.0) < 0.01
    assert checks.check_av(wav, source, video_codec=None, audio_codecs=["pcm_s16le"], timeout=10)
    with pytest.raises(OutputInvalid, match="apart"):
        checks.check_av(short, source, video_codec=None, audio_codecs=["pcm_s16le"], timeout=10)
    with pytest.raises(OutputInvalid, match="audio"):
        checks.check_av(wav, source, video_codec=None, audio_codecs=["flac"], timeout=10)
    with pytest.raises(OutputInvalid, match="video codec"):
        checks.check_av(wav, source, video_codec="ffv1", audio_codecs=["pcm_s16le"], timeout=10)

    video = samples.make_video(tmp_path / "v.mp4", seconds=1.0)
    vprobe = checks.probe(video, 10)
    broken = tmp_path / "broken.mp4"
    data = bytearray(video.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = os.urandom(2000)
    broken.write_bytes(bytes(data))
    with pytest.raises((OutputInvalid, ToolFailed)):
        checks.check_av(broken, vprobe, video_codec="h264", audio_codecs=["aac"], timeout=10)
