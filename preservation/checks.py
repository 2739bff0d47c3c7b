"""Validation of migration outputs, run before anything is committed to storage.

Every check returns a :class:`CheckResult` (the facts it established, recorded in the migration event) or
raises :class:`~preservation.tools.OutputInvalid` with the reason in Chinese and English.

Choices made here:

* **PDF/A** (:func:`check_pdfa`): pikepdf opens the file (no repair needed: qpdf's own check finds no
  damage), it is not encrypted, its page count equals the source's (counted by ``qpdf --show-npages`` in a
  child process, so a hostile source cannot hang the worker), and its XMP declares the promised
  ``pdfaid:part`` and ``pdfaid:conformance`` (PDF/A-2B) and it has an output intent. This is identification
  and structure, not full ISO 19005 validation (veraPDF would be the tool for that).
* **Text survives** (:func:`text_coverage`): Ghostscript silently replaces the glyphs of non-embedded CJK
  fonts with wrong ones when it has no mapping for them (seen with reportlab's STSong-Light and Ghostscript
  10.0's new interpreter). Both files' text is extracted with ``pdftotext`` and the share of the source's
  letters/ideographs (multiset, order-free) found in the output must be ≥ :data:`MIN_TEXT_COVERAGE`.
* **Images** (:func:`check_image`): Pillow (a different decoder than the ImageMagick that wrote the file)
  decodes every frame fully; the size must equal the expected one (±1 px for resized access copies), and a
  TIFF preservation copy must have as many frames as the source.
* **Audio/video** (:func:`check_av`): ffprobe finds the promised codecs, an audio stream when the source had
  one, and a duration within max(0.5 s, 1 %) of the source's; then ``ffmpeg -xerror -f null`` decodes the
  whole output (same timeout as the migration).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preservation.tools import OutputInvalid, ToolFailed, run_tool

MIN_TEXT_COVERAGE = 0.9
MIN_TEXT_CHARS = 10
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_REL = 0.01


@dataclass
class CheckResult:
    kind: str
    facts: dict[str, Any] = field(default_factory=dict)


# -------------------- PDF


def pdf_pages(path: Path, timeout: float) -> int:
    """Page count by ``qpdf --show-npages`` (exit 3 = warnings, e.g. a repaired xref, is fine)."""
    with tempfile.TemporaryDirectory(prefix="npages-") as tmp:
        run = run_tool(["qpdf", "--show-npages", str(path)], cwd=Path(tmp), timeout=timeout, ok_codes=(0, 3))
    try:
        return int(run.stdout.strip().splitlines()[0])
    except (IndexError, ValueError) as exc:
        raise ToolFailed("qpdf", "no page count", run.stderr) from exc


def pdf_text(path: Path, timeout: float) -> str | None:
    """The PDF's text by ``pdftotext`` (poppler-utils), or None when pdftotext is not installed."""
    if shutil.which("pdftotext") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pdftext-") as tmp:
        run_tool(["pdftotext", "-q", "-enc", "UTF-8", str(path), "out.txt"], cwd=Path(tmp), timeout=timeout)
        target = Path(tmp) / "out.txt"
        return target.read_text("utf-8", "replace") if target.exists() else ""


def text_coverage(source: str, output: str) -> float | None:
    """Share of the source's letters, digits and ideographs found again in the output (None: too little text)."""
    want = Counter(c for c in source if c.isalnum())
    if sum(want.values()) < MIN_TEXT_CHARS:
        return None
    have = Counter(c for c in output if c.isalnum())
    found = sum(min(n, have[c]) for c, n in want.items())
    return found / sum(want.values())


def check_pdfa(
    output: Path,
    *,
    expected_pages: int | None = None,
    min_pages: int = 1,
    part: str = "2",
    conformance: str = "B",
) -> CheckResult:
    """A PDF/A the archive can keep: opens cleanly, not encrypted, right page count, XMP declares PDF/A."""
    import pikepdf

    try:
        pdf = pikepdf.open(output)
    except (pikepdf.PdfError, OSError, ValueError) as exc:
        raise OutputInvalid(
            f"PDF 无法打开（{exc}）", f"the PDF cannot be opened ({exc})", path=output
        ) from exc
    with pdf:
        problems = pdf.check_pdf_syntax()
        if problems:
            raise OutputInvalid(
                f"PDF 结构有误：{problems[0]}",
                f"the PDF is damaged: {problems[0]}",
                path=output,
                problems="; ".join(map(str, problems[:5])),
            )
        if pdf.is_encrypted:
            raise OutputInvalid("PDF 已加密", "the PDF is encrypted", path=output)
        pages = len(pdf.pages)
        if expected_pages is not None and pages != expected_pages:
            raise OutputInvalid(
                f"页数 {pages} 与原件 {expected_pages} 不符",
                f"it has {pages} pages, the original {expected_pages}",
                path=output,
            )
        if pages < min_pages:
            raise OutputInvalid("PDF 没有页面", "the PDF has no pages", path=output)
        meta = pdf.open_metadata()
        got_part = str(meta.get("pdfaid:part", "") or "")
        got_conf = str(meta.get("pdfaid:conformance", "") or "").upper()
        if got_part != part or got_conf != conformance.upper():
            claim = f"{got_part}{got_conf}" or "none"
            raise OutputInvalid(
                f"XMP 未声明 PDF/A-{part}{conformance}（实际：{claim}）",
                f"its XMP does not declare PDF/A-{part}{conformance} (found: {claim})",
                path=output,
            )
        if "/OutputIntents" not in pdf.Root:
            raise OutputInvalid("缺少输出意图（OutputIntent）", "it has no output intent", path=output)
    return CheckResult("pdfa", {"pages": pages, "pdfa": f"{part}{conformance.upper()}"})


