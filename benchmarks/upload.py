#!/usr/bin/env python3
"""Resumable upload throughput against curl, and upload-to-stored time against ``archive ingest``, in one run.

    python benchmarks/upload.py [--size 1GiB] [--files 16] [--chunk 128MiB]

Generates a bag (``--files`` files of random bytes, ``--size`` in all) as an uncompressed .tar, reads it once
so every contender starts from the same warm page cache, starts a real ``archive serve`` and ``archive worker``
(solo pool) on a fresh ``ARCHIVE_HOME`` on loopback, then times:

* **tus**: the bag through ``/api/v1/uploads`` in ``--chunk`` PATCHes, with one interruption: the PATCH that
  crosses the middle is sent on a raw socket that is closed half-way through, the client asks HEAD for the
  offset and resumes from there. Wall time from the creation to the last 204, including the cut and resume;
* **curl** (the peer): the same bytes to the same server in one piece, ``curl -F file=@bag.tar`` to
  ``POST /api/v1/transfers`` (the node streams, hashes and writes them, then recognises the bag as the tus
  transfer and answers 200 without a second ingest). Also shown: curl sending the bytes as one tus PATCH.
  Each kind runs ``--repeat`` times, alternately (the repeats of tus are recognised as the first transfer),
  and the best of each is reported, so that a noisy neighbour on a shared machine does not decide the ratio;
* **upload complete → stored**: from the last PATCH's answer to the transfer's status URL saying ``stored``
  (the Celery worker picks the job up from the SQLite broker and ingests it);
* ``archive ingest`` of the same .tar into a second fresh home (the same work, in the foreground).

Targets (issue 11): tus ≥ 0.7 × curl's throughput; complete → stored ≤ 1.1 × ``archive ingest``.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.bagwriter import make_bag  # noqa: E402

UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
CSV_HEADER = "路径,档号,题名,责任者,日期,保管期限,密级,开放状态\r\n"
TUS = {"Tus-Resumable": "1.0.0"}


def parse_size(text: str) -> int:
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t and t[-1] in UNITS:
        return int(float(t[:-1]) * UNITS[t[-1]])
    return int(t)


def make_tar(work: Path, size: int, files: int) -> Path:
    bag = work / "bag-upload-bench"
    folder = bag / "data" / "卷1"
    folder.mkdir(parents=True)
    each = size // files
    for i in range(files):
        with open(folder / f"part-{i:03d}.bin", "wb") as out:
            left = each
            while left:
                block = os.urandom(min(left, 4 << 20))
                out.write(block)
                left -= len(block)
    (bag / "data" / "metadata").mkdir()
    (bag / "data" / "metadata" / "records.csv").write_text(
        CSV_HEADER + "卷1,GZ-900-1990-永久-0001,上传基准,测试单位,1990-01-01,永久,公开,自动\r\n", "utf-8"
    )
    make_bag(bag, algorithms=("sha256",))
    tar = work / "bag.tar"
    with tarfile.open(tar, "w") as t:
        t.add(bag, arcname=bag.name)
    shutil.rmtree(bag)
    return tar


def warm(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(8 << 20):
            pass


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-m", "archive", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def new_home(work: Path, name: str) -> dict[str, str]:
    env = {**os.environ, "ARCHIVE_HOME": str(work / name), "ARCHIVE_MAX_TRANSFER_BYTES": str(8 << 30)}
    for key in (
        "ARCHIVE_DATABASE_URL",
        "ARCHIVE_BROKER_URL",
        "ARCHIVE_ELASTICSEARCH_URL",
        "ARCHIVE_FAILPOINT",
    ):
        env.pop(key, None)
    cli(env, "init")
    cli(env, "archives", "add", "GZ", "--name", "广州市档案馆", "--level", "city")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"archive serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("archive serve did not answer")


def raw_patch(
    url: str, token: str, tar: Path, offset: int, end: int, cut: int | None = None
) -> dict[str, str]:
    """One PATCH on its own connection, the body sent with sendfile (a lean client, so the node is measured);
    with ``cut``, the connection is closed once that many bytes went out, with no answer read."""
    parts = urlsplit(url)
    with (
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock,
        open(tar, "rb") as fh,
    ):
        sock.sendall(
            (
                f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
                f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
                f"Content-Type: application/offset+octet-stream\r\nContent-Length: {end - offset}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        sock.sendfile(fh, offset, (cut if cut is not None else end) - offset)
        if cut is not None:
            return {}
        answer = b""
        while b"\r\n\r\n" not in answer:
            got = sock.recv(65536)
            if not got:
                break
            answer += got
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    headers[":status"] = head[0].split()[1]
    return headers


def tus_upload(url: str, token: str, tar: Path, chunk: int) -> tuple[float, float, str]:
    """(seconds, the cut's offset, the transfer's status URL)."""
    size = tar.stat().st_size
    auth = {"Authorization": f"Bearer {token}"}
    meta = (
        f"archive {base64.b64encode(b'GZ').decode()},filename {base64.b64encode(tar.name.encode()).decode()}"
    )
    started = time.perf_counter()
    with httpx.Client(timeout=600) as client:
        created = client.post(
            url + "/api/v1/uploads",
            headers={**TUS, **auth, "Upload-Length": str(size), "Upload-Metadata": meta},
        )
        assert created.status_code == 201, created.text
        upload = url + created.headers["Location"]
        offset, cut, transfer = 0, 0.0, ""
        while offset < size:
            end = min(offset + chunk, size)
            if not cut and end > size // 2:  # this PATCH dies half-way: the connection is cut
                half = offset + (end - offset) // 2
                raw_patch(upload, token, tar, offset, end, cut=half)
                cut = half
                while True:  # ask where to resume (the node writes what arrived once it sees the cut)
                    head = client.head(upload, headers={**TUS, **auth})
                    if int(head.headers["Upload-Offset"]) >= half or time.perf_counter() - started > 600:
                        break
                    time.sleep(0.02)
                offset = int(head.headers["Upload-Offset"])
                log(f"cut at {half}, resuming from {offset} after {time.perf_counter() - started:.2f}s")
                continue
            r = raw_patch(upload, token, tar, offset, end)
            if r[":status"] == "423":  # the cut PATCH still holds the upload: try again shortly
                time.sleep(0.02)
                continue
            assert r[":status"] == "204", r
            offset = int(r["upload-offset"])
            log(f"PATCH to {offset} at {time.perf_counter() - started:.2f}s")
            transfer = r.get("archive-transfer-url", transfer)
    return time.perf_counter() - started, cut, transfer


def log(text: str) -> None:
    if os.environ.get("UPLOAD_BENCH_VERBOSE"):
        print(text, file=sys.stderr)


def wait_stored(url: str, token: str, status_url: str) -> str:
    with httpx.Client(timeout=30) as client:
        while True:
            status = client.get(url + status_url, headers={"Authorization": f"Bearer {token}"}).json()[
                "status"
            ]
            if status in ("stored", "rejected"):
                return str(status)
            time.sleep(0.05)


def curl(args: list[str]) -> float:
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] in ("200", "201", "202", "204"), out
    return float(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--chunk", default="128MiB", help="Bytes per tus PATCH")
    parser.add_argument("--repeat", type=int, default=3, help="Uploads of each kind; the best is reported")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="upload-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        tar = make_tar(work, parse_size(args.size), args.files)
        size = tar.stat().st_size
        mib = size / (1 << 20)
        warm(tar)
        env = new_home(work, "node")
        cli(
            env,
            "users",
            "add",
            "gz",
            "--role",
            "archivist",
            "--archive",
            "GZ",
            "--password-stdin",
            stdin="x" * 16,
        )
        token = cli(env, "tokens", "create", "gz").strip().splitlines()[-1]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(work / "serve.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "archive",
                        "serve",
                        "--port",
                        str(port),
                        "--no-drain",
                        "--no-access-log",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with open(work / "worker.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "archive", "worker", "--pool=solo", "--concurrency=1"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_http(url, procs[0])
        time.sleep(3)  # the worker connects to the broker
        tus_s, cut, status_url = tus_upload(url, token, tar, parse_size(args.chunk))
        complete = time.perf_counter()
        status = wait_stored(url, token, status_url)
        to_stored = time.perf_counter() - complete
        assert status == "stored", (status, (work / "worker.log").read_text()[-3000:])
        auth = f"Authorization: Bearer {token}"
        meta = f"archive {base64.b64encode(b'GZ').decode()},filename {base64.b64encode(b'bag.tar').decode()}"
        tus_runs, curl_runs, one_piece_runs = [tus_s], [], []
        for turn in range(args.repeat):
            # the same bytes again: recognised as the stored transfer, so no second ingest competes
            curl_runs.append(
                curl(["-H", auth, "-F", "archive=GZ", "-F", f"file=@{tar}", url + "/api/v1/transfers"])
            )
            if turn:
                tus_runs.append(tus_upload(url, token, tar, parse_size(args.chunk))[0])
            created = httpx.post(
                url + "/api/v1/uploads",
                headers={
                    **TUS,
                    "Authorization": f"Bearer {token}",
                    "Upload-Length": str(size),
                    "Upload-Metadata": meta,
                },
            )
            one_piece_runs.append(
                curl(
                    [
                        "-X",
                        "PATCH",
                        "-H",
                        auth,
                        "-H",
                        "Tus-Resumable: 1.0.0",
                        "-H",
                        "Upload-Offset: 0",
                        "-H",
                        "Content-Type: application/offset+octet-stream",
                        "-H",
                        "Expect:",
                        "--upload-file",
                        str(tar),
                        url + created.headers["Location"],
                    ]
                )
            )
        tus_s, curl_s, one_piece_s = min(tus_runs), min(curl_runs), min(one_piece_runs)
        for p in procs:
            p.terminate()
            p.wait(30)
        procs.clear()
        other = new_home(work, "cli")
        started = time.perf_counter()
        cli(other, "ingest", str(tar), "--archive", "GZ")
        ingest_s = time.perf_counter() - started

        tus_rate, curl_rate, one_rate = mib / tus_s, mib / curl_s, mib / one_piece_s
        print(
            f"bag: {mib:.0f} MiB .tar, {args.files} files; tus chunks of {args.chunk}, cut at {cut / size:.0%}"
        )
        print(
            f"best of {args.repeat} of each (seconds: tus {' '.join(f'{t:.2f}' for t in tus_runs)}; curl -F "
            f"{' '.join(f'{t:.2f}' for t in curl_runs)}); load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'':44}{'ours':>12}{'peer / limit':>16}{'ratio':>8}{'target':>10}")
        print(
            f"{'upload MiB/s: tus (1 cut) vs curl -F POST':44}{tus_rate:12.1f}{curl_rate:16.1f}"
            f"{tus_rate / curl_rate:8.2f}{'>= 0.70':>10}"
        )
        print(
            f"{'   (curl, one tus PATCH, for reference)':44}{'':12}{one_rate:16.1f}{tus_rate / one_rate:8.2f}"
        )
        print(
            f"{'seconds: complete -> stored vs archive ingest':44}{to_stored:12.1f}{ingest_s:16.1f}"
            f"{to_stored / ingest_s:8.2f}{'<= 1.10':>10}"
        )
        return 0
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
