"""Format identification: PRONOM ids (Siegfried via pygfried), MIME types (libmagic) and format facts.

Choices made here:

* **Siegfried in child processes.** pygfried holds the GIL for the whole of a call, so in-process it would
  stall every Python thread of an ingest (hashing, copying) while it runs. Long-lived child processes
  (:class:`_SiegfriedProcess`) run it instead, beside the hashing threads, and get the files in batches
  of :data:`BATCH` (``identify_many``, Go-side concurrency = ``workers``); never one call per file. With
  ``processes`` > 1 (``ARCHIVE_SIEGFRIED_PROCESSES``) that many children take the batches in turn, the
  workers shared among them: more cores on Siegfried alone, but each child holds its own signatures
  (~110 MB) and, measured beside the hashing threads of an ingest, the whole used more CPU. A batch that takes longer than ``timeout`` or kills its process is retried
  file by file in a fresh process, and only the file at fault gets warning IDN010 (no PUID). The Go
  runtime's heap (~150 MB after a big batch) lives in the children, and a call of :data:`BATCH` files or
  more stops them when Siegfried is done, so that the rest of an ingest does not carry it.
* **MIME.** ``mime`` is libmagic's answer from the content (python-magic, one cookie per thread, ``workers``
  threads; libmagic's C code runs without the GIL); Siegfried's is kept as ``siegfried_mime``. Siegfried
  runs first. libmagic's soft-magic rule base costs ~0.6 ms per *text* file (every
  rule is tried before the text tests), so files Siegfried already matched as plain text by content
  (x-fmt/111, "text match") get libmagic's built-in tests only (encoding, CSV, JSON; ~15x faster); all other
  files get the full rule base.
* **PUID.** The first PRONOM match; ``"UNKNOWN"`` when Siegfried found none, ``None`` when the file could not
  be read. Siegfried's basis and warning texts are kept verbatim.
* **PDFs** (libmagic or Siegfried say ``application/pdf``, or the name ends in ``.pdf``) are probed with
  pikepdf in separate processes, so a hostile PDF can neither hang nor crash the ingest: each file has
  ``timeout`` seconds, after which its process is killed (properties ``{"error": "timeout"}``, warning
  IDN001) and a fresh process carries on with the rest. The processes are plain ``python -c`` children
  talking JSON lines over pipes (multiprocessing's spawn would re-import the caller's ``__main__``); they
  start only when there are PDFs, ``workers`` at most, each taking a share of the files. Properties:
  ``pages``, ``encrypted``, ``pdf_version``, ``pdfa`` (the XMP claim ``pdfaid:part`` + ``pdfaid:conformance``,
  e.g. ``"2B"``; a claim, not validation), ``javascript`` (a ``/JavaScript`` name tree, or any object holding
  ``/JS`` or ``/S /JavaScript``: OpenAction, page and annotation actions), ``damaged`` (qpdf had to repair or
  could not open; then ``error`` says why).
* **Images** (libmagic ``image/*``) get ``width``, ``height``, ``mode`` and ``image_format`` from Pillow's
  header parsing (no pixel decoding), in the same threads as libmagic.
* Problems (IDN…) are warnings except an unreadable file (IDN007); an empty file is not a problem.
* Heavy imports (pygfried, magic) happen on first use, so the PDF probe processes start quickly.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from multiprocessing.connection import wait
from pathlib import Path
from typing import IO, Any

from archive.errors import ArchiveError
from ingest.problems import Problem

BATCH = 500
_HERE = Path(__file__).resolve().parent
_PDF_MIME = "application/pdf"
_MAGIC_CHUNK = 64


@dataclass
class Identification:
    """What is known about one file's format."""

    puid: str | None
    format_name: str | None = None
    format_version: str | None = None
    mime: str | None = None
    siegfried_mime: str | None = None
    basis: str | None = None
    warnings: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        # by hand, not dataclasses.asdict: its deep copy cost ~0.1 ms per file, a second per 10,000 files
        return {
            "puid": self.puid,
            "format_name": self.format_name,
            "format_version": self.format_version,
            "mime": self.mime,
            "siegfried_mime": self.siegfried_mime,
            "basis": self.basis,
            "warnings": list(self.warnings),
            "properties": dict(self.properties),
            "tools": dict(self.tools),
            "problems": [p.as_dict() for p in self.problems],
        }


