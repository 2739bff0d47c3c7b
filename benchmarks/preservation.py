#!/usr/bin/env python3
"""Preservation throughput against its limits, measured in one run.

    python benchmarks/preservation.py [--audit-size 512MiB] [--audit-files 128] [--pdfs 20] [--pages 10]

1. **Fixity audit vs the raw hash limit.** A fresh ``ARCHIVE_HOME`` gets one ingested record with
   ``--audit-files`` random files (``--audit-size`` in all). The limit is hashlib computing sha512 (the
   audit's default algorithm, the OCFL content digest) over the same stored content files on every core (a
   thread per core, 1 MiB reads, nothing else to do). Then ``preservation.audit.run_audit`` over the whole
   root (inventories, sidecars, catalogue comparison, report files, events). Both run twice, alternately, on
   a warm page cache; the best of each is reported. Target ≥ 0.85× the limit.
2. **Migration overhead vs the tool alone.** ``--pdfs`` PDFs of ``--pages`` pages (reportlab, Chinese and
   Latin text). Direct: Ghostscript with exactly the command line ``preservation.actions`` ran for each file
   (``pdfa_command`` with the interpreter the action chose up front), one run per file. Action:
   ``run_action`` (Ghostscript + output checks). Pipeline: ``preservation.migrate.migrate`` end to end on the
   same files after ingest (damage check with qpdf, font and page inspection and text checks, PDF/A
   validation with pikepdf, hashing, OCFL version, PUID by Siegfried, catalogue transaction with the PREMIS
   event; the damage check runs beside Ghostscript, hashing and Siegfried while pdftotext reads the
   output, see preservation/migrate.py). The three run file by file, interleaved, so that they see the same
   load on a shared machine.
   Target: at most 10 % extra time, i.e. our overhead (checks + storage + catalogue) against the tool's own
   work.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from archive import db, services
from archive.config import Settings
from archive.home import init_home, store_for
from archive.models import File
from ingest.bagwriter import make_bag, write_payload
from ingest.pipeline import ingest
from tests.e2e.helpers import CSV_HEADER

if TYPE_CHECKING:
    from preservation.actions import Interpreter

UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    return int(float(t[:-1]) * UNITS[t[-1]]) if t and t[-1] in UNITS else int(t)


def new_home(path: Path) -> Settings:
    os.environ["ARCHIVE_HOME"] = str(path)
    os.environ.pop("ARCHIVE_DATABASE_URL", None)
    db.dispose_engines()
    settings = Settings()
    init_home(settings)
    with db.write_session(settings) as s:
        services.add_archive(s, "GZ", name_zh="广州市档案馆", name_en=None, level="city", parent=None)
    return settings


def ingest_payload(settings: Settings, root: Path, files: dict[str, bytes], code: str) -> None:
    payload = {f"data/r/{name}": data for name, data in files.items()}
    payload["data/metadata/records.csv"] = (
        CSV_HEADER + f"r,{code},基准,测试,1990,永久,公开,自动\r\n"
    ).encode()
    write_payload(root, payload)
    result = ingest(make_bag(root, algorithms=("sha256",)), "GZ", settings)
    assert result.status == "stored", result.problems


def raw_sha512(paths: list[Path]) -> tuple[float, int]:
    def one(path: Path) -> int:
        h = hashlib.sha512()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        n = 0
        with open(path, "rb", buffering=0) as f:
            while got := f.readinto(buf):
                h.update(view[:got])
                n += got
        h.hexdigest()
        return n

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        total = sum(pool.map(one, sorted(paths, key=lambda p: -p.stat().st_size)))
    return time.perf_counter() - started, total


def bench_audit(work: Path, size: int, count: int) -> list[tuple[str, str, str, str]]:
    from preservation.audit import run_audit

    settings = new_home(work / "audit-home")
    block = os.urandom(size // count)
    files = {f"f{i:04d}.bin": block[i:] + block[:i] for i in range(count)}  # distinct contents, no dedup
    ingest_payload(settings, work / "audit-bag", files, "AUDIT-1")
    store = store_for(settings)
    contents = sorted({cf.path for oid in store.iter_objects() for cf in store.content_files(oid)})
    raw_best = audit_best = float("inf")
    nbytes = audited = 0
    for _ in range(2):
        seconds, nbytes = raw_sha512(contents)
        raw_best = min(raw_best, seconds)
        report = run_audit(settings, resume=False)
        assert report.ok, report.failures
        audit_best = min(audit_best, report.seconds)
        audited = report.bytes
    raw_rate, audit_rate = nbytes / raw_best / 1e6, audited / audit_best / 1e6
    return [
        ("fixity: hashlib sha512, all cores (limit)", f"{raw_rate:,.0f} MB/s", f"{nbytes / 1e6:,.0f} MB", ""),
        (
            "fixity: run_audit (sha512)",
            f"{audit_rate:,.0f} MB/s",
            f"{audited / 1e6:,.0f} MB",
            f"{audit_rate / raw_rate:.2f}x limit (target >= 0.85x)",
        ),
    ]


def direct_gs(source: Path, work: Path, interpreter: Interpreter) -> float:
    """Ghostscript alone on one file, with the command line the action ran for it (the interpreter it chose
    up front, see preservation/actions.py): one run."""
    from preservation import actions

    tmp = Path(tempfile.mkdtemp(dir=work, prefix="gs-"))
    actions.prepare_pdfa(tmp)
    argv = actions.pdfa_command(tmp, source, tmp / "out.pdf", interpreter)
    started = time.perf_counter()
    subprocess.run(argv, cwd=tmp, check=True, capture_output=True)
    return time.perf_counter() - started


def bench_migration(work: Path, count: int, pages: int) -> list[tuple[str, str, str, str]]:
    """Per file: the action, Ghostscript alone, then migrate(), so that all three see the same load on a
    shared machine (phases one after the other would each see a different one)."""
    from preservation.actions import identify_puid, run_action
    from preservation.migrate import migrate
    from tests.preservation.samples import make_pdf

    samples = work / "pdfs"
    samples.mkdir()
    sources = [make_pdf(samples / f"doc{i:02d}.pdf", pages=pages, text=f"document {i}") for i in range(count)]
    settings = new_home(work / "migrate-home")
    ingest_payload(settings, work / "pdf-bag", {p.name: p.read_bytes() for p in sources}, "PDF-1")
    with db.read_session(settings) as s:
        rows = s.execute(select(File.id, File.logical_path).where(File.role == "original")).all()
    ids = {Path(path).name: fid for fid, path in rows}
    identify_puid(sources[0])  # load Siegfried's signatures once, as a long-lived worker has
    gs_runs = 0
    action = direct = pipeline = 0.0
    for source in sources:
        started = time.perf_counter()  # the action alone: tool run + output validation
        result = run_action("pdfa", source, work / "actions", 120)
        action += time.perf_counter() - started
        gs_runs += result.details["gs_runs"]
        direct += direct_gs(source, work, result.details["interpreter"])
        started = time.perf_counter()
        outcome = migrate(settings, ids[source.name], "pdfa")
        pipeline += time.perf_counter() - started
        assert outcome.status == "migrated", outcome
    return [
        (
            f"PDF/A: gs direct, {count} PDFs x {pages} pages ({count} gs runs; the action made {gs_runs})",
            f"{direct:.2f} s",
            f"{direct / count:.3f} s/file",
            "",
        ),
        (
            "PDF/A: run_action (gs + validation)",
            f"{action:.2f} s",
            f"{action / count:.3f} s/file",
            f"{(action - direct) / direct:+.1%} vs direct",
        ),
        (
            "PDF/A: migrate() end to end",
            f"{pipeline:.2f} s",
            f"{pipeline / count:.3f} s/file",
            f"{(pipeline - direct) / direct:+.1%} vs direct (target <= +10%); "
            f"storage+catalogue {(pipeline - action) / direct:+.1%}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audit-size", default="512MiB")
    parser.add_argument("--audit-files", type=int, default=128)
    parser.add_argument("--pdfs", type=int, default=20)
    parser.add_argument("--pages", type=int, default=10)
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-preservation-") as tmp:
        work = Path(tmp)
        rows += bench_audit(work, parse_size(args.audit_size), args.audit_files)
        rows += bench_migration(work, args.pdfs, args.pages)
    db.dispose_engines()
    print(f"\ncores: {os.cpu_count()}")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))


if __name__ == "__main__":
    main()
