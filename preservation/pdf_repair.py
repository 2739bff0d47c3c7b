"""Damaged PDFs (broken cross-reference table, truncated tail): repair where qpdf can, else report.

:func:`repair_pdf` is a recorded action (``pdf-repair``, role preservation, tool qpdf): when it repairs, it
returns a derivative the caller stores as a new version with a PREMIS migration event, exactly like a format
migration; the original stays untouched.

Choices made here:

* ``qpdf --check`` (in a child process, with the timeout) decides: exit 0 means nothing to repair
  (``repaired=False``, no output). Exit 2/3 (errors/warnings — qpdf reports "file is damaged", "xref not
  found", "reconstructing xref table") means damage.
* The repair is ``qpdf in.pdf out.pdf``: qpdf reconstructs the cross-reference table by scanning the objects
  while reading, and writes a clean file (exit 3 = it warned while doing so, the normal case here).
* The copy counts as repaired only if a second ``qpdf --check`` exits 0 and pikepdf opens it with at least
  one page; otherwise, or if qpdf cannot read the file at all, :class:`~preservation.tools.Unrepairable`
  (PRS008) is raised with qpdf's own words. pikepdf is the same engine (libqpdf), so trying it again
  in-process would add nothing but the risk of a hostile file hanging the worker.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from preservation.policy import REPAIR_ACTION
from preservation.tools import OutputLimit, ToolError, Unrepairable, run_tool, tool_version


@dataclass(frozen=True)
class RepairResult:
    repaired: bool
    output: Path | None
    tool: str
    tool_version: str
    note: str
    pages: int | None = None
    action: str = REPAIR_ACTION.name
    role: str = REPAIR_ACTION.role


def _check(path: Path, cwd: Path, timeout: float) -> tuple[int, str]:
    run = run_tool(["qpdf", "--check", str(path)], cwd=cwd, timeout=timeout, ok_codes=(0, 2, 3), name="qpdf")
    lines = [ln for ln in (run.stderr + "\n" + run.stdout).splitlines() if "WARNING" in ln or "error" in ln]
    return run.returncode, "; ".join(lines[:5]) or run.stderr.strip()[-500:]


def needs_repair(source: Path, timeout: float) -> bool:
    """Whether qpdf finds damage in ``source``."""
    with tempfile.TemporaryDirectory(prefix="pdfcheck-") as tmp:
        code, _ = _check(Path(source).resolve(), Path(tmp), timeout)
    return code != 0


def repair_pdf(source: Path, workdir: Path, timeout: float) -> RepairResult:
    """Check ``source``; if damaged, write a repaired copy to ``workdir/pdf-repair/<stem>.pdf``."""
    import pikepdf

    source = Path(source).resolve()
    version = tool_version("qpdf")
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".pdf-repair-") as tmp_name:
        tmp = Path(tmp_name)
        code, found = _check(source, tmp, timeout)
        if code == 0:
            return RepairResult(False, None, "qpdf", version, "qpdf --check found no damage")
        out = tmp / "out.pdf"
        try:
            run_tool(
                ["qpdf", str(source), str(out)],
                cwd=tmp,
                timeout=timeout,
                ok_codes=(0, 3),
                input_size=source.stat().st_size,
                limit=OutputLimit(ratio=10),
                name="qpdf",
            )
        except ToolError as exc:
            raise Unrepairable(
                reason=found or exc.en,
                path=source,
                stderr=getattr(exc, "stderr", ""),
            ) from exc
        after, still = _check(out, tmp, timeout) if out.is_file() else (2, "no output")
        pages = 0
        if after == 0:
            try:
                with pikepdf.open(out) as pdf:
                    pages = len(pdf.pages)
            except pikepdf.PdfError as exc:
                still = str(exc)
        if after != 0 or pages < 1:
            if still:
                raise Unrepairable(variant="still_broken", reason=still, path=source)
            raise Unrepairable(variant="no_pages", path=source)
        final_dir = workdir / REPAIR_ACTION.name
        final_dir.mkdir(exist_ok=True)
        final = final_dir / f"{source.stem}.pdf"
        out.replace(final)
    return RepairResult(True, final, "qpdf", version, f"repaired: {found}"[:1000], pages)