# -------------------- tools


@cache
def _siegfried_info() -> dict[str, str]:
    info = _siegfried_call(None, _START_TIMEOUT)
    details = "; ".join(i.get("details", "") for i in info.get("identifiers", []))
    return {
        "siegfried": str(info.get("siegfried", "")),
        "siegfried_signature": f"{info.get('signature')} ({details})",
    }


def _libmagic_version() -> str:
    import magic

    v = int(magic.version())
    return f"{v // 100}.{v % 100:02d}"


@cache
def tool_versions() -> dict[str, str]:
    """Every tool (and version) identification relies on, for PREMIS agents."""
    import pikepdf

    return {
        **_siegfried_info(),
        "libmagic": _libmagic_version(),
        "python-magic": metadata.version("python-magic"),
        "pikepdf": pikepdf.__version__,
        "qpdf": pikepdf.__libqpdf_version__,
        "pillow": metadata.version("pillow"),
    }


def _tools_for(ident: Identification) -> dict[str, str]:
    all_tools = tool_versions()
    keys = ["siegfried", "siegfried_signature", "libmagic"]
    if _is_pdf_candidate_ident(ident):
        keys += ["pikepdf", "qpdf"]
    elif (ident.mime or "").startswith("image/"):
        keys.append("pillow")
    return {k: all_tools[k] for k in keys}


# -------------------- Siegfried


class SiegfriedFailed(ArchiveError):
    """The Siegfried process timed out or died (caught here: only the file at fault gets warning IDN010)."""

    code = "IDN020"


def _siegfried_main() -> None:
    """Entry point of the Siegfried process.

    Writes one JSON line describing Siegfried and its signatures, then answers each request line
    (``{"paths": [...], "workers": n}``) with one line (``{"files": [...]}``, Siegfried's per-file reports).
    The protocol runs on a private copy of stdout; the real stdout goes to stderr, so that nothing a library
    prints can corrupt it.
    """
    import pygfried

    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    scanner = pygfried.Scanner()

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
        channel.flush()

    head = scanner.identify_many([], workers=1)
    send({k: head.get(k) for k in ("siegfried", "signature", "identifiers")})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        paths, workers = request["paths"], request["workers"]
        files: list[Any]
        try:
            files = scanner.identify_many(paths, workers=workers)["files"]
        except Exception:  # a batch-level failure must not lose the other files: one by one
            files = []
            for path in paths:
                try:
                    files += scanner.identify_many([path], workers=1)["files"]
                except Exception as exc:
                    files.append({"filename": path, "errors": str(exc) or type(exc).__name__, "matches": []})
        send({"files": files})


_SIEGFRIED_CODE = "from ingest.identify import _siegfried_main; _siegfried_main()"
_START_TIMEOUT = 60.0


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_HERE.parent), env.get("PYTHONPATH")]))
    return env


