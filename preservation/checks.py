"""Validation of migration outputs, run before anything is committed to storage.

Every check returns a :class:`CheckResult` (the facts it established, recorded in the migration event) or
raises :class:`~preservation.tools.OutputInvalid` with the reason in Chinese and English.

Choices made here:

* **PDF/A** (:func:`check_pdfa`): pikepdf opens the file once (no repair needed: qpdf's own check finds no
  damage), it is not encrypted, its page count equals the source's, and its XMP declares the promised
  ``pdfaid:part`` and ``pdfaid:conformance`` (PDF/A-2B) and it has an output intent. This is identification
  and structure, not full ISO 19005 validation (veraPDF would be the tool for that).
* **The source** (:func:`inspect_pdf`): one pikepdf open gives the page count and the CID (CJK) fonts used
  without being embedded, which decide Ghostscript's interpreter (see preservation/actions.py). In-process,
  not ``qpdf --show-npages`` in a child: it is the same library (libqpdf), a process start costs as much as
  the parse, and the file has been read safely before: ``migrate`` runs ``qpdf --check`` on it with the
  timeout first, or, when the ingest's probe (pikepdf in a child process, with a timeout) read it without
  finding damage, at the same time (see preservation/migrate.py, step 4).
* **Text survives** (:func:`text_coverage`): Ghostscript silently replaces the glyphs of non-embedded CJK
  fonts with wrong ones when it has no mapping for them (seen with reportlab's STSong-Light and Ghostscript
  10.0's new interpreter). Both files' text is extracted with ``pdftotext`` (:func:`pdf_text`, once each)
  and the share of the source's letters/ideographs (multiset, order-free) found in the output must be
  ≥ :data:`MIN_TEXT_COVERAGE` (:func:`check_text_kept`). Only a sample of pages is compared — the pages on
  which some font appears for the first time (:attr:`PdfSource.text_pages`), usually page 1 alone —
  because the failure is per font, not per page, and reading a page costs time. The limit of the sample: a
  font listed in a page's resources before it is drawn (shared resource dictionaries) is checked on a page
  that may not use it; the interpreter choice above still looked at every font of the whole document, and
  this check is the safety net behind it. A PDF/A is not handed to pdftotext as it is: poppler builds a
  colour transform from the output intent's ICC profile for every page it reads, which text extraction never
  uses, so pdftotext reads a copy of the sampled pages without the output intent (:func:`_text_view`).
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
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class PdfSource:
    """What the PDF/A action needs to know about an original before running Ghostscript."""

    pages: int
    unembedded_cid_fonts: tuple[str, ...]
    #: 1-based pages on which some font appears for the first time: the text check's sample.
    text_pages: tuple[int, ...] = ()


def inspect_pdf(path: Path) -> PdfSource:
    """Page count, the CID-keyed (CJK) fonts used without being embedded, and the pages where each font
    first appears, from one pikepdf open.

    Fonts are looked up in every page's resources (inherited ones included) and in the form XObjects they
    draw. Raises :class:`ToolFailed` when the file cannot be read as a PDF.
    """
    import pikepdf

    try:
        pdf = pikepdf.open(path)
    except (pikepdf.PdfError, OSError, ValueError) as exc:
        raise ToolFailed("pikepdf", variant="unreadable_pdf", error=exc) from exc
    with pdf:
        try:
            fonts = _FontWalk()
            for number, page in enumerate(pdf.pages, start=1):
                fonts.resources(_page_resources(page.obj), number)
            pages = len(pdf.pages)
        except (pikepdf.PdfError, ValueError, TypeError, AttributeError) as exc:
            raise ToolFailed("pikepdf", variant="unreadable_pdf", error=exc) from exc
    return PdfSource(pages, tuple(sorted(fonts.unembedded_cid)), tuple(sorted(set(fonts.first_use.values()))))


def _page_resources(page: Any) -> Any:
    node, depth = page, 0
    while node is not None and depth < 64:
        if "/Resources" in node:
            return node.Resources
        node, depth = node.get("/Parent"), depth + 1
    return None


class _FontWalk:
    def __init__(self) -> None:
        self.unembedded_cid: set[str] = set()
        self.first_use: dict[Any, int] = {}
        self._seen: set[tuple[int, int]] = set()

    def resources(self, resources: Any, page: int, depth: int = 0) -> None:
        import pikepdf

        if not isinstance(resources, pikepdf.Dictionary) or depth > 16:
            return
        if resources.is_indirect:
            if resources.objgen in self._seen:  # shared with an earlier page: nothing new here
                return
            self._seen.add(resources.objgen)
        font_dict = resources.get("/Font")
        for name, font in font_dict.items() if isinstance(font_dict, pikepdf.Dictionary) else ():
            if isinstance(font, pikepdf.Dictionary):
                self.font(font, str(name), page)
        xobjects = resources.get("/XObject")
        for xobject in xobjects.values() if isinstance(xobjects, pikepdf.Dictionary) else ():
            if isinstance(xobject, pikepdf.Stream) and xobject.get("/Subtype") == pikepdf.Name.Form:
                self.resources(xobject.get("/Resources"), page, depth + 1)

    def font(self, font: Any, name: str, page: int) -> None:
        import pikepdf

        base = str(font.get("/BaseFont", name)).lstrip("/")
        key = font.objgen if font.is_indirect else (page, name)
        if key in self.first_use:
            return
        self.first_use[key] = page
        if font.get("/Subtype") != pikepdf.Name.Type0:
            return
        descendants = font.get("/DescendantFonts")
        cid_font = descendants[0] if isinstance(descendants, pikepdf.Array) and len(descendants) else None
        descriptor = cid_font.get("/FontDescriptor") if isinstance(cid_font, pikepdf.Dictionary) else None
        embedded = isinstance(descriptor, pikepdf.Dictionary) and any(
            key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")
        )
        if not embedded:
            self.unembedded_cid.add(base)


def pdf_text(path: Path, timeout: float, pages: Sequence[int] | None = None) -> str | None:
    """The text of the PDF (or of ``pages``, 1-based) by ``pdftotext`` (poppler-utils), or None when
    pdftotext is not installed: :func:`text_source`, then :func:`read_text`."""
    if shutil.which("pdftotext") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pdftext-") as tmp:
        return read_text(text_source(path, pages, Path(tmp)), Path(tmp), timeout)


@dataclass(frozen=True)
class TextSource:
    """What pdftotext reads for some pages of a PDF: a file and its page ranges (None: every page)."""

    path: Path
    ranges: tuple[tuple[int, int], ...] | None


def text_source(path: Path, pages: Sequence[int] | None, tmp: Path) -> TextSource:
    """What pdftotext should read for ``pages`` of ``path`` (all when None): a PDF with an output intent
    (every PDF/A) as a copy of those pages without it, written into ``tmp`` now (:func:`_text_view`, a few
    ms in-process); any other as it is, consecutive pages as one range."""
    view = tmp / "view.pdf"
    if _text_view(path, pages, view):
        return TextSource(view, None)
    if pages is None:
        return TextSource(path, None)
    ranges: list[tuple[int, int]] = []
    for number in sorted(set(pages)):
        if ranges and ranges[-1][1] == number - 1:
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    return TextSource(path, tuple(ranges))


def read_text(
    source: TextSource, tmp: Path, timeout: float, started: Callable[[], None] | None = None
) -> str | None:
    """pdftotext over ``source`` in the private directory ``tmp``, one run per page range; None when
    pdftotext is not installed. ``started``: see :func:`~preservation.tools.run_tool` (first run)."""
    if shutil.which("pdftotext") is None:
        return None
    parts = []
    for pages in source.ranges if source.ranges is not None else [None]:
        limits = ["-f", str(pages[0]), "-l", str(pages[1])] if pages else []
        target = tmp / "out.txt"
        target.unlink(missing_ok=True)
        argv = ["pdftotext", "-q", "-enc", "UTF-8", *limits, str(source.path), "out.txt"]
        run_tool(argv, cwd=tmp, timeout=timeout, started=started)
        started = None
        parts.append(target.read_text("utf-8", "replace") if target.exists() else "")
    return "".join(parts)


#: Catalogue entries that change what pdftotext reads on a page: form fields (their appearances are drawn
#: from the AcroForm) and optional content (a layer that is off by default is not read).
_TEXT_VIEW_KEYS = ("/AcroForm", "/OCProperties")


def _text_view(path: Path, pages: Sequence[int] | None, dest: Path) -> bool:
    """Write ``pages`` of ``path`` (all when None) without the document's output intents to ``dest`` for
    pdftotext; False (nothing written) when the PDF has no output intent or the copy cannot be made.

    poppler builds a colour transform from the output intent's ICC profile for every page it reads (~40 ms
    a page, in lcms), which text extraction never uses: on a PDF/A that was most of pdftotext's time. The
    copy is pikepdf's page copy (inherited attributes pushed down to each page, stream data copied as it is,
    nothing decoded) plus the catalogue entries of :data:`_TEXT_VIEW_KEYS`, so pdftotext reads the same
    text. An encrypted PDF is read as it is (pdftotext applies its copy permission itself)."""
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            if pdf.is_encrypted or "/OutputIntents" not in pdf.Root:
                return False
            count = len(pdf.pages)
            numbers = sorted(set(pages)) if pages is not None else range(1, count + 1)
            if not numbers or not all(1 <= n <= count for n in numbers):
                return False  # pdftotext reports the bad range itself
            with pikepdf.new() as view:
                for number in numbers:
                    view.pages.append(pdf.pages[number - 1])
                for key in _TEXT_VIEW_KEYS:
                    if key in pdf.Root:
                        view.Root[key] = view.copy_foreign(pdf.make_indirect(pdf.Root[key]))
                view.save(
                    dest,
                    stream_decode_level=pikepdf.StreamDecodeLevel.none,
                    compress_streams=False,
                    fix_metadata_version=False,
                )
    except Exception:  # the copy only saves time: whatever stops it, pdftotext reads the file itself
        dest.unlink(missing_ok=True)
        return False
    return True


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
        raise OutputInvalid(variant="unopenable", error=exc, path=output) from exc
    with pdf:
        problems = pdf.check_pdf_syntax()
        if problems:
            raise OutputInvalid(
                variant="damaged",
                problem=problems[0],
                path=output,
                problems="; ".join(map(str, problems[:5])),
            )
        if pdf.is_encrypted:
            raise OutputInvalid(variant="encrypted", path=output)
        pages = len(pdf.pages)
        if expected_pages is not None and pages != expected_pages:
            raise OutputInvalid(
                variant="pages",
                pages=pages,
                expected=expected_pages,
                path=output,
            )
        if pages < min_pages:
            raise OutputInvalid(variant="no_pages", path=output)
        meta = pdf.open_metadata()
        got_part = str(meta.get("pdfaid:part", "") or "")
        got_conf = str(meta.get("pdfaid:conformance", "") or "").upper()
        if got_part != part or got_conf != conformance.upper():
            claim = f"{got_part}{got_conf}" or "none"
            raise OutputInvalid(
                variant="pdfa_claim",
                part=part,
                conformance=conformance,
                claim=claim,
                path=output,
            )
        if "/OutputIntents" not in pdf.Root:
            raise OutputInvalid(variant="output_intent", path=output)
    return CheckResult("pdfa", {"pages": pages, "pdfa": f"{part}{conformance.upper()}"})


def check_text_kept(source_text: str | None, output_text: str | None, output: Path) -> float | None:
    """Raise when the output lost the source's text (see module docstring); returns the coverage.

    Both texts come from :func:`pdf_text` and the same pages; None (nothing sampled, or no pdftotext)
    leaves nothing to compare."""
    if source_text is None or output_text is None:
        return None
    coverage = text_coverage(source_text, output_text)
    if coverage is not None and coverage < MIN_TEXT_COVERAGE:
        raise OutputInvalid(
            variant="text_lost",
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
        raise OutputInvalid(variant="image_decode", error=exc, path=output) from exc
    if fmt and found_fmt != fmt:
        raise OutputInvalid(variant="image_format", found=found_fmt, expected=fmt, path=output)
    if any(abs(a - b) > tolerance for a, b in zip(size, expected_size, strict=True)):
        raise OutputInvalid(
            variant="image_size",
            width=size[0],
            height=size[1],
            expected_width=expected_size[0],
            expected_height=expected_size[1],
            path=output,
        )
    if expected_frames is not None and frames != expected_frames:
        raise OutputInvalid(
            variant="frames",
            frames=frames,
            expected=expected_frames,
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
        raise ToolFailed("ffprobe", variant="unreadable_answer", stderr=run.stderr) from exc
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
            variant="video_codec",
            expected=video_codec,
            found=", ".join(out.video) or "-",
            path=output,
        )
    if source.audio and not any(c in audio_codecs for c in out.audio):
        raise OutputInvalid(
            variant="audio",
            found=", ".join(out.audio) or "-",
            path=output,
        )
    if source.duration is not None:
        if out.duration is None:
            raise OutputInvalid(variant="no_duration", path=output)
        allowed = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_REL * source.duration)
        if abs(out.duration - source.duration) > allowed:
            raise OutputInvalid(
                variant="duration",
                duration=out.duration,
                expected=source.duration,
                allowed=allowed,
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
            raise OutputInvalid(variant="decode", error=exc.en, path=output) from exc
    return CheckResult(
        "av",
        {
            "duration": out.duration,
            "source_duration": source.duration,
            "video": list(out.video),
            "audio": list(out.audio),
        },
    )
