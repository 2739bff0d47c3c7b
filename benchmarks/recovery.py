#!/usr/bin/env python3
"""Recovery: replication throughput to a file-system replica and to S3 against the tools that copy the same
files without any of our guarantees — in one run, on this machine.

    python benchmarks/recovery.py [--records 300] [--mb 1.0] [--rounds 2]
                                  [--rebuild-records 100000] [--versions 300] [--quick] [--skip-hooks]

1. One home, ``--records`` records ingested from one bag (one file of about ``--mb`` MB each, random bytes,
   plus the transfer object): the OCFL versions a replica has to receive.
2. File system: ``archive replicas sync`` (in this process: copy every version whole, fsync, read back and
   hash every file against the inventory, root inventory last, catalogue rows and PREMIS events) into an
   empty folder, beside ``cp -r`` of the same storage root into another empty folder (no fsync, no check) —
   alternating, ``--rounds`` times each, the best of each (target: ours ≥ 0.8× cp's rate). ``cp -r && sync``
   is printed too, for what durability alone costs.
3. S3, against the SeaweedFS server ``scripts/services.sh`` starts (``ARCHIVE_TEST_S3_URL``): the same sync
   into an empty bucket prefix, beside SeaweedFS's own bulk client copying the same storage root into the
   same server — ``weed filer.copy`` (8 files at once, its default), which writes through the filer that
   backs the S3 buckets, with no Content-MD5, no read-back and no bookkeeping (target: ours ≥ 0.8×). It is
   the fairest "own client" here: no AWS CLI is installed, and filer.copy is the tool SeaweedFS documents for
   loading a folder into it.
4. ``benchmarks/rebuild.py`` (rebuild from storage alone against reading every inventory of the same root:
   the RTO for ``--rebuild-records`` records — 100,000 by default — and its projection to 10 million) and
   ``benchmarks/signing.py`` (sign + timestamp per version against the local TSA's own time, over
   ``--versions`` versions) are run here through their ``recovery_figures(...)`` (what, ours, the peer's or
   the limit), so one run prints every issue-13 figure. ``--quick`` shrinks every size (40 records to
   replicate, 5,000 to rebuild — the 100,000-record RTO is then projected — and 60 versions).

The page cache is warm for every copy (the storage root is read once first): the figures compare copying, not
the source disk. The machine is shared (2 cores): figures go in the closing note, never into assertions.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from archive import db, services  # noqa: E402
from archive.config import Settings  # noqa: E402
from archive.home import init_home  # noqa: E402
from archive.replicas import sync  # noqa: E402
from ingest.bagwriter import make_bag, write_payload  # noqa: E402
from ingest.pipeline import ingest  # noqa: E402

RECORDS = 300
REBUILD_RECORDS = 100_000
VERSIONS = 300
QUICK = {"records": 40, "rebuild_records": 5_000, "versions": 60}
CSV_HEADER = "路径,档号,题名,责任者,日期,保管期限,密级,开放状态\r\n"


def _tree_bytes(root: Path) -> tuple[int, int]:
    files = nbytes = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            nbytes += (Path(dirpath) / name).stat().st_size
    return files, nbytes


def _warm(root: Path) -> None:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            with open(Path(dirpath) / name, "rb") as f:
                while f.read(1 << 20):
                    pass


def make_home(base: Path, records: int, mb: float) -> Settings:
    os.environ["ARCHIVE_HOME"] = str(base / "home")
    os.environ.pop("ARCHIVE_DATABASE_URL", None)
    os.environ.pop("ARCHIVE_REPLICAS", None)
    settings = Settings()
    init_home(settings)
    with db.write_session(settings) as s:
        services.add_archive(s, "GZ", name_zh="广州市档案馆", name_en=None, level="city", parent=None)
    bag = base / "bag"
    rows = [CSV_HEADER]
    size = int(mb * 1_000_000)
    for i in range(records):
        write_payload(bag, {f"data/件{i:05d}/正文.bin": os.urandom(size)})
        rows.append(f"件{i:05d},GZ·BM-2024-{i:05d},基准测试件{i},测试单位,2024,永久,,自动\r\n")
    write_payload(bag, {"data/metadata/records.csv": "".join(rows).encode()})
    make_bag(bag, algorithms=("sha256",))
    result = ingest(bag, "GZ", settings)
    assert result.stored, result.as_dict()
    shutil.rmtree(bag)
    return settings


def _with_replicas(settings: Settings, entry: str, **env: str) -> Settings:
    os.environ["ARCHIVE_REPLICAS"] = entry
    os.environ.update(env)
    return Settings()


def _reset_copies(settings: Settings) -> None:
    """Forget every copy so the next sync copies everything again (to a fresh target)."""
    from sqlalchemy import delete, update

    from archive.models import Outbox
    from archive.replicas.models import ReplicaCopy

    with db.write_session(settings) as s:
        s.execute(delete(ReplicaCopy))
        s.execute(update(Outbox).where(Outbox.topic == "replicate").values(done_at=None))


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _ours(settings: Settings) -> float:
    def run() -> None:
        results = sync(settings)
        assert results is not None and all(not r.failures and not r.unavailable for r in results), results

    return _timed(run)


def bench_fs(settings: Settings, base: Path, rounds: int, nbytes: int) -> list[tuple[str, str, str]]:
    ours: list[float] = []
    cp: list[float] = []
    cp_sync: list[float] = []
    for r in range(rounds):
        dest = base / f"cp-{r}"
        cp.append(
            _timed(lambda d=dest: subprocess.run(["cp", "-r", str(settings.ocfl_root), str(d)], check=True))
        )
        shutil.rmtree(dest)
        cp_sync.append(
            _timed(
                lambda d=dest: subprocess.run(
                    f"cp -r '{settings.ocfl_root}' '{d}' && sync", shell=True, check=True
                )
            )
        )
        shutil.rmtree(dest)
        replica = base / f"replica-{r}"
        _reset_copies(settings)
        ours.append(_ours(_with_replicas(settings, str(replica))))
        shutil.rmtree(replica)
    mb = nbytes / 1e6
    best_ours, best_cp, best_cp_sync = min(ours), min(cp), min(cp_sync)
    return [
        ("file system: archive replicas sync", f"{mb / best_ours:.0f} MB/s ({best_ours:.2f} s)", ""),
        ("file system: cp -r", f"{mb / best_cp:.0f} MB/s ({best_cp:.2f} s)", ""),
        ("file system: cp -r && sync", f"{mb / best_cp_sync:.0f} MB/s ({best_cp_sync:.2f} s)", ""),
        ("file system: ours / cp -r", f"{best_cp / best_ours:.2f}×", "≥ 0.8×"),
    ]


def bench_s3(settings: Settings, base: Path, rounds: int, nbytes: int) -> list[tuple[str, str, str]]:
    url = os.environ.get("ARCHIVE_TEST_S3_URL")
    filer = os.environ.get("ARCHIVE_TEST_SEAWEEDFS_FILER")
    weed = os.environ.get("ARCHIVE_TEST_SEAWEEDFS_BIN")
    if not (url and filer and weed):
        return [("S3", "skipped: start SeaweedFS (scripts/services.sh start seaweedfs) and eval its env", "")]
    env = {
        "ARCHIVE_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": os.environ["ARCHIVE_TEST_S3_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": os.environ["ARCHIVE_TEST_S3_SECRET_KEY"],
    }
    bucket = "archive-bench"
    ours: list[float] = []
    theirs: list[float] = []
    for _r in range(rounds):
        run = uuid.uuid4().hex[:8]
        theirs.append(
            _timed(
                lambda run=run: subprocess.run(
                    [
                        weed,
                        "filer.copy",
                        str(settings.ocfl_root) + "/",
                        f"http://{filer}/buckets/{bucket}/fc-{run}/",
                    ],
                    check=True,
                    capture_output=True,
                )
            )
        )
        _reset_copies(settings)
        ours.append(_ours(_with_replicas(settings, f"s3://{bucket}/ours-{run}", **env)))
    mb = nbytes / 1e6
    best_ours, best_theirs = min(ours), min(theirs)
    return [
        ("S3 (SeaweedFS): archive replicas sync", f"{mb / best_ours:.0f} MB/s ({best_ours:.2f} s)", ""),
        ("S3 (SeaweedFS): weed filer.copy", f"{mb / best_theirs:.0f} MB/s ({best_theirs:.2f} s)", ""),
        ("S3: ours / weed filer.copy", f"{best_theirs / best_ours:.2f}×", "≥ 0.8×"),
    ]


def hooked(name: str, **sizes: int) -> list[tuple[str, str, str]]:
    """The figures of ``benchmarks/<name>.py`` (its ``recovery_figures(**sizes)``), when that benchmark
    exists."""
    path = _HERE / f"{name}.py"
    if not path.is_file():
        return [(f"{name}: not measured", f"benchmarks/{name}.py is not there yet", "")]
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = getattr(module, "recovery_figures", None)
    if figures is None:
        return [(f"{name}: not measured", f"benchmarks/{name}.py has no recovery_figures()", "")]
    return list(figures(**sizes))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=None, help=f"records to replicate ({RECORDS})")
    parser.add_argument("--mb", type=float, default=1.0, help="size of each record's file (MB)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--rebuild-records",
        type=int,
        default=None,
        help=f"records to rebuild from storage ({REBUILD_RECORDS})",
    )
    parser.add_argument(
        "--versions", type=int, default=None, help=f"versions to sign and timestamp ({VERSIONS})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes for a quick run: {QUICK} (each still overridable)",
    )
    parser.add_argument("--skip-hooks", action="store_true", help="only the replication figures")
    args = parser.parse_args()
    quick = dict(QUICK) if args.quick else {}
    args.records = args.records or quick.get("records", RECORDS)
    args.rebuild_records = args.rebuild_records or quick.get("rebuild_records", REBUILD_RECORDS)
    args.versions = args.versions or quick.get("versions", VERSIONS)
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as tmp:
        base = Path(tmp)
        t = time.perf_counter()
        settings = make_home(base, args.records, args.mb)
        files, nbytes = _tree_bytes(settings.ocfl_root)
        print(
            f"home: {args.records} records, {files} files, {nbytes / 1e6:.0f} MB in the storage root "
            f"(made in {time.perf_counter() - t:.0f} s); replication workers {settings.replication_workers}"
        )
        _warm(settings.ocfl_root)
        steps: list[Callable[[], list[tuple[str, str, str]]]] = [
            lambda: bench_fs(settings, base, args.rounds, nbytes),
            lambda: bench_s3(settings, base, args.rounds, nbytes),
        ]
        if not args.skip_hooks:
            steps.append(lambda: hooked("rebuild", records=args.rebuild_records))
            steps.append(lambda: hooked("signing", versions=args.versions))
        lines: list[tuple[str, str, str]] = []
        for step in steps:
            found = step()
            _print(found)  # as each part ends: a long run shows what it has measured so far
            lines += found
        db.dispose_engines()
    print("\nall figures, this run:")
    _print(lines)


def _print(lines: list[tuple[str, str, str]]) -> None:
    width = max(len(w) for w, _o, _p in lines)
    for what, ours, peer in lines:
        print(f"{what:<{width}}  {ours:<28} {peer}", flush=True)


if __name__ == "__main__":
    main()
