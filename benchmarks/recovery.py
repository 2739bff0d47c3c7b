#!/usr/bin/env python3
"""Recovery: replication throughput to a file-system replica and to S3 against the tools that copy the same
files without any of our guarantees — in one run, on this machine.

    python benchmarks/recovery.py [--records 300] [--mb 1.0] [--rounds 2]
                                  [--rebuild-records 100000] [--versions 300] [--quick] [--skip-hooks]

1. One home, ``--records`` records ingested from one bag (one file of about ``--mb`` MB each, random bytes,
   plus the transfer object): the OCFL versions a replica has to receive.
2. File system: ``archive replicas sync`` (in this process: copy every version whole, read back and hash
   every file against the inventory, durable before the root inventory and before the catalogue marks it,
   root inventory last, catalogue rows and PREMIS events) into an empty folder, beside ``cp -r`` of the
   same storage root into another empty folder (no fsync, no check) — alternating, ``--rounds`` times each,
   the best of each (target: ours ≥ 0.8× cp's rate; printed with "met" or "MISSED"). ``cp -r && sync`` is
   printed too, for what durability alone costs, and the CPU seconds of each; so is reading that durable
   copy back and hashing it (sha512, as the inventories) — the cost of our read-back check alone, and with
   it the best ratio to ``cp -r && sync`` that the check leaves (the fair-peer target there: ≥ 0.8×).
3. S3, against the SeaweedFS server ``scripts/services.sh`` starts (``ARCHIVE_TEST_S3_URL``): the same sync
   into an empty bucket prefix, beside SeaweedFS's own bulk client copying the same storage root into the
   same server — ``weed filer.copy`` (8 files at once, its default), which writes through the filer that
   backs the S3 buckets, with no Content-MD5, no read-back and no bookkeeping (target: ours ≥ 0.8×). It is
   SeaweedFS's own client, and filer.copy is the tool SeaweedFS documents for
   loading a folder into it. A third contender shows the floor of the S3 door itself: the same files PUT
   by plain boto3 with no checks at all; a fourth, when the AWS CLI is there (``--install-aws-cli`` puts
   it in its own virtual environment), the standard S3 client: ``aws s3 cp --recursive``. Each line gives the client's and the server's CPU seconds (the
   server's from /proc): on a machine whose 2 cores are saturated, CPU is what the rates follow.
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
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _measured(fn: Callable[[], object], cpu: Callable[[], float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn``; ``cpu`` reads the counter that the work is charged to."""
    c = cpu()
    t = _timed(fn)
    return t, cpu() - c


def _verdict(ratio: float, target: float) -> str:
    return f"≥ {target}× — {'met' if ratio >= target else 'MISSED'}"


def bench_fs(settings: Settings, base: Path, rounds: int, nbytes: int) -> list[tuple[str, str, str]]:
    """Alternating cp -r, cp -r && sync, ours; best of ``rounds`` each. Every copy goes into a new folder
    and the copies are deleted only after the last round: on ext4 the inode allocator skips (and pays for
    scanning) inodes freed in the last seconds, so whichever copy followed a deletion would be slowed."""
    ours: list[tuple[float, float]] = []
    cp: list[tuple[float, float]] = []
    cp_sync: list[tuple[float, float]] = []
    read_back: list[tuple[float, float]] = []
    made: list[Path] = []
    try:
        for r in range(rounds):
            dest = base / f"cp-{r}"
            made.append(dest)
            cp.append(
                _measured(
                    lambda d=dest: subprocess.run(["cp", "-r", str(settings.ocfl_root), str(d)], check=True),
                    _cpu_children,
                )
            )
            dest = base / f"cp-sync-{r}"
            made.append(dest)
            cp_sync.append(
                _measured(
                    lambda d=dest: subprocess.run(
                        f"cp -r '{settings.ocfl_root}' '{d}' && sync", shell=True, check=True
                    ),
                    _cpu_children,
                )
            )
            # the floor of our read-back check: every byte of that durable copy read back and hashed
            # (the inventory's sha512), two threads — what cp -r && sync would cost with our verification
            read_back.append(_measured(lambda d=dest: _hash_tree(d, settings.replication_workers), _cpu_self))
            replica = base / f"replica-{r}"
            made.append(replica)
            _reset_copies(settings)
            target = _with_replicas(settings, str(replica))
            ours.append(_measured(lambda t=target: _ours(t), _cpu_self))
    finally:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
    mb = nbytes / 1e6
    (best_ours, cpu_ours), (best_cp, cpu_cp), (best_cp_sync, cpu_cp_sync) = min(ours), min(cp), min(cp_sync)
    ratio = best_cp / best_ours
    return [
        (
            "file system: archive replicas sync",
            f"{mb / best_ours:.0f} MB/s ({best_ours:.2f} s)",
            f"CPU {cpu_ours:.2f} s",
        ),
        ("file system: cp -r", f"{mb / best_cp:.0f} MB/s ({best_cp:.2f} s)", f"CPU {cpu_cp:.2f} s"),
        (
            "file system: cp -r && sync",
            f"{mb / best_cp_sync:.0f} MB/s ({best_cp_sync:.2f} s)",
            f"CPU {cpu_cp_sync:.2f} s; durability's floor: {best_cp / best_cp_sync:.2f}× cp -r",
        ),
        (
            "file system: read back + sha512 of that copy",
            f"{mb / min(read_back)[0]:.0f} MB/s ({min(read_back)[0]:.2f} s)",
            f"CPU {min(read_back)[1]:.2f} s; the verification's floor: cp -r && sync then this = "
            f"{best_cp_sync / (best_cp_sync + min(read_back)[0]):.2f}× cp -r && sync",
        ),
        ("file system: ours / cp -r", f"{ratio:.2f}×", _verdict(ratio, 0.8)),
        (
            "file system: ours / (cp -r && sync)",
            f"{best_cp_sync / best_ours:.2f}×",
            "same durability; fair peer " + _verdict(best_cp_sync / best_ours, 0.8),
        ),
    ]


