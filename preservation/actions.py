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
  private directory only. Ghostscript 10.0's new interpreter replaces the glyphs of non-embedded CJK fonts
  with wrong ones; the legacy interpreter (``-dNEWPDF=false``) maps them right but is slower
  and deprecated. So the interpreter is chosen before the one run: pikepdf looks at the source's fonts
  (:func:`~preservation.checks.inspect_pdf`, the same open that counts its pages) and a non-embedded
  CID-keyed font picks the legacy one. The text check stays as the safety net: if the default interpreter
  still lost text (a font the inspection did not flag) the file is redone once with the legacy one
  (``gs_runs`` = 2 in the facts); if the text is lost anyway the action fails (OutputInvalid). The check
  reads the pages on which each font first appears (see preservation/checks.py): the source's while
  Ghostscript runs, the output's while its structure is checked (:func:`~preservation.checks.check_pdfa`)
  and, with ``identify``, it is hashed and identified (pdftotext runs in its own process, so on the
  second core; errors are reported in the order of the checks, structure first).
  Ghostscript needs CJK fonts for non-embedded Chinese fonts: Debian ``fonts-arphic-uming`` and
  ``fonts-arphic-ukai`` (Ghostscript's Debian cidfmap maps STSong-Light/Adobe-GB1 to them).
* **office-pdfa** — LibreOffice headless, ``soffice.bin`` directly, a fresh private profile and shared
  extension cache per run (:func:`~preservation.tools.soffice_profile_args`; parallel runs would otherwise
  collide on the profile's lock, and on first start on the installation's extension cache) and the JSON filter options
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
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from archive.digests import hash_file
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
    soffice_profile_args,
    tool_version,
)

ACCESS_MAX_EDGE = 2000
ACCESS_JPEG_QUALITY = 85
PDFA_PART, PDFA_CONFORMANCE = "2", "B"
Interpreter = Literal["default", "legacy"]
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
class FileIdentity:
    """What the catalogue records about a file besides its path: size and digests (one read) and its PRONOM
    id by Siegfried (None: none found)."""

    size: int
    sha256: str
    sha512: str
    puid: str | None


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
    #: The output's identity, when asked for (``run_action(..., identify=True)``).
    identity: FileIdentity | None = None


@dataclass
class _Job:
    spec: ActionSpec
    source: Path
    link: Path
    tmp: Path
    timeout: float
    limit: OutputLimit
    identify: bool = False
    stop: threading.Event | None = None
    #: The output's identity, when the action found it itself while its checks ran (see _pdfa); it must
    #: describe the file the action returns.
    identity: FileIdentity | None = None

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
    identify: bool = False,
    stop: threading.Event | None = None,
) -> ActionResult:
    """Run one action on ``source``; the validated output lands in ``workdir/<action>/``.

    With ``identify`` the result carries the output's :class:`FileIdentity` (what the caller records), found
    while the output is being checked where the action can (PDF/A: while pdftotext reads its text).
    Setting ``stop`` from another thread stops the action's tool run (the PDF/A action's Ghostscript; see
    :func:`~preservation.tools.run_tool`): the caller no longer wants the result."""
    if isinstance(spec, str):
        if spec not in ACTIONS:
            raise NoSafeAction(variant="unknown_action", action=spec)
        spec = ACTIONS[spec]
    impl = _IMPLEMENTATIONS.get(spec.name)
    if impl is None:
        raise NoSafeAction(variant="not_implemented", action=spec.name)
    source = Path(source).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=f".{spec.name}-") as tmp_name:
        tmp = Path(tmp_name)
        link = tmp / f"in{source.suffix.lower()}"
        link.symlink_to(source)
        job = _Job(
            spec, source, link, tmp, timeout, limit or LIMITS.get(spec.name, OutputLimit()), identify, stop
        )
        produced, details = impl(job)
        identity = (job.identity or identify_file(produced)) if identify else None
        final_dir = workdir / spec.name
        final_dir.mkdir(exist_ok=True)
        final = final_dir / f"{source.stem}.{spec.extension}"
        produced.replace(final)
    return ActionResult(
        spec.name, final, spec.tool, tool_version(spec.tool), spec.role, spec.extension, details, identity
    )


@cache
def _scanner() -> Any:
    import pygfried

    return pygfried.Scanner()


def identify_puid(path: Path) -> str | None:
    """The file's PRONOM id by Siegfried (milliseconds once the signatures are loaded), or None."""
    try:
        found = _scanner().identify_many([str(path)], workers=1)["files"][0]
        matches = [m for m in found.get("matches", []) if m.get("ns") == "pronom"]
        puid = matches[0].get("id") if matches else None
        return str(puid) if puid and puid != "UNKNOWN" else None
    except Exception:  # identification is a courtesy here; the action already validated the output
        return None


def identify_file(path: Path) -> FileIdentity:
    size, digests = hash_file(path, ("sha256", "sha512"))
    return FileIdentity(size, digests["sha256"], digests["sha512"], identify_puid(path))


def _expect_output(job: _Job, path: Path, tool: str, stderr: str = "") -> Path:
    if not path.is_file() or path.stat().st_size == 0:
        raise ToolFailed(tool, variant="no_output", stderr=stderr)
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
        raise ToolFailed("gs", variant="no_icc")
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


