#!/usr/bin/env python3
"""The public portal under load: the search page and the search API, as production runs them, beside one process.

    python benchmarks/portal_load.py [--matching 900] [--requests 2000] [--concurrency 20] [--workers 2]

1. Builds a node on the embedded defaults (SQLite catalogue, embedded index) with the search benchmark's
   generated records (``benchmarks/search.py``), as many as it takes for ``--matching`` of them to match 档案.
2. Starts the portal twice, as ``archive serve`` does: once with one process (the issue's measurement) and once
   as production runs it (``--workers N``, uvloop and httptools when installed, proxy headers on).
3. Against each, for ``/search?q=档案`` (the HTML page) and ``/api/v1/search?q=档案``: a warm-up, then
   ``--requests`` requests from ``--concurrency`` keep-alive connections. The load generator is a small asyncio
   HTTP/1.1 client in this process (it spends far less CPU per request than an HTTP library, and the machine
   has only 2 cores to share with the portal); its own CPU time is printed too.

Prints p50/p95/p99 (ms), requests/s, errors (anything but a 200 with a body), the portal's memory (RSS summed
over its processes, peak during the run) and the CPU it spent per request (summed over its processes). Target:
p95 ≤ 100 ms for both at that load. The machine is shared, so latencies depend on what else runs (the load
average is printed): the CPU per request does not, and bounds what a machine of the portal's own would give —
with C cores busy, concurrency K answers in about K × CPU/request / C. Run it more than once and read the
spread. Everything it creates is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from archive import db  # noqa: E402
from archive.config import Settings  # noqa: E402


def _search_bench() -> object:
    """benchmarks/search.py (its generator and catalogue filler), loaded under another name than ``search``."""
    spec = importlib.util.spec_from_file_location("search_benchmark", _HERE / "search.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORD = "档案"


def build_node(home: Path, matching: int) -> tuple[int, int]:
    """A node whose catalogue and embedded index hold the generated records, as many as it takes for
    ``matching`` of them to contain 档案. Returns (records, records the index finds for 档案)."""
    bench = _search_bench()
    records = 0
    found = 0
    for doc in bench.generate(10**7):  # type: ignore[attr-defined]
        records += 1
        text = " ".join([doc.title, doc.creator or "", doc.description or "", *doc.keywords, doc.text])
        found += WORD in text
        if found >= matching:
            break
    settings = Settings(home=home)
    bench.fill_catalogue(settings, records)  # type: ignore[attr-defined]
    bench.index_embedded(settings.home_dir / "search.sqlite3", records, 1000)  # type: ignore[attr-defined]
    db.dispose_engines()
    from search import EmbeddedBackend, SearchQuery

    backend = EmbeddedBackend(settings.home_dir / "search.sqlite3")
    total = backend.search(SearchQuery(q=WORD, size=1)).total
    backend.close()
    return records, total


# -- the portal ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    home: Path, workers: int, log: Path, code: Path = _HERE.parent
) -> tuple[subprocess.Popen[bytes], int]:
    """``archive serve`` as production starts it (uvicorn; uvloop/httptools when installed), from the
    checkout ``code`` (another one with ``--baseline``)."""
    port = free_port()
    cmd = [sys.executable, "-m", "archive", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--no-drain", "--log-level", "warning"]  # fmt: skip
    if workers > 1:
        cmd += ["--workers", str(workers), "--no-access-log"]
    env = {**os.environ, "ARCHIVE_HOME": str(home), "ARCHIVE_ELASTICSEARCH_URL": "", "PYTHONPATH": str(code)}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=code)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"portal exited: {log.read_text()[-2000:]}")
        try:
            status = asyncio.run(_one(port, "/healthz"))
            if status == 200 and (workers == 1 or len(tree(proc.pid)) > workers):
                return proc, port
        except OSError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"portal not healthy after 120 s: {log.read_text()[-2000:]}")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the live process tree."""
    total = 0
    for p in tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class PeakRss:
    """Samples the process tree's RSS every 100 ms while the load runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.1)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


# -- the load: a minimal HTTP/1.1 keep-alive client ------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """(status, body length) of one response; Content-Length or chunked bodies."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
        return status, len(body)
    size = 0
    if headers.get("transfer-encoding") == "chunked":
        while True:
            n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(n + 2)
            size += n
            if n == 0:
                return status, size
    raise ValueError("response without a length")


