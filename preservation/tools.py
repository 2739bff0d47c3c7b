"""Running external tools (Ghostscript, LibreOffice, ffmpeg, ImageMagick, qpdf) safely, and their errors.

Choices made here:

* **One runner.** :func:`run_tool` starts the tool in its own session (process group) with ``cwd`` set to a
  private directory, stdin closed, stdout/stderr to anonymous temporary files (never pipes, so a grandchild
  holding a pipe open cannot hang us). It waits on the process's pidfd (the exit is seen at once), waking
  every 0.25 s to measure the private directory; on timeout, or when the files in the private
  directory grow beyond the output limit, the **whole process group** is killed with SIGKILL. After a normal
  exit the group is killed too, so no helper (e.g. LibreOffice's ``oosplash`` children) outlives the call.
  Another thread may stop a run whose result it no longer needs (``stop``: the same kill, ToolFailed).
* **Output limit.** ``OutputLimit(ratio, floor, cap)``: the bytes a run may write are
  ``min(cap, max(floor, ratio × input size))`` — a tiny input may legitimately grow (H.264 → FFV1 is often
  20–50×), a huge one may not exceed the absolute cap. Checked while the tool runs and once more at the end.
* **Errors** carry stable codes and Chinese/English messages from ``archive/codes/preservation.toml`` (they
  are :class:`archive.errors.ArchiveError`; ``variant`` names the precise situation's text under a code)::

      ArchiveError
      └── PreservationError        PRS000 base
      ├── ToolError                PRS009 a tool run went wrong
      │   ├── ToolTimeout          PRS001 the tool ran longer than the timeout (process group killed)
      │   ├── ToolFailed           PRS002 non-zero exit or no output; ``stderr`` holds the last lines
      │   ├── OutputTooLarge       PRS003 the output exceeded the limit (process group killed)
      │   └── ToolMissing          PRS006 the tool is not installed (also an archive.errors.Unavailable: exit 3)
      ├── OutputInvalid            PRS004 the output failed validation (see preservation/checks.py)
      ├── NoSafeAction             PRS005 the policy has no action for this format / the action is unknown
      ├── PolicyInvalid            PRS007 the policy file cannot be read or names unknown actions
      └── Unrepairable             PRS008 a damaged PDF could not be repaired (see preservation/repair.py)

* **Versions.** :func:`tool_version` asks each tool once per process (``gs --version``, ``soffice
  --version``, first line of ``ffmpeg -version``, ``convert -version``, ``qpdf --version``, ``vips
  --version``) and returns the bare version string, e.g. ``"10.00.0"``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from archive.errors import ArchiveError, Unavailable

STDERR_TAIL = 2000
_POLL = 0.05
_SIZE_EVERY = 0.25

# -------------------- errors


class PreservationError(ArchiveError):
    code = "PRS000"


class ToolError(PreservationError):
    code = "PRS009"


class ToolTimeout(ToolError):
    code = "PRS001"

    def __init__(self, tool: str, timeout: float, stderr: str = "") -> None:
        super().__init__(tool=tool, timeout=timeout, stderr=stderr)
        self.stderr = stderr


class ToolFailed(ToolError):
    """``variant`` names the situation (``exit_status``, ``stopped``, ``no_output``…); the last line the tool
    wrote on stderr ends the message."""

    code = "PRS002"

    def __init__(
        self,
        tool: str,
        *,
        variant: str | None = None,
        stderr: str = "",
        returncode: int | None = None,
        **details: Any,
    ) -> None:
        tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
        super().__init__(
            variant=variant,
            tool=tool,
            said=f": {tail[0]}" if tail else "",
            stderr=stderr,
            returncode=returncode,
            **details,
        )
        self.stderr = stderr
        self.returncode = returncode


class OutputTooLarge(ToolError):
    code = "PRS003"

    def __init__(self, tool: str, size: int, limit: int) -> None:
        super().__init__(tool=tool, size=size, limit=limit)


class ToolMissing(ToolError, Unavailable):
    code = "PRS006"

    def __init__(self, tool: str) -> None:
        super().__init__(tool=tool)


class OutputInvalid(PreservationError):
    code = "PRS004"


class NoSafeAction(PreservationError):
    code = "PRS005"


class PolicyInvalid(PreservationError):
    code = "PRS007"


class Unrepairable(PreservationError):
    code = "PRS008"


# -------------------- the runner


@dataclass(frozen=True)
class OutputLimit:
    """Bytes a run may write: ``min(cap, max(floor, ratio × input size))``."""

    ratio: float = 50.0
    floor: int = 256 * 1024**2
    cap: int = 64 * 1024**3

    def bytes_for(self, input_size: int) -> int:
        return int(min(self.cap, max(self.floor, self.ratio * input_size)))


@dataclass(frozen=True)
class ToolRun:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _tail(handle: IO[bytes], limit: int = STDERR_TAIL) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - limit * 4))
    return handle.read().decode("utf-8", "replace")[-limit:]


def _tree_size(folder: Path) -> int:
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class _ExitWaiter:
    """Waits up to a given time for a child to exit, and says whether it did.

    On Linux it sleeps on a pidfd, so the exit is seen at once; ``Popen.wait(timeout)`` polls with growing
    sleeps (up to 50 ms), which added ~10-25 ms to every tool run. Elsewhere, that polling.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.fd = -1
        with contextlib.suppress(AttributeError, OSError):  # no pidfd_open: not Linux ≥ 5.3
            self.fd = os.pidfd_open(proc.pid)
            self.poller = select.poll()
            self.poller.register(self.fd, select.POLLIN)

    def __call__(self, seconds: float) -> bool:
        if self.fd < 0:
            try:
                self.proc.wait(timeout=max(0.0, min(seconds, _POLL)))
                return True
            except subprocess.TimeoutExpired:
                return False
        if not self.poller.poll(max(0, int(seconds * 1000) + 1)):
            return False
        self.proc.wait()
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    input_size: int = 0,
    limit: OutputLimit | None = None,
    env: Mapping[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
    name: str | None = None,
    started: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> ToolRun:
    """Run ``argv`` in ``cwd`` (the caller's private directory) and return its result.

    ``started`` is called once the process runs (a caller waiting for it in another thread can then go
    on with work that holds the GIL: this thread only needs it to notice the exit). Setting ``stop`` (from
    another thread) kills the process group within :data:`_POLL` seconds: :class:`ToolFailed`, "stopped".

    Raises :class:`ToolMissing`, :class:`ToolTimeout`, :class:`OutputTooLarge` (both after killing the
    process group) or :class:`ToolFailed` (exit status not in ``ok_codes``).
    """
    tool = name or Path(argv[0]).name
    if shutil.which(argv[0]) is None:
        raise ToolMissing(tool)
    if stop is not None and stop.is_set():
        raise ToolFailed(tool, variant="stopped")
    max_bytes = (limit or OutputLimit()).bytes_for(input_size)
    started_at = time.monotonic()
    deadline = started_at + timeout
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        next_size = started_at + _SIZE_EVERY
        exited = _ExitWaiter(proc)
        try:
            if started is not None:
                started()
            while True:
                wake = min(next_size, deadline)
                if stop is not None:
                    wake = min(wake, time.monotonic() + _POLL)
                if exited(wake - time.monotonic()):
                    break
                if stop is not None and stop.is_set():
                    _kill_group(proc)
                    proc.wait()
                    raise ToolFailed(tool, variant="stopped", stderr=_tail(err))
                now = time.monotonic()
                if now >= deadline:
                    _kill_group(proc)
                    proc.wait()
                    raise ToolTimeout(tool, timeout, _tail(err))
                if now >= next_size:
                    next_size = now + _SIZE_EVERY
                    size = _tree_size(cwd)
                    if size > max_bytes:
                        _kill_group(proc)
                        proc.wait()
                        raise OutputTooLarge(tool, size, max_bytes)
        finally:
            exited.close()
            _kill_group(proc)
            if proc.returncode is None:
                proc.wait()
        seconds = time.monotonic() - started_at
        size = _tree_size(cwd)
        if size > max_bytes:
            raise OutputTooLarge(tool, size, max_bytes)
        out.seek(0)
        stdout = out.read(1024 * 1024).decode("utf-8", "replace")
        stderr = _tail(err)
    if proc.returncode not in ok_codes:
        raise ToolFailed(tool, variant="exit_status", stderr=stderr, returncode=proc.returncode)
    return ToolRun(tuple(argv), proc.returncode, stdout, stderr, seconds)


# -------------------- LibreOffice


def soffice_binary() -> str:
    """``soffice.bin`` next to the ``soffice`` launcher when there is one (it skips ``oosplash`` and the Java
    probe, ~2 s per call), else ``soffice``."""
    launcher = shutil.which("soffice") or shutil.which("libreoffice")
    if launcher is None:
        return "soffice"
    real = Path(os.path.realpath(launcher)).with_name("soffice.bin")
    return str(real) if real.exists() else launcher


def soffice_env(profile: Path) -> dict[str, str]:
    """Environment for one LibreOffice run: HOME inside the private profile, no desktop plugins."""
    return {**os.environ, "HOME": str(profile), "SAL_USE_VCLPLUGIN": "svp"}


def soffice_profile_args(profile: Path) -> list[str]:
    """Arguments that keep one LibreOffice run to its own directories: the user profile ``profile``, and the
    shared extension cache beside it (``<profile>-shared``).

    The second matters when the worker runs as root: LibreOffice then treats the installation's shared
    extension cache (Debian: ``/var/spool/libreoffice/uno_packages/cache``) as writable, creates its
    ``uno_packages`` folder on the very first start after installation and probes it with a
    ``stamp.sys`` file at every start — the one thing concurrent runs with private profiles still share.
    With this argument a run writes nothing outside its own directory but LibreOffice's unique temporary
    files. Extensions installed for all users (``unopkg add --shared``) are not seen by the conversions,
    which keeps their output independent of what was installed on the machine."""
    profile = profile.resolve()
    shared = profile.with_name(f"{profile.name}-shared") / "cache"
    return [f"-env:UserInstallation={profile.as_uri()}", f"-env:UNO_SHARED_PACKAGES_CACHE={shared.as_uri()}"]


_template_lock = threading.Lock()
_template: Path | None = None


def soffice_profile(dest: Path, timeout: float) -> Path:
    """A fresh LibreOffice user profile at ``dest``, copied from a per-process template.

    A brand-new profile makes ``soffice.bin`` exit with status 81 ("restart needed") instead of converting,
    so the template is initialised once (``--terminate_after_init``, ~0.3 s) and copied (~250 KB) per run.
    """
    global _template
    with _template_lock:
        if _template is None or not _template.is_dir():
            folder = Path(tempfile.mkdtemp(prefix="archive-lo-template-"))
            atexit.register(shutil.rmtree, folder, True)
            profile = folder / "profile"
            run_tool(
                [
                    soffice_binary(),
                    *soffice_profile_args(profile),
                    "--headless",
                    "--norestore",
                    "--terminate_after_init",
                ],
                cwd=folder,
                timeout=timeout,
                env=soffice_env(folder),
                ok_codes=(0, 81),
                name="soffice",
            )
            _template = profile
        shutil.copytree(_template, dest, symlinks=True)
    return dest


# -------------------- versions

_VERSION_COMMANDS: dict[str, list[str]] = {
    "gs": ["gs", "--version"],
    "ghostscript": ["gs", "--version"],
    "soffice": ["soffice", "--version"],
    "libreoffice": ["soffice", "--version"],
    "ffmpeg": ["ffmpeg", "-version"],
    "ffprobe": ["ffprobe", "-version"],
    "convert": ["convert", "-version"],
    "imagemagick": ["convert", "-version"],
    "qpdf": ["qpdf", "--version"],
    "vips": ["vips", "--version"],
}
_VERSION_RE = re.compile(r"(\d+(?:\.\d+)+(?:[-+~][0-9A-Za-z.+~-]+)?)")


@cache
def tool_version(name: str) -> str:
    """The version of tool ``name`` (e.g. ``"gs"`` → ``"10.00.0"``), or ``"unknown"`` if it cannot be asked.

    Libraries (``pikepdf``, ``pillow``) answer from their package metadata.
    """
    if name in {"pikepdf", "pillow", "python-docx"}:
        from importlib import metadata

        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"
    argv = _VERSION_COMMANDS.get(name, [name, "--version"])
    if shutil.which(argv[0]) is None:
        return "unknown"
    with tempfile.TemporaryDirectory(prefix="tool-version-") as home:
        env = {**os.environ, "HOME": home}
        if argv[0] == "soffice":
            argv = [soffice_binary(), *soffice_profile_args(Path(home) / "profile"), "--version"]
        try:
            run = run_tool(argv, cwd=Path(home), timeout=60, env=env, name=name)
        except ToolError:
            return "unknown"
    first = (run.stdout or run.stderr).strip().splitlines()
    if not first:
        return "unknown"
    match = _VERSION_RE.search(first[0])
    return match.group(1) if match else first[0].strip()