class _SiegfriedProcess:
    """A long-lived child process running Siegfried.

    pygfried holds the GIL for the whole of a call, so in-process Siegfried would stall the hashing and copying threads of an ingest. In a child
    it runs beside them on the other cores; a hang is cut by a timeout and a crash costs one process, not the
    ingest. The child is started on first use and reused by later calls in the same process.
    """

    def __init__(self) -> None:
        env = _child_env()
        # Go's heap grows to 1.5x (not 2x) its live data, and the runtime collects harder near 96 MiB (a soft
        # limit): less memory for the same time and CPU
        env.setdefault("GOGC", "50")
        env.setdefault("GOMEMLIMIT", "96MiB")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SIEGFRIED_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.pending = bytearray()
        try:
            self.info = self.receive(_START_TIMEOUT)
        except BaseException:  # a child that never said hello is not left running
            self.close()
            raise

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
            self.process.stdin.flush()
        except OSError as exc:
            raise SiegfriedFailed(variant="gone", reason=exc.strerror or exc) from None
        return self.receive(timeout)

    def receive(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while (end := self.pending.find(b"\n")) < 0:
            left = deadline - time.monotonic()
            if left <= 0 or not wait([fd], left):
                raise SiegfriedFailed(variant="timeout", timeout=timeout)
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SiegfriedFailed(variant="exited", returncode=self.close())
            self.pending += chunk
        line = bytes(self.pending[:end])
        del self.pending[: end + 1]
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> int | None:
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(2)
        if self.process.returncode is None:
            self.process.kill()
            self.process.wait()
        return self.process.returncode


class _Slot:
    """One Siegfried child (started on first use) and the lock that serialises its requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: _SiegfriedProcess | None = None


_slots: list[_Slot] = []  # slot i: the child that the i-th of the concurrent identification threads uses
_slots_lock = threading.Lock()
_siegfried_description: dict[str, Any] | None = None  # from the first process started: same binary every time


def _slot(index: int) -> _Slot:
    with _slots_lock:
        while len(_slots) <= index:
            _slots.append(_Slot())
        return _slots[index]


def _siegfried_call(request: dict[str, Any] | None, timeout: float, slot: int = 0) -> dict[str, Any]:
    """Ask the Siegfried process of ``slot`` (``None``: its self-description); a failed process is closed,
    and the next call starts a fresh one."""
    global _siegfried_description
    if request is None and _siegfried_description is not None:
        return _siegfried_description  # no process started (again) only to say what it is
    held = _slot(slot)
    with held.lock:
        try:
            if held.process is None:
                held.process = _SiegfriedProcess()
                if _siegfried_description is None:
                    _siegfried_description = held.process.info
            if request is None:
                return held.process.info
            return held.process.ask(request, timeout)
        except (SiegfriedFailed, OSError, ValueError) as exc:
            if held.process is not None:
                held.process.close()
                held.process = None
            if isinstance(exc, SiegfriedFailed):
                raise
            raise SiegfriedFailed(reason=str(exc) or type(exc).__name__) from None


def _forget_siegfried() -> None:
    """In a forked child (a Celery prefork worker), the parent's pipes are not ours to use, and the locks
    may have been held by threads that do not exist here."""
    global _slots, _slots_lock
    _slots = []
    _slots_lock = threading.Lock()


@atexit.register
def release_siegfried() -> None:
    """Stop the Siegfried processes (the next identification starts fresh ones, in ~0.2 s each)."""
    with _slots_lock:
        slots = list(_slots)
    for held in slots:
        with held.lock:
            if held.process is not None:
                held.process.close()
                held.process = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_siegfried)


def _siegfried(
    paths: list[Path],
    workers: int,
    timeout: float,
    progress: Callable[[int], None] | None = None,
    batch_done: Callable[[list[Path], dict[Path, dict[str, Any]]], None] | None = None,
    processes: int = 1,
) -> dict[Path, dict[str, Any]]:
    """Siegfried's report per file. A batch that fails (timeout, crash) is retried file by file, so that only
    the file at fault is reported as such (``failed`` set: IDN010). ``progress(files done)`` after a batch;
    ``batch_done(paths, reports)`` with each batch's files as soon as it is back. Both are called from this
    thread.

    With more than one batch and ``processes`` > 1, that many children run at once, each on the next batch
    nobody has taken (one Go worker each: a single child's ``identify_many`` leaves part of the cores idle at
    the end of every batch and while it encodes its answer). Each batch's files get the answers one child
    gives for that batch, so the reports are those of the serial path, in whatever order batches finish.
    """
    chunks = [paths[start : start + BATCH] for start in range(0, len(paths), BATCH)]
    children = max(1, min(processes, len(chunks)))
    out: dict[Path, dict[str, Any]] = {}
    done = 0
    if progress is not None:
        progress(0)
    for chunk, reports in _batches(chunks, children, max(1, workers // children), timeout):
        out.update(reports)
        done += len(chunk)
        if batch_done is not None:
            batch_done(chunk, out)
        if progress is not None:
            progress(done)
    return out


def _batches(
    chunks: list[list[Path]], children: int, workers: int, timeout: float
) -> Iterator[tuple[list[Path], dict[Path, dict[str, Any]]]]:
    """Each chunk with its reports, as they come back from ``children`` children (a thread each)."""
    if children == 1:
        for chunk in chunks:
            yield chunk, _siegfried_batch(chunk, workers, timeout, 0)
        return
    answers: queue.SimpleQueue[tuple[int, dict[Path, dict[str, Any]]] | BaseException] = queue.SimpleQueue()
    taken = iter(range(len(chunks)))
    take_lock = threading.Lock()
    stop = threading.Event()

    def run(slot: int) -> None:
        while not stop.is_set():
            with take_lock:
                index = next(taken, None)
            if index is None:
                return
            try:
                answers.put((index, _siegfried_batch(chunks[index], workers, timeout, slot)))
            except BaseException as exc:  # a bug, not a Siegfried failure: raised in the caller, no deadlock
                answers.put(exc)
                return

    threads = [
        threading.Thread(target=run, args=(slot,), name=f"siegfried-{slot}", daemon=True)
        for slot in range(children)
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in chunks:
            answer = answers.get()
            if isinstance(answer, BaseException):
                raise answer
            yield chunks[answer[0]], answer[1]
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _siegfried_batch(
    chunk: list[Path], workers: int, timeout: float, slot: int
) -> dict[Path, dict[str, Any]]:
    names = [str(p) for p in chunk]
    try:
        files = _siegfried_call({"paths": names, "workers": workers}, timeout, slot)["files"]
    except SiegfriedFailed:
        files = [_siegfried_one(name, timeout, slot) for name in names]
    by_name = {f.get("filename"): f for f in files}
    out: dict[Path, dict[str, Any]] = {}
    for path, name, position in zip(chunk, names, range(len(chunk)), strict=True):
        found = by_name.get(name)
        if found is None and position < len(files):
            found = files[position]
        out[path] = found or {"errors": "no result from Siegfried", "matches": []}
    return out


def _siegfried_one(name: str, timeout: float, slot: int = 0) -> dict[str, Any]:
    try:
        result: dict[str, Any] = _siegfried_call({"paths": [name], "workers": 1}, timeout, slot)["files"][0]
    except SiegfriedFailed as exc:
        return {"filename": name, "errors": exc.en, "matches": [], "failed": True}
    return result


def _plain_text(report: dict[str, Any]) -> bool:
    """Siegfried matched plain text by looking at the content (not only at the name)."""
    return any(
        m.get("id") == "x-fmt/111" and "text match" in (m.get("basis") or "")
        for m in report.get("matches") or []
    )


def _from_siegfried(path: Path, report: dict[str, Any]) -> Identification:
    matches = report.get("matches") or []
    match = next((m for m in matches if m.get("ns") == "pronom"), matches[0] if matches else None)
    ident = Identification(puid=None)
    error = (report.get("errors") or "").strip()
    empty = error == "empty source"
    if match:
        ident.puid = match.get("id") or "UNKNOWN"
        ident.format_name = match.get("format") or None
        ident.format_version = match.get("version") or None
        ident.siegfried_mime = match.get("mime") or None
        ident.basis = match.get("basis") or None
        ident.warnings = [
            w.strip() for m in matches for w in (m.get("warning") or "").split(";") if w.strip()
        ]
    if report.get("failed"):
        ident.puid = None
        ident.problems.append(Problem("IDN010", path=str(path), params={"error": error}))
    elif error and not empty:
        ident.puid = None
        ident.problems.append(Problem("IDN007", path=str(path), params={"error": error}))
    elif ident.puid == "UNKNOWN" and not empty:
        ident.problems.append(Problem("IDN003", path=str(path)))
    elif ident.warnings and not empty:
        ident.problems.append(
            Problem("IDN004", path=str(path), params={"warning": "; ".join(ident.warnings)})
        )
    return ident


# -------------------- libmagic and Pillow (threads)


_local = threading.local()


def _cookie(fast_text: bool) -> Any:
    """This thread's libmagic cookie, set for the full rule base or (``fast_text``) the built-in tests only.

    One cookie per thread, its flags switched per file: each cookie maps the whole magic database (~8 MB).
    """
    import magic

    cookie = getattr(_local, "magic", None)
    if cookie is None:
        cookie = _local.magic = magic.Magic(mime=True)
        _local.fast_text = False
    if _local.fast_text != fast_text:
        extra = magic.MAGIC_NO_CHECK_SOFT if fast_text else 0
        magic.magic_setflags(cookie.cookie, magic.MAGIC_MIME_TYPE | extra)
        _local.fast_text = fast_text
    return cookie


def _magic_mime(path: Path, fast_text: bool = False) -> str | None:
    import magic

    try:
        return str(_cookie(fast_text).from_file(str(path)))
    except (OSError, magic.MagicException):
        return None


_PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/tiff": "TIFF",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/webp": "WEBP",
    "image/jp2": "JPEG2000",
}


def _image_properties(path: Path, mime: str) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    hint = _PILLOW_FORMATS.get(mime)
    try:
        try:  # naming the format spares Pillow from trying every plugin
            image = Image.open(path, formats=[hint] if hint else None)
        except UnidentifiedImageError:
            if not hint:
                raise
            image = Image.open(path)
        with image:
            props: dict[str, Any] = {
                "width": image.width,
                "height": image.height,
                "mode": image.mode,
                "image_format": image.format,
            }
            frames = getattr(image, "n_frames", 1)
            if frames != 1:
                props["frames"] = frames
            return props
    except Exception as exc:  # Pillow raises many kinds on hostile input; all mean "cannot parse"
        return {"error": str(exc) or type(exc).__name__}


def _magic_chunk(paths: list[tuple[Path, bool]]) -> list[tuple[str | None, dict[str, Any] | None]]:
    out: list[tuple[str | None, dict[str, Any] | None]] = []
    for path, fast_text in paths:
        mime = _magic_mime(path, fast_text)
        props = _image_properties(path, mime) if mime and mime.startswith("image/") else None
        out.append((mime, props))
    return out


# -------------------- PDFs (spawned processes with a timeout)


def probe_pdf(path: str) -> dict[str, Any]:
    """Facts about one PDF from pikepdf. Runs inside a probe process; never raises."""
    import pikepdf

    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        return {"encrypted": True, "damaged": False, "error": "password required"}
    except Exception as exc:  # qpdf could not even repair it
        return {"damaged": True, "error": _short(exc)}
    props: dict[str, Any] = {"damaged": False}
    with pdf:
        try:
            props["pdf_version"] = pdf.pdf_version
            props["encrypted"] = bool(pdf.is_encrypted)
            props["pages"] = len(pdf.pages)
            props["pdfa"] = _pdfa_claim(pdf)
            props["javascript"] = _has_javascript(pdf)
        except Exception as exc:
            props["damaged"] = True
            props["error"] = _short(exc)
        repairs = pdf.get_warnings()
        if repairs:
            props["damaged"] = True
            props["repairs"] = [str(w) for w in repairs[:10]]
    return props


def _pdfa_claim(pdf: Any) -> str | None:
    try:
        meta = pdf.open_metadata()
        part = str(meta.get("pdfaid:part", "") or "").strip()
        conformance = str(meta.get("pdfaid:conformance", "") or "").strip()
    except Exception:  # unparsable XMP: there is no readable claim
        return None
    return f"{part}{conformance.upper()}" if part else None


def _has_javascript(pdf: Any) -> bool:
    import pikepdf

    names = pdf.Root.get("/Names")
    if isinstance(names, pikepdf.Dictionary) and "/JavaScript" in names:
        return True

    containers = (pikepdf.Dictionary, pikepdf.Stream, pikepdf.Array)

    def walk(obj: Any, depth: int) -> bool:
        if isinstance(obj, pikepdf.Dictionary | pikepdf.Stream):
            if "/JS" in obj or obj.get("/S") == pikepdf.Name.JavaScript:
                return True
            children: Iterable[Any] = (obj[k] for k in obj.keys())  # noqa: SIM118 (pikepdf objects)
        elif isinstance(obj, pikepdf.Array):
            children = iter(obj)
        else:
            return False
        return depth < 32 and any(
            isinstance(c, containers) and not c.is_indirect and walk(c, depth + 1) for c in children
        )

    return any(walk(obj, 0) for obj in pdf.objects)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _probe_main() -> None:
    """Entry point of a probe process: reads a JSON list of paths on stdin, writes JSON lines on stdout.

    Each file is announced (``{"start": i}``) before it is probed so that the parent can time it.
    """
    paths = json.loads(sys.stdin.buffer.read())
    out = sys.stdout
    for index, path in enumerate(paths):
        out.write(json.dumps({"start": index}) + "\n")
        out.flush()
        out.write(json.dumps({"done": index, "props": probe_pdf(path)}, default=str) + "\n")
        out.flush()


_PROBE_CODE = "from ingest.identify import _probe_main; _probe_main()"


@dataclass
class _Prober:
    paths: list[str]
    process: subprocess.Popen[bytes]
    current: int | None = 0  # startup counts against the first file's time
    since: float = field(default_factory=time.monotonic)
    buffer: bytes = b""

    @classmethod
    def start(cls, paths: list[str]) -> _Prober:
        env = _child_env()
        process = subprocess.Popen(
            [sys.executable, "-c", _PROBE_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(json.dumps(paths).encode())
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        return cls(paths, process)

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def finish(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        if self.process.returncode is None:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        return self.process.returncode

    def rest(self) -> list[str]:
        return self.paths[(self.current or 0) + 1 :]


def _probe_pdfs(paths: list[str], workers: int, timeout: float) -> dict[str, dict[str, Any]]:
    """Probe PDFs in ``workers`` processes; a file taking over ``timeout`` seconds gets its process killed."""
    results: dict[str, dict[str, Any]] = {}
    if not paths:
        return results
    n = max(1, min(workers, len(paths)))
    live = [_Prober.start(paths[i::n]) for i in range(n)]

    def replace(prober: _Prober, props: dict[str, Any]) -> None:
        live.remove(prober)
        if prober.current is not None:
            results[prober.paths[prober.current]] = props
            if prober.rest():
                live.append(_Prober.start(prober.rest()))

    while live:
        now = time.monotonic()
        deadlines = [p.since + timeout - now for p in live if p.current is not None]
        fds = [p.stdout.fileno() for p in live]
        ready = wait(fds, timeout=max(0.0, min(deadlines)) if deadlines else None)
        for prober in [p for p, fd in zip(live, fds, strict=True) if fd in ready]:
            chunk = os.read(prober.stdout.fileno(), 1 << 16)
            if not chunk:  # the process ended
                code = prober.finish()
                if prober.current is not None and prober.current < len(prober.paths):
                    replace(prober, {"error": f"probe crashed (exit code {code})"})
                else:
                    live.remove(prober)
                continue
            *lines, prober.buffer = (prober.buffer + chunk).split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:  # stray output from a library in the probe; not ours
                    continue
                if not isinstance(message, dict):
                    continue
                if "start" in message:
                    prober.current, prober.since = message["start"], time.monotonic()
                else:
                    results[prober.paths[message["done"]]] = message["props"]
                    prober.current = None
        now = time.monotonic()
        for prober in [p for p in live if p.current is not None and now - p.since > timeout]:
            prober.process.kill()
            prober.finish()
            replace(prober, {"error": "timeout"})
    return results


def _is_pdf_candidate(path: Path, ident: Identification) -> bool:
    return path.suffix.lower() == ".pdf" or _is_pdf_candidate_ident(ident)


def _is_pdf_candidate_ident(ident: Identification) -> bool:
    return _PDF_MIME in (ident.mime, ident.siegfried_mime) or "damaged" in ident.properties


def _pdf_problems(path: Path, props: dict[str, Any], timeout: float) -> list[Problem]:
    where = str(path)
    error = props.get("error")
    if error == "timeout":
        return [Problem("IDN001", path=where, params={"timeout": f"{timeout:g}"})]
    if isinstance(error, str) and error.startswith("probe crashed"):
        return [Problem("IDN008", path=where, params={"error": error})]
    problems = []
    if props.get("damaged"):
        detail = error or "; ".join(props.get("repairs", []))
        problems.append(Problem("IDN002", path=where, params={"error": detail}))
    if props.get("encrypted"):
        detail = "（需要密码才能打开）" if error == "password required" else ""
        problems.append(Problem("IDN005", path=where, params={"detail": detail}))
    if props.get("javascript"):
        problems.append(Problem("IDN006", path=where))
    return problems


# -------------------- public


def identify_files(
    paths: Sequence[Path],
    *,
    workers: int = 2,
    timeout: float = 120,
    progress: Callable[[int], None] | None = None,
    processes: int = 1,
) -> dict[Path, Identification]:
    """Identify every file; never raises for a bad file (its problems are in the result).

    ``processes``: how many Siegfried children may identify at once, each on its own batches.

    ``progress(n)`` is called (from this thread) as Siegfried, by far the longest part, finishes batches:
    ``n`` files have been through it so far (they go in the order given)."""
    order = list(dict.fromkeys(Path(p) for p in paths))
    found: dict[Path, Identification] = {}
    unique: list[Path] = []
    for path in order:
        error = _not_regular(path)
        if error:  # a FIFO or device would block the tools; a missing file has nothing to identify
            found[path] = Identification(
                puid=None, problems=[Problem("IDN007", path=str(path), params={"error": error})]
            )
        else:
            unique.append(path)
    workers = max(1, workers)
    if not unique:
        return _with_tools(found, order)
    # libmagic (and Pillow's header reads) start on each Siegfried batch as soon as it is back, in threads
    # beside the Siegfried children; the last batch's share is all that is left for after Siegfried.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="identify") as pool:
        magic: list[tuple[list[Path], Future[list[tuple[str | None, dict[str, Any] | None]]]]] = []

        def batch_done(chunk: list[Path], reports: dict[Path, dict[str, Any]]) -> None:
            jobs = [(path, _plain_text(reports[path])) for path in chunk]
            for i in range(0, len(jobs), _MAGIC_CHUNK):
                part = jobs[i : i + _MAGIC_CHUNK]
                magic.append(([path for path, _ in part], pool.submit(_magic_chunk, part)))

        reports = _siegfried(unique, workers, timeout, progress, batch_done, processes)
        if len(unique) >= BATCH:  # a big batch leaves Go's heap at ~150 MB: give it back before what follows
            release_siegfried()
        by_path = {path: r for part, future in magic for path, r in zip(part, future.result(), strict=True)}
        magic_results = [by_path[path] for path in unique]

    for path, (mime, image_props) in zip(unique, magic_results, strict=True):
        ident = _from_siegfried(path, reports[path])
        ident.mime = mime or ident.siegfried_mime
        if image_props is not None:
            ident.properties.update(image_props)
            if "error" in image_props:
                ident.problems.append(
                    Problem("IDN009", path=str(path), params={"error": image_props["error"]})
                )
        found[path] = ident

    pdfs = [p for p, ident in found.items() if ident.puid is not None and _is_pdf_candidate(p, ident)]
    probed = _probe_pdfs([str(p) for p in pdfs], workers, timeout)
    for path in pdfs:
        props = probed.get(str(path), {"error": "no result from the PDF probe"})
        found[path].properties.update(props)
        found[path].problems.extend(_pdf_problems(path, props, timeout))
    return _with_tools(found, order)


def _with_tools(found: dict[Path, Identification], order: list[Path]) -> dict[Path, Identification]:
    for ident in found.values():
        ident.tools = _tools_for(ident)
    return {path: found[path] for path in order}


def _not_regular(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if stat.S_ISREG(mode) else "not a regular file"