def prepare_pdfa(tmp: Path) -> None:
    """Put the sRGB profile and PDFA_def.ps that :func:`pdfa_command` names into ``tmp``."""
    icc = tmp / "srgb.icc"
    shutil.copyfile(_srgb_profile(), icc)
    (tmp / "pdfa_def.ps").write_text(_PDFA_DEF.format(icc=icc), encoding="ascii")


def pdfa_interpreter(source: checks.PdfSource) -> Interpreter:
    """Ghostscript 10.0's new interpreter garbles non-embedded CJK fonts; the legacy one maps them right."""
    return "legacy" if source.unembedded_cid_fonts else "default"


def pdfa_command(tmp: Path, source: Path, out: Path, interpreter: Interpreter) -> list[str]:
    """The Ghostscript command line for PDF/A-2b, run in ``tmp`` (prepared by :func:`prepare_pdfa`)."""
    return [
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
        f"--permit-file-read={tmp}/",
        f"-sOutputFile={out}",
        *(["-dNEWPDF=false"] if interpreter == "legacy" else []),
        "pdfa_def.ps",
        str(source),
    ]


def _pdfa(job: _Job) -> tuple[Path, dict[str, Any]]:
    source = checks.inspect_pdf(job.link)
    prepare_pdfa(job.tmp)
    first = pdfa_interpreter(source)
    out = job.tmp / "out.pdf"
    sample = source.text_pages  # no fonts (a scan): no text to lose
    with tempfile.TemporaryDirectory(prefix="pdftext-") as text_tmp, ThreadPoolExecutor(2) as pool:
        # The source's text is read while Ghostscript runs (the output's: see _ghostscript_pdfa).
        source_text = pool.submit(checks.pdf_text, job.link, job.timeout, sample) if sample else None
        text_dir = Path(text_tmp)
        result, out_text = _ghostscript_pdfa(job, out, first, source.pages, sample, pool, text_dir)
        text = source_text.result() if source_text else None
        try:
            coverage = checks.check_text_kept(text, out_text.result() if out_text else None, out)
            runs = 1
        except checks.OutputInvalid:
            if first == "legacy":
                raise
            # Safety net: a font the inspection did not flag lost its glyphs; the legacy interpreter
            # maps them.
            first, runs = "legacy", 2
            result, out_text = _ghostscript_pdfa(job, out, first, source.pages, sample, pool, text_dir)
            coverage = checks.check_text_kept(text, out_text.result() if out_text else None, out)
    facts = {**result.facts, "interpreter": first, "gs_runs": runs, "text_coverage": coverage}
    if source.unembedded_cid_fonts:
        facts["unembedded_cid_fonts"] = list(source.unembedded_cid_fonts)
    return out, facts


def _ghostscript_pdfa(
    job: _Job,
    out: Path,
    interpreter: Interpreter,
    pages: int,
    sample: tuple[int, ...],
    pool: Executor,
    text_dir: Path,
) -> tuple[checks.CheckResult, Future[str | None] | None]:
    """Run Ghostscript; then, while pdftotext reads the output's ``sample`` pages in its own process (so on
    the second core), check the output's structure and identify it. The structure check's error comes
    first, as when the checks ran one after the other; the text is the caller's to wait for."""
    out.unlink(missing_ok=True)
    run = run_tool(
        pdfa_command(job.tmp, job.link, out, interpreter),
        cwd=job.tmp,
        timeout=job.timeout,
        input_size=job.size,
        limit=job.limit,
        name="gs",
        stop=job.stop,
    )
    _expect_output(job, out, "gs", run.stderr)
    text: Future[str | None] | None = None
    if sample:
        running = threading.Event()
        source = checks.text_source(out, sample, text_dir)
        text = pool.submit(_read_text, source, text_dir, job.timeout, running)
        running.wait()  # pikepdf and Siegfried hold the GIL while they work: pdftotext is started first
    result = checks.check_pdfa(out, expected_pages=pages, part=PDFA_PART, conformance=PDFA_CONFORMANCE)
    job.identity = identify_file(out) if job.identify else None
    return result, text


def _read_text(source: checks.TextSource, tmp: Path, timeout: float, running: threading.Event) -> str | None:
    try:
        return checks.read_text(source, tmp, timeout, started=running.set)
    finally:
        running.set()  # also when pdftotext never started (not installed, failed at once)


# -------------------- office → PDF/A


def _office_pdfa(job: _Job) -> tuple[Path, dict[str, Any]]:
    profile = soffice_profile(job.tmp / "profile", job.timeout)
    outdir = job.tmp / "out"
    argv = [
        soffice_binary(),
        *soffice_profile_args(profile),
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
        raise ToolFailed("soffice", variant="restart", stderr=run.stderr, returncode=81)
    out = _expect_output(job, outdir / "in.pdf", "soffice", run.stdout + run.stderr)
    result = checks.check_pdfa(out, min_pages=1, part=PDFA_PART, conformance=PDFA_CONFORMANCE)
    return out, result.facts


# -------------------- images


def _source_image(job: _Job) -> tuple[tuple[int, int], int, int]:
    try:
        return checks.image_facts(job.link)
    except Exception as exc:  # Pillow raises many kinds for unreadable headers
        raise ToolFailed("pillow", variant="unreadable_image", error=exc) from exc


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
        raise ToolFailed("ffprobe", variant="no_video")
    if not need_video and not src.audio:
        raise ToolFailed("ffprobe", variant="no_audio")
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
