"""Preservation actions: make one derivative of one file, validate it, hand it back.

:func:`run_action` runs the action named by an :class:`~preservation.policy.ActionSpec` on ``source`` (which
is only read: the tool sees it through a symlink) inside a private directory under ``workdir``, validates
the result with ``preservation/checks.py`` and moves it to ``workdir/<action>/<source stem>.<ext>``. Only a
validated file ever appears there; on any error the private directory is removed and a typed
:class:`~preservation.tools.PreservationError` is raised (ToolTimeout, ToolFailed, OutputTooLarge,
ToolMissing, OutputInvalid, NoSafeAction). Recording the derivative (OCFL version, File rows, PREMIS event)
is the caller's job; :class:`ActionResult` carries everything it needs.

Choices made here:

* **pdfa** — Ghostscript ``pdfwrite`` with ``-dPDFA=2 -dPDFACompatibilityPolicy=1
  -sColorConversionStrategy=RGB`` and our own PDFA_def.ps naming an sRGB ICC profile (pikepdf's copy, which
  is always installed, else Ghostscript's ``srgb.icc``), run with ``-dSAFER`` and read permission for the
  private directory only. When the output lost the source's text (wrong glyphs for non-embedded CJK fonts,
  a Ghostscript 10.0 new-interpreter bug) it is redone once with the legacy interpreter
  (``-dNEWPDF=false``), which maps them right; if the text is still lost the action fails (OutputInvalid).
  Ghostscript needs CJK fonts for non-embedded Chinese fonts: Debian ``fonts-arphic-uming`` and
  ``fonts-arphic-ukai`` (Ghostscript's Debian cidfmap maps STSong-Light/Adobe-GB1 to them).
* **office-pdfa** — LibreOffice headless, ``soffice.bin`` directly, a fresh private profile per run
  (``-env:UserInstallation``; parallel runs would otherwise collide on the lock) and the JSON filter options
  ``{"SelectPdfVersion": 2}`` of ``writer_pdf_Export`` (LibreOffice ≥ 7.4; it serves Calc and Impress files
  too). LibreOffice exits 0 even when it cannot load a file, so "no output" is the failure signal.
* **image-tiff** — ImageMagick ``convert in -compress lzw out.tif``: lossless, every frame (an animated GIF
  becomes a multi-page TIFF), ICC profile and metadata kept. **image-access-jpeg** — first frame, EXIF
  orientation applied, alpha flattened on white, sRGB, metadata stripped (public copies carry no GPS),
  longest edge at most :data:`ACCESS_MAX_EDGE` px (never enlarged), quality 85, progressive.
* **audio-flac** — ``ffmpeg -map 0:a -c:a flac -map_metadata 0`` (lossless).
* **video-ffv1** — ``-c:v ffv1 -level 3 -g 1 -slicecrc 1 -slices 4`` (intra-only, per-slice CRCs), audio to
  FLAC, all video and audio streams, metadata kept, Matroska. **video-access-mp4** — first video and audio
  stream, H.264 CRF 23 ``yuv420p`` (dimensions rounded down to even), AAC 128 kb/s, ``+faststart``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preservation import checks
from preservation.policy import ACTIONS, ActionSpec, Role
from preservation.tools import (
    NoSafeAction,
    OutputLimit,
    ToolFailed,
    run_tool,
    soffice_binary,
    soffice_env,
    soffice_profile,
    soffice_profile_arg,
    tool_version,
)

ACCESS_MAX_EDGE = 2000
ACCESS_JPEG_QUALITY = 85
PDFA_PART, PDFA_CONFORMANCE = "2", "B"
LIBREOFFICE_PDFA_FILTER = 'pdf:writer_pdf_Export:{"SelectPdfVersion":{"type":"long","value":"2"}}'

#: Output limits per action (see preservation/tools.py, OutputLimit).
LIMITS: dict[str, OutputLimit] = {
    "pdfa": OutputLimit(ratio=20),
    "office-pdfa": OutputLimit(ratio=50),
    "image-tiff": OutputLimit(ratio=100),
    "image-access-jpeg": OutputLimit(ratio=10),
    "audio-flac": OutputLimit(ratio=2),
    "video-ffv1": OutputLimit(ratio=200),
    "video-access-mp4": OutputLimit(ratio=20),
}


@dataclass(frozen=True)
class ActionResult:
    """A validated derivative, ready to be recorded."""

    action: str
    output: Path
    tool: str
    tool_version: str
    role: Role
    extension: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    spec: ActionSpec
    source: Path
    link: Path
    tmp: Path
    timeout: float
    limit: OutputLimit

    @property
    def size(self) -> int:
        return self.source.stat().st_size


def run_action(
    spec: ActionSpec | str,
    source: Path,
    workdir: Path,
    timeout: float,
    *,
    limit: OutputLimit | None = None,
) -> ActionResult:
    """Run one action on ``source``; the validated output lands in ``workdir/<action>/``."""
    if isinstance(spec, str):
        if spec not in ACTIONS:
            raise NoSafeAction(f"未知的处理方式 {spec}", f"Unknown preservation action {spec}", action=spec)
        spec = ACTIONS[spec]
    impl = _IMPLEMENTATIONS.get(spec.name)
    if impl is None:
        raise NoSafeAction(
            f"未实现的处理方式 {spec.name}", f"No implementation for action {spec.name}", action=spec.name
        )
    source = Path(source).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=f".{spec.name}-") as tmp_name:
        tmp = Path(tmp_name)
        link = tmp / f"in{source.suffix.lower()}"
        link.symlink_to(source)
        job = _Job(spec, source, link, tmp, timeout, limit or LIMITS.get(spec.name, OutputLimit()))
        produced, details = impl(job)
        final_dir = workdir / spec.name
        final_dir.mkdir(exist_ok=True)
        final = final_dir / f"{source.stem}.{spec.extension}"
        produced.replace(final)
    return ActionResult(
        spec.name, final, spec.tool, tool_version(spec.tool), spec.role, spec.extension, details
    )


def _expect_output(job: _Job, path: Path, tool: str, stderr: str = "") -> Path:
    if not path.is_file() or path.stat().st_size == 0:
        raise ToolFailed(tool, "no output was written", stderr)
    return path


# -------------------- PDF → PDF/A


def _srgb_profile() -> Path:
    from importlib import resources

    candidate = Path(str(resources.files("pikepdf") / "pdfa" / "data" / "sRGB.icc"))
    if candidate.exists():
        return candidate
    found = sorted(Path("/usr/share").glob("ghostscript/*/iccprofiles/srgb.icc")) + sorted(
        Path("/usr/share/color/icc").glob("**/srgb.icc")
    )
    if not found:
        raise ToolFailed("gs", "no sRGB ICC profile found for the PDF/A output intent")
    return found[0]


_PDFA_DEF = """%!
[/_objdef {{icc_PDFA}} /type /stream /OBJ pdfmark
[{{icc_PDFA}} <</N 3>> /PUT pdfmark
[{{icc_PDFA}} ({icc}) (r) file /PUT pdfmark
[/_objdef {{OutputIntent_PDFA}} /type /dict /OBJ pdfmark
[{{OutputIntent_PDFA}} <</Type /OutputIntent /S /GTS_PDFA1 /DestOutputProfile {{icc_PDFA}}
  /OutputConditionIdentifier (sRGB) /Info (sRGB IEC61966-2.1)>> /PUT pdfmark
[{{Catalog}} <</OutputIntents [ {{OutputIntent_PDFA}} ]>> /PUT pdfmark
"""


def _pdfa(job: _Job) -> tuple[Path, dict[str, Any]]:
    pages = checks.pdf_pages(job.link, job.timeout)
    source_text = checks.pdf_text(job.link, job.timeout)
    icc = job.tmp / "srgb.icc"
    shutil.copyfile(_srgb_profile(), icc)
    (job.tmp / "pdfa_def.ps").write_text(_PDFA_DEF.format(icc=icc), encoding="ascii")
    last: Exception | None = None
    for interpreter in ("default", "legacy"):
        out = job.tmp / "out.pdf"
        out.unlink(missing_ok=True)
        argv = [
            "gs",
            "-q",
            "-dSAFER",
            "-dBATCH",
            "-dNOPAUSE",
            "-dNOOUTERSAVE",
            f"-dPDFA={PDFA_PART}",
            "-dPDFACompatibilityPolicy=1",
            "-sColorConversionStrategy=RGB",
            "-sDEVICE=pdfwrite",
            f"--permit-file-read={job.tmp}/",
            f"-sOutputFile={out}",
        ]
        if interpreter == "legacy":
            argv.append("-dNEWPDF=false")
        run = run_tool(
            [*argv, "pdfa_def.ps", str(job.link)],
            cwd=job.tmp,
            timeout=job.timeout,
            input_size=job.size,
            limit=job.limit,
            name="gs",
        )
        _expect_output(job, out, "gs", run.stderr)
        result = checks.check_pdfa(out, expected_pages=pages, part=PDFA_PART, conformance=PDFA_CONFORMANCE)
        try:
            coverage = checks.check_text_kept(source_text, out, job.timeout)
        except checks.OutputInvalid as exc:
            last = exc
            continue
        return out, {**result.facts, "interpreter": interpreter, "text_coverage": coverage}
    assert last is not None
    raise last


# -------------------- office → PDF/A


def _office_pdfa(job: _Job) -> tuple[Path, dict[str, Any]]:
    profile = soffice_profile(job.tmp / "profile", job.timeout)
    outdir = job.tmp / "out"
    argv = [
        soffice_binary(),
        soffice_profile_arg(profile),
        "--headless",
        "--invisible",
        "--norestore",
        "--nologo",
        "--nodefault",
        "--nolockcheck",
        "--convert-to",
        LIBREOFFICE_PDFA_FILTER,
        "--outdir",
        str(outdir),
        str(job.link),
    ]
    for _ in range(2):  # status 81: the profile needed a restart; the second run converts
        run = run_tool(
            argv,
            cwd=job.tmp,
            timeout=job.timeout,
            input_size=job.size,
            limit=job.limit,
            env=soffice_env(job.tmp),
            ok_codes=(0, 81),
            name="soffice",
        )
        if run.returncode == 0:
            break
    else:
        raise ToolFailed("soffice", "LibreOffice kept asking for a restart (exit status 81)", run.stderr, 81)
    out = _expect_output(job, outdir / "in.pdf", "soffice", run.stdout + run.stderr)
    result = checks.check_pdfa(out, min_pages=1, part=PDFA_PART, conformance=PDFA_CONFORMANCE)
    return out, result.facts


# -------------------- images


def _source_image(job: _Job) -> tuple[tuple[int, int], int, int]:
    try:
        return checks.image_facts(job.link)
    except Exception as exc:  # Pillow raises many kinds for unreadable headers
        raise ToolFailed("pillow", f"the original image cannot be read ({exc})") from exc


def _image_tiff(job: _Job) -> tuple[Path, dict[str, Any]]:
    out = job.tmp / "out.tif"
    run = run_tool(
        ["convert", str(job.link), "-compress", "lzw", str(out)],
        cwd=job.tmp,
        timeout=job.timeout,
        input_size=job.size,
        limit=job.limit,
        name="convert",
    )
    _expect_output(job, out, "convert", run.stderr)
    size, frames, _ = _source_image(job)
    result = checks.check_image(out, expected_size=size, expected_frames=frames, fmt="TIFF")
    return out, {**result.facts, "compression": "lzw"}


def access_size(
    size: tuple[int, int], orientation: int = 1, max_edge: int = ACCESS_MAX_EDGE
) -> tuple[int, int]:
    """The access copy's size: EXIF rotation applied, shrunk to ``max_edge`` (never enlarged)."""
    w, h = (size[1], size[0]) if orientation in (5, 6, 7, 8) else size
    scale = min(1.0, max_edge / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _image_access_jpeg(job: _Job) -> tuple[Path, dict[str, Any]]:
    out = job.tmp / "out.jpg"
    run = run_tool(
        [
            "convert",
            f"{job.link}[0]",
            "-auto-orient",
            "-background",
            "white",
            "-alpha",
            "remove",
            "-alpha",
            "off",
            "-colorspace",
            "sRGB",
            "-resize",
            f"{ACCESS_MAX_EDGE}x{ACCESS_MAX_EDGE}>",
            "-strip",
            "-quality",
            str(ACCESS_JPEG_QUALITY),
            "-interlace",
            "Plane",
            f"jpg:{out}",
        ],
        cwd=job.tmp,
        timeout=job.timeout,
        input_size=job.size,
        limit=job.limit,
        name="convert",
    )
    _expect_output(job, out, "convert", run.stderr)
    size, _, orientation = _source_image(job)
    expected = access_size(size, orientation)
    result = checks.check_image(out, expected_size=expected, tolerance=1, fmt="JPEG")
    return out, {**result.facts, "quality": ACCESS_JPEG_QUALITY, "max_edge": ACCESS_MAX_EDGE}


# -------------------- audio / video


def _ffmpeg(job: _Job, args: list[str], out: Path) -> None:
    run = run_tool(
        ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(job.link), *args, str(out)],
        cwd=job.tmp,
        timeout=job.timeout,
        input_size=job.size,
        limit=job.limit,
        name="ffmpeg",
    )
    _expect_output(job, out, "ffmpeg", run.stderr)


def _source_probe(job: _Job, need_video: bool) -> checks.Probe:
    src = checks.probe(job.link, job.timeout)
    if need_video and not src.video:
        raise ToolFailed("ffprobe", "the original has no video stream")
    if not need_video and not src.audio:
        raise ToolFailed("ffprobe", "the original has no audio stream")
    return src


def _audio_flac(job: _Job) -> tuple[Path, dict[str, Any]]:
    src = _source_probe(job, need_video=False)
    out = job.tmp / "out.flac"
    _ffmpeg(job, ["-map", "0:a", "-c:a", "flac", "-map_metadata", "0"], out)
    result = checks.check_av(out, src, video_codec=None, audio_codecs=["flac"], timeout=job.timeout)
    return out, result.facts


def _video_ffv1(job: _Job) -> tuple[Path, dict[str, Any]]:
    src = _source_probe(job, need_video=True)
    out = job.tmp / "out.mkv"
    _ffmpeg(
        job,
        [
            "-map",
            "0:v",
            "-map",
            "0:a?",
            "-c:v",
            "ffv1",
            "-level",
            "3",
            "-g",
            "1",
            "-slicecrc",
            "1",
            "-slices",
            "4",
            "-c:a",
            "flac",
            "-map_metadata",
            "0",
        ],
        out,
    )
    result = checks.check_av(out, src, video_codec="ffv1", audio_codecs=["flac"], timeout=job.timeout)
    return out, result.facts


def _video_access_mp4(job: _Job) -> tuple[Path, dict[str, Any]]:
    src = _source_probe(job, need_video=True)
    out = job.tmp / "out.mp4"
    _ffmpeg(
        job,
        [
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c:v",
            "libx264",
            "-preset",
            "medium",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-vf",
            "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ],
        out,
    )
    result = checks.check_av(out, src, video_codec="h264", audio_codecs=["aac"], timeout=job.timeout)
    return out, result.facts


_IMPLEMENTATIONS: dict[str, Callable[[_Job], tuple[Path, dict[str, Any]]]] = {
    "pdfa": _pdfa,
    "office-pdfa": _office_pdfa,
    "image-tiff": _image_tiff,
    "image-access-jpeg": _image_access_jpeg,
    "audio-flac": _audio_flac,
    "video-ffv1": _video_ffv1,
    "video-access-mp4": _video_access_mp4,
}