def _hash_tree(root: Path, workers: int) -> None:
    """Every file under ``root`` read back and hashed (sha512, as the inventories), ``workers`` at once."""
    from archive.digests import hash_file

    files = [Path(d) / n for d, _dirs, names in os.walk(root) for n in names]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda p: hash_file(p, ("sha512",)), files))


def _weed_server_cpu(weed: str, url: str) -> Callable[[], float]:
    """The CPU seconds the SeaweedFS server answering ``url`` has used so far (0 if it cannot be found in
    /proc); the one whose ``-s3.port`` is the URL's, when several run on the machine."""
    port = f"-s3.port={url.rsplit(':', 1)[-1].strip('/')}".encode()
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0] == weed.encode() and argv[1] == b"server" and port in argv:

            def read(stat: Path = proc / "stat") -> float:
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    return 0.0
                return (int(fields[11]) + int(fields[12])) / tick

            return read
    return lambda: 0.0


def _bare_puts(root: Path, url: str, bucket: str, prefix: str, env: dict[str, str], workers: int) -> None:
    """Every file of ``root`` PUT as it is, ``workers`` at once, through one boto3 client: no Content-MD5,
    no digest, no bookkeeping — what the server's S3 door costs by itself."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]
    ).client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            max_pool_connections=workers + 2,
        ),
    )
    files = [p for p in root.rglob("*") if p.is_file()]

    def put(p: Path) -> None:
        client.put_object(
            Bucket=bucket, Key=f"{prefix}/{p.relative_to(root).as_posix()}", Body=p.read_bytes()
        )

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, files))


#: Where ``--install-aws-cli`` puts the AWS CLI (its own virtual environment: it pins its own botocore).
AWS_CLI_VENV = Path(
    os.environ.get("ARCHIVE_AWS_CLI_VENV", Path.home() / ".cache" / "pearl-tools" / "awscli-venv")
)


def _aws_cli() -> str | None:
    """The AWS CLI: ``aws`` on PATH, else the one ``--install-aws-cli`` installed."""
    found = shutil.which("aws")
    if found:
        return found
    cached = AWS_CLI_VENV / "bin" / "aws"
    return str(cached) if cached.is_file() else None


def install_aws_cli() -> str:
    """The AWS CLI (``awscli`` from PyPI) in its own virtual environment beside the other tools."""
    if not (AWS_CLI_VENV / "bin" / "python").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(AWS_CLI_VENV)], check=True)
    pip = [str(AWS_CLI_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "awscli"]
    subprocess.run(pip, check=True)
    return str(AWS_CLI_VENV / "bin" / "aws")


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
    server_cpu = _weed_server_cpu(weed, url)
    ours: list[tuple[float, float, float]] = []  # wall, our CPU, the server's CPU
    theirs: list[tuple[float, float, float]] = []
    bare: list[tuple[float, float, float]] = []
    cli: list[tuple[float, float, float]] = []
    aws = _aws_cli()

    def run_and_measure(fn: Callable[[], object], cpu: Callable[[], float]) -> tuple[float, float, float]:
        before = server_cpu()
        wall, used = _measured(fn, cpu)
        return wall, used, server_cpu() - before

    for _r in range(rounds):
        run = uuid.uuid4().hex[:8]
        theirs.append(
            run_and_measure(
                lambda run=run: subprocess.run(
                    [
                        weed,
                        "filer.copy",
                        str(settings.ocfl_root) + "/",
                        f"http://{filer}/buckets/{bucket}/fc-{run}/",
                    ],
                    check=True,
                    capture_output=True,
                ),
                _cpu_children,
            )
        )
        _reset_copies(settings)
        target = _with_replicas(settings, f"s3://{bucket}/ours-{run}", **env)
        ours.append(run_and_measure(lambda t=target: _ours(t), _cpu_self))
        bare.append(
            run_and_measure(
                lambda run=run: _bare_puts(
                    settings.ocfl_root, url, bucket, f"bare-{run}", env, settings.replication_workers
                ),
                _cpu_self,
            )
        )
        if aws is not None:
            cli.append(
                run_and_measure(
                    lambda run=run: subprocess.run(
                        [
                            aws,
                            "s3",
                            "cp",
                            "--recursive",
                            "--quiet",
                            "--endpoint-url",
                            url,
                            str(settings.ocfl_root),
                            f"s3://{bucket}/cli-{run}/",
                        ],
                        check=True,
                        capture_output=True,
                        env={**os.environ, **env, "AWS_DEFAULT_REGION": "us-east-1"},
                    ),
                    _cpu_children,
                )
            )
    mb = nbytes / 1e6
    best_ours, best_theirs, best_bare = min(ours), min(theirs), min(bare)
    ratio = best_theirs[0] / best_ours[0]

    def cpu(m: tuple[float, float, float], who: str) -> str:
        return f"CPU {who} {m[1]:.2f} s + server {m[2]:.2f} s = {m[1] + m[2]:.2f} s"

    return [
        (
            "S3 (SeaweedFS): archive replicas sync",
            f"{mb / best_ours[0]:.0f} MB/s ({best_ours[0]:.2f} s)",
            cpu(best_ours, "ours"),
        ),
        (
            "S3 (SeaweedFS): weed filer.copy",
            f"{mb / best_theirs[0]:.0f} MB/s ({best_theirs[0]:.2f} s)",
            cpu(best_theirs, "client"),
        ),
        (
            "S3 (SeaweedFS): bare boto3 PUTs, no checks",
            f"{mb / best_bare[0]:.0f} MB/s ({best_bare[0]:.2f} s)",
            cpu(best_bare, "client")
            + f"; the S3 door's ceiling: {best_theirs[0] / best_bare[0]:.2f}× filer.copy",
        ),
        ("S3: ours / weed filer.copy", f"{ratio:.2f}×", _verdict(ratio, 0.8)),
        (
            "S3: ours / bare boto3 PUTs",
            f"{best_bare[0] / best_ours[0]:.2f}×",
            "same server door, no checks; fair peer " + _verdict(best_bare[0] / best_ours[0], 0.8),
        ),
        *_cli_lines(cli, best_ours, mb, cpu),
    ]


def _cli_lines(
    cli: list[tuple[float, float, float]],
    best_ours: tuple[float, float, float],
    mb: float,
    cpu: Callable[[tuple[float, float, float], str], str],
) -> list[tuple[str, str, str]]:
    if not cli:
        return [("S3 (SeaweedFS): aws s3 cp --recursive", "skipped: no AWS CLI (--install-aws-cli)", "")]
    best = min(cli)
    return [
        (
            "S3 (SeaweedFS): aws s3 cp --recursive",
            f"{mb / best[0]:.0f} MB/s ({best[0]:.2f} s)",
            cpu(best, "client") + " (the AWS CLI: the standard S3 client, 10 transfers at once)",
        ),
        (
            "S3: ours / aws s3 cp",
            f"{best[0] / best_ours[0]:.2f}×",
            "the standard S3 client through the same door; fair peer "
            + _verdict(best[0] / best_ours[0], 0.8),
        ),
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
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best of each")
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
    parser.add_argument(
        "--install-aws-cli",
        action="store_true",
        help=f"first install the AWS CLI (PyPI awscli) into {AWS_CLI_VENV}, a fourth S3 contender",
    )
    args = parser.parse_args()
    if args.install_aws_cli:
        print(f"AWS CLI: {install_aws_cli()}")
    quick = dict(QUICK) if args.quick else {}
    args.records = args.records or quick.get("records", RECORDS)
    args.rebuild_records = args.rebuild_records or quick.get("rebuild_records", REBUILD_RECORDS)
    args.versions = args.versions or quick.get("versions", VERSIONS)
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as tmp:
        base = Path(tmp)
        t = time.perf_counter()
        settings = make_home(base, args.records, args.mb)
        files, nbytes = _tree_bytes(settings.ocfl_root)
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
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
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _print(lines: list[tuple[str, str, str]]) -> None:
    width = max(len(w) for w, _o, _p in lines)
    for what, ours, peer in lines:
        print(f"{what:<{width}}  {ours:<28} {peer}", flush=True)


if __name__ == "__main__":
    main()