def check_text_kept(source_text: str | None, output: Path, timeout: float) -> float | None:
    """Raise when the output lost the source's text (see module docstring); returns the coverage."""
    if source_text is None:
        return None
    out_text = pdf_text(output, timeout)
    if out_text is None:
        return None
    coverage = text_coverage(source_text, out_text)
    if coverage is not None and coverage < MIN_TEXT_COVERAGE:
        raise OutputInvalid(
            f"文字未能保留（仅 {coverage:.0%} 与原件一致，可能缺少中文字体映射）",
            f"the text was not preserved (only {coverage:.0%} matches the original; a CJK font mapping "
            "may be missing)",
            path=output,
            coverage=round(coverage, 3),
        )
    return coverage


# -------------------- images


def image_facts(path: Path) -> tuple[tuple[int, int], int, int]:
    """(size, frames, EXIF orientation) from the header, without decoding the pixels."""
    from PIL import Image

    with Image.open(path) as img:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
        return img.size, int(getattr(img, "n_frames", 1)), orientation


def check_image(
    output: Path,
    *,
    expected_size: tuple[int, int],
    expected_frames: int | None = None,
    tolerance: int = 0,
    fmt: str | None = None,
) -> CheckResult:
    """The output decodes (every frame) and has the expected size (± ``tolerance`` px) and frame count."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(output) as img:
            found_fmt = img.format
            size = img.size
            frames = int(getattr(img, "n_frames", 1))
            for n in range(frames):
                img.seek(n)
                img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise OutputInvalid(
            f"图像无法解码（{exc}）", f"the image does not decode ({exc})", path=output
        ) from exc
    if fmt and found_fmt != fmt:
        raise OutputInvalid(
            f"图像格式为 {found_fmt}，应为 {fmt}", f"the image is {found_fmt}, not {fmt}", path=output
        )
    if any(abs(a - b) > tolerance for a, b in zip(size, expected_size, strict=True)):
        raise OutputInvalid(
            f"图像尺寸 {size[0]}×{size[1]} 与预期 {expected_size[0]}×{expected_size[1]} 不符",
            f"the image is {size[0]}×{size[1]}, expected {expected_size[0]}×{expected_size[1]}",
            path=output,
        )
    if expected_frames is not None and frames != expected_frames:
        raise OutputInvalid(
            f"帧数 {frames} 与原件 {expected_frames} 不符",
            f"it has {frames} frames, the original {expected_frames}",
            path=output,
        )
    return CheckResult("image", {"width": size[0], "height": size[1], "frames": frames, "format": found_fmt})


# -------------------- audio / video


@dataclass(frozen=True)
class Probe:
    duration: float | None
    video: tuple[str, ...]
    audio: tuple[str, ...]
    raw: dict[str, Any]


def probe(path: Path, timeout: float) -> Probe:
    """ffprobe's view of a file: duration (container, else longest stream) and codec names per kind."""
    with tempfile.TemporaryDirectory(prefix="ffprobe-") as tmp:
        run = run_tool(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
            cwd=Path(tmp),
            timeout=timeout,
        )
    try:
        data = json.loads(run.stdout)
    except json.JSONDecodeError as exc:
        raise ToolFailed("ffprobe", "unreadable answer", run.stderr) from exc
    streams = data.get("streams", [])

    def seconds(value: Any) -> float | None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    duration = seconds(data.get("format", {}).get("duration"))
    if duration is None:
        durations = [d for d in (seconds(s.get("duration")) for s in streams) if d is not None]
        duration = max(durations) if durations else None
    video = tuple(
        s.get("codec_name", "?")
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    )
    audio = tuple(s.get("codec_name", "?") for s in streams if s.get("codec_type") == "audio")
    return Probe(duration, video, audio, data)


def check_av(
    output: Path,
    source: Probe,
    *,
    video_codec: str | None,
    audio_codecs: Sequence[str],
    timeout: float,
) -> CheckResult:
    """Codecs as promised, audio kept, duration within tolerance, and the whole output decodes."""
    out = probe(output, timeout)
    if video_codec is not None and video_codec not in out.video:
        raise OutputInvalid(
            f"视频编码应为 {video_codec}，实际为 {', '.join(out.video) or '无'}",
            f"the video codec should be {video_codec}, found {', '.join(out.video) or 'none'}",
            path=output,
        )
    if source.audio and not any(c in audio_codecs for c in out.audio):
        raise OutputInvalid(
            f"音频流缺失或编码不符（{', '.join(out.audio) or '无'}）",
            f"the audio stream is missing or has the wrong codec ({', '.join(out.audio) or 'none'})",
            path=output,
        )
    if source.duration is not None:
        if out.duration is None:
            raise OutputInvalid("无法读取时长", "its duration cannot be read", path=output)
        allowed = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_REL * source.duration)
        if abs(out.duration - source.duration) > allowed:
            raise OutputInvalid(
                f"时长 {out.duration:.3f} 秒与原件 {source.duration:.3f} 秒相差超过 {allowed:.2f} 秒",
                f"it lasts {out.duration:.3f} s, the original {source.duration:.3f} s (more than "
                f"{allowed:.2f} s apart)",
                path=output,
            )
    with tempfile.TemporaryDirectory(prefix="decode-") as tmp:
        try:
            run_tool(
                ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(output), "-f", "null", "-"],
                cwd=Path(tmp),
                timeout=timeout,
                name="ffmpeg",
            )
        except ToolFailed as exc:
            raise OutputInvalid(
                f"无法完整解码（{exc.en}）", f"it does not decode completely ({exc.en})", path=output
            ) from exc
    return CheckResult(
        "av",
        {
            "duration": out.duration,
            "source_duration": source.duration,
            "video": list(out.video),
            "audio": list(out.audio),
        },
    )