async def _one(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    status, _ = await _read_response(reader)
    writer.close()
    return status


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    #: CPU the portal spent (its process tree), in ms per request: what decides the latency on a machine
    #: of its own, whatever else the shared machine runs.
    server_cpu_ms: float = 0.0


async def _drive(port: int, path: str, requests: int, concurrency: int) -> Load:
    load = Load()
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode()
    left = requests

    async def worker() -> None:
        nonlocal left
        reader = writer = None
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(request)
                status, size = await asyncio.wait_for(_read_response(reader), 30)
                load.latencies.append((time.perf_counter() - t0) * 1000)
                load.bytes += size
                if status != 200 or size == 0:
                    load.errors += 1
            except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
                load.errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.seconds = time.perf_counter() - t0
    load.cpu = time.process_time() - cpu0
    return load


def drive(port: int, path: str, requests: int, concurrency: int) -> Load:
    return asyncio.run(_drive(port, path, requests, concurrency))


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else float("nan")


@dataclass
class Row:
    setup: str
    endpoint: str
    load: Load
    rss: float


def run_setup(
    name: str, home: Path, workers: int, args: argparse.Namespace, work: Path, code: Path = _HERE.parent
) -> list[Row]:
    proc, port = serve(home, workers, work / f"portal-{workers}.log", code)
    rows = []
    try:
        for label, path in (
            ("page /search", f"/search?q={quote(WORD)}"),
            ("api /api/v1/search", f"/api/v1/search?q={quote(WORD)}"),
        ):
            drive(port, path, args.warmup, args.concurrency)
            cpu0 = cpu_seconds(proc.pid)
            with PeakRss(proc.pid) as peak:
                load = drive(port, path, args.requests, args.concurrency)
            load.server_cpu_ms = (cpu_seconds(proc.pid) - cpu0) * 1000 / args.requests
            rows.append(Row(name, label, load, peak.peak))
            print(f"  {name:28s} {label:20s} {summary(load)}   RSS {peak.peak:6.0f} MB", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


def summary(load: Load) -> str:
    lat = load.latencies
    return (
        f"p50 {pct(lat, 50):6.1f}  p95 {pct(lat, 95):6.1f}  p99 {pct(lat, 99):6.1f} ms  "
        f"{len(lat) / load.seconds:5.0f} req/s  errors {load.errors}  portal CPU {load.server_cpu_ms:4.1f} ms/req  "
        f"(driver CPU {load.cpu:3.1f} s)"
    )


def best_of(rows: list[Row], args: argparse.Namespace) -> None:
    """Per setup and endpoint, the best of the repeats (lowest p95; lowest CPU per request), the page's CPU
    per request beside the API's, and this checkout's figures beside the baseline's of the same run."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.setup, row.endpoint), []).append(row)
    best = {
        key: (
            min(pct(r.load.latencies, 95) for r in group),
            min(r.load.server_cpu_ms for r in group),
            max(r.rss for r in group),
            sum(r.load.errors for r in group),
        )
        for key, group in groups.items()
    }
    n = max(len(g) for g in groups.values())
    print(f"\nbest of {n} (target p95 ≤ {args.target_p95:.0f} ms)")
    setups = list(dict.fromkeys(setup for setup, _ in best))
    for setup in setups:
        page, api = best.get((setup, "page /search")), best.get((setup, "api /api/v1/search"))
        for label, b in (("page /search", page), ("api /api/v1/search", api)):
            if b is None:
                continue
            verdict = "met" if b[0] <= args.target_p95 and not b[3] else "MISSED"
            print(f"  {setup:28s} {label:20s} p95 {b[0]:6.1f} ms  portal CPU {b[1]:4.2f} ms/req  "
                  f"RSS {b[2]:5.0f} MB  errors {b[3]}  {verdict}")  # fmt: skip
        if page and api and api[1]:
            print(f"  {setup:28s} page CPU / API CPU {page[1] / api[1]:4.2f}×")
    peers = {
        "one process (the issue's)": "baseline: one process",
        f"production: {args.workers} workers": f"baseline: {args.workers} workers",
    }
    for setup, peer in peers.items():
        for label in ("page /search", "api /api/v1/search"):
            ours, theirs = best.get((setup, label)), best.get((peer, label))
            if ours and theirs and theirs[0] and theirs[1]:
                print(f"  {setup:28s} {label:20s} vs {peer}: p95 {ours[0] / theirs[0]:4.2f}×, "
                      f"CPU/request {ours[1] / theirs[1]:4.2f}×")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--matching", type=int, default=900, help="records that match 档案")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=200, help="requests before each measurement")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="production worker processes"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure both setups this many times, alternately"
    )
    parser.add_argument("--target-p95", type=float, default=100.0)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the project (e.g. `git worktree add /tmp/base main`): its portal is measured "
        "too, one process and production, alternating with this one's, in the same run",
    )
    args = parser.parse_args()

    fast = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m)]
    work = Path(tempfile.mkdtemp(prefix="pearl-portal-load-"))
    try:
        t0 = time.monotonic()
        records, total = build_node(work / "home", args.matching)
        print(f"portal load: {records:,} records, {total:,} match {WORD} (embedded index), built in "
              f"{time.monotonic() - t0:.0f} s; {args.requests:,} requests per endpoint at concurrency "
              f"{args.concurrency}; {os.cpu_count()} cores; {', '.join(fast) or 'no uvloop/httptools'}; "
              f"load average {os.getloadavg()[0]:.1f} before the run")  # fmt: skip
        rows: list[Row] = []
        for _ in range(args.repeat):
            if args.baseline:
                rows += run_setup(
                    "baseline: one process", work / "home", 1, args, work, args.baseline.resolve()
                )
            rows += run_setup("one process (the issue's)", work / "home", 1, args, work)
            if args.baseline:
                rows += run_setup(
                    f"baseline: {args.workers} workers",
                    work / "home",
                    args.workers,
                    args,
                    work,
                    args.baseline.resolve(),
                )
            rows += run_setup(f"production: {args.workers} workers", work / "home", args.workers, args, work)
        print(f"\nsummary (target p95 ≤ {args.target_p95:.0f} ms; load average now {os.getloadavg()[0]:.1f})")
        for row in rows:
            p95 = pct(row.load.latencies, 95)
            verdict = "met" if p95 <= args.target_p95 and not row.load.errors else "MISSED"
            print(
                f"  {row.setup:28s} {row.endpoint:20s} {summary(row.load)}   RSS {row.rss:6.0f} MB   {verdict}"
            )
        if args.repeat > 1 or args.baseline:
            best_of(rows, args)
        print(f"driver process: max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
