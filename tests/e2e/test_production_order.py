"""The production stack's start-up, without containers: the commands and healthchecks of docker-compose.yml,
read from the file and interpolated as `docker compose` would, run in the compose file's order on the real
PostgreSQL, Redis and Elasticsearch that scripts/services.sh starts:

preflight (`archive config check`) → init (`archive init`, twice: it runs at every start) → clamd (the
compose file's command and clamd.conf, healthy by its healthcheck) → portal (`archive serve … --workers …
--proxy-headers`), worker and beat as processes → their healthchecks pass → a bag is ingested, its files
scanned by clamd over the socket, and a bag holding the EICAR test file is refused → the record is found
through the portal's search (indexed through the outbox into Elasticsearch) and its PDF is migrated by the
worker (queued by beat) → every process stops on SIGTERM, as `docker compose stop` asks, with exit status 0.

The environment is the compose file's, with only the servers' addresses changed to the test servers' (a
fresh PostgreSQL database, a Redis key prefix, an index alias of this test's own, clamd's socket in a
temporary folder) and beat's dispatch interval shortened so that the test waits seconds, not half a minute.
freshclam is the one service not run: in its place the signature folder gets the EICAR test signature.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import elasticsearch
import pytest
import redis

from ingest.bagwriter import make_bag, write_payload
from tests.compose import command, environment, example_env, healthcheck, load_compose, real_secrets
from tests.e2e.helpers import CSV_HEADER
from tests.preservation.samples import make_pdf

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

START_TIMEOUT = 120.0
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
STOP_TIMEOUT = 60.0


def required_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not set: scripts/services.sh must start it in CI")
        pytest.skip(f"{name} not set (run scripts/services.sh start)")
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s\n{logs()}")
        time.sleep(0.5)


class Service:
    """One compose service's command as a process (`archive` is the image's ENTRYPOINT)."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], logdir: Path, *, archive: bool = True
    ) -> None:
        """``archive=False``: a service whose image runs another program (``argv[0]``), not `archive`."""
        self.name = name
        self.log = logdir / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "archive", *argv] if archive else argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM to the process, as `docker compose stop` sends it to the container's PID 1."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                return -signal.SIGKILL
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def on_loopback(argv: list[str], port: int) -> list[str]:
    """A compose command or healthcheck with the portal on 127.0.0.1:``port`` instead of 0.0.0.0:8000 (the
    container's own network namespace, which a test on a shared host does not have)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        before = argv[i - 1] if i else ""
        if before == "--port":
            assert arg == "8000"
            arg = str(port)
        elif before == "--host":
            arg = "127.0.0.1"
        elif "127.0.0.1:8000" in arg:
            arg = arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        out.append(arg)
    return out


def run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `archive` command to its end (a one-shot service, a healthcheck, an operator's command)."""
    return subprocess.run(
        [sys.executable, "-m", "archive", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def stack_env(tmp_path: Path, postgres_url: str) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """The compose file and the environment of its application services, pointed at the test servers. Its .env
    sets PORTAL_WORKERS=2 (this machine has two cores) and adds loopback to FORWARDED_ALLOW_IPS: here the
    test is the ingress."""
    redis_url = required_url("ARCHIVE_TEST_REDIS_URL")
    es_url = required_url("ARCHIVE_TEST_ELASTICSEARCH_URL")
    tag = uuid.uuid4().hex[:10]
    proxies = example_env()["FORWARDED_ALLOW_IPS"]
    stack = load_compose(
        example_env(**real_secrets(), PORTAL_WORKERS="2", FORWARDED_ALLOW_IPS=f"127.0.0.1/32,{proxies}")
    )
    compose_env = environment(stack["services"]["init"])
    results = urllib.parse.urlsplit(redis_url)._replace(path="/1").geturl()
    servers = {
        "ARCHIVE_HOME": str(tmp_path / "data"),
        "ARCHIVE_DATABASE_URL": postgres_url,
        "ARCHIVE_ELASTICSEARCH_URL": es_url,
        "ARCHIVE_ELASTICSEARCH_INDEX": f"pearl-prod-{tag}",
        "ARCHIVE_BROKER_URL": f"{redis_url}?prefix=prod-{tag}:",
        "ARCHIVE_RESULT_BACKEND": results,
    }
    assert set(servers) - {"ARCHIVE_ELASTICSEARCH_INDEX"} <= set(compose_env)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env = {**keep, **compose_env, **servers, "ARCHIVE_DISPATCH_INTERVAL": "2"}
    assert env["ARCHIVE_ENV"] == "production"
    yield stack, env

    client = elasticsearch.Elasticsearch(es_url, request_timeout=60)
    names = list(client.indices.get(index=f"pearl-prod-{tag}*", expand_wildcards="all").body)
    if names:
        client.indices.delete(index=",".join(names))
    client.close()
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(f"prod-{tag}:*"))
    if keys:
        r.delete(*keys)
    r.close()


def start_clamd(stack: dict[str, Any], env: dict[str, str], folder: Path, logdir: Path) -> Service:
    """The compose file's clamd service as a process: its command and clamd.conf, with the socket (the path
    the application services get as ARCHIVE_CLAMD_SOCKET) and the signature folder moved into ``folder``;
    ``env`` is pointed at the new socket once the service's healthcheck passes."""
    exe = shutil.which("clamd") or "/usr/sbin/clamd"
    if not Path(exe).exists() or not shutil.which("clamdscan"):
        pytest.fail("clamd or clamdscan is not installed (Debian clamav-daemon, clamdscan: scripts/setup.sh)")
    svc = stack["services"]["clamd"]
    socket_path, signatures = folder / "run" / "clamd.sock", folder / "db"
    socket_path.parent.mkdir(parents=True)
    signatures.mkdir()
    (signatures / "test.ndb").write_text(f"Eicar-Test-Signature:0:*:{EICAR.hex()}\n", encoding="ascii")
    conf = stack["configs"]["clamd"]["content"]
    moved = conf.replace(f"LocalSocket {env['ARCHIVE_CLAMD_SOCKET']}\n", f"LocalSocket {socket_path}\n")
    moved = moved.replace("DatabaseDirectory /var/lib/clamav\n", f"DatabaseDirectory {signatures}\n")
    assert moved.count(str(folder)) == 2, "clamd.conf names the socket the worker uses and /var/lib/clamav"
    conf_file = folder / "clamd.conf"
    conf_file.write_text(moved + f"TemporaryDirectory {folder}\n", encoding="utf-8")
    argv = [exe if a == "clamd" else a for a in command(svc)]
    assert "--config-file=/etc/clamav/clamd.conf" in argv
    argv[argv.index("--config-file=/etc/clamav/clamd.conf")] = f"--config-file={conf_file}"
    clamd = Service("clamd", argv, env, logdir, archive=False)
    check = [*healthcheck(svc), f"--config-file={conf_file}"]

    def healthy() -> bool:
        assert clamd.proc.poll() is None, f"clamd exited with {clamd.proc.returncode}\n{clamd.text()}"
        return subprocess.run(check, capture_output=True, timeout=60, check=False).returncode == 0

    try:
        wait_for("clamd healthy", healthy, START_TIMEOUT, clamd.text)
    except BaseException:
        clamd.kill()
        raise
    env["ARCHIVE_CLAMD_SOCKET"] = str(socket_path)
    return clamd


def infected_bag(root: Path) -> Path:
    write_payload(
        root,
        {
            "data/r/附件.txt": b"attachment " + EICAR,
            "data/metadata/records.csv": (
                CSV_HEADER + "r,GZ-PROD-0002,部署附件,广州市档案馆,1990-01-01,永久,公开,自动\r\n"
            ).encode(),
        },
    )
    return make_bag(root, algorithms=("sha256",))


def policy_bag(root: Path, samples: Path) -> Path:
    samples.mkdir()
    pdf = make_pdf(samples / "report.pdf", pages=2, text="Deployment acceptance report")
    write_payload(
        root,
        {
            "data/r/部署验收报告.pdf": pdf.read_bytes(),
            "data/metadata/records.csv": (
                CSV_HEADER + "r,GZ-PROD-0001,生产部署验收报告,广州市档案馆,1990-01-01,永久,公开,自动\r\n"
            ).encode(),
        },
    )
    return make_bag(root, algorithms=("sha256",))


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def test_stack_starts_in_compose_order_and_serves(
    stack_env: tuple[dict[str, Any], dict[str, str]], tmp_path: Path
) -> None:
    stack, env = stack_env
    svc = stack["services"]

    # one-shot services, in order
    preflight = run(command(svc["preflight"]), env)
    assert preflight.returncode == 0, preflight.stderr
    for attempt in (1, 2):  # init runs at every `docker compose up`: the second finds everything current
        init = run(command(svc["init"]), env)
        assert init.returncode == 0, f"init #{attempt}: {init.stdout}{init.stderr}"
        assert "Traceback" not in init.stderr
        assert ("schema none →" if attempt == 1 else "already current") in init.stdout, init.stdout
    assert (Path(env["ARCHIVE_HOME"]) / "ocfl/0=ocfl_1.1").exists()
    added = run(["archives", "add", "GZ", "--name", "广州市档案馆", "--level", "city"], env)
    assert added.returncode == 0, added.stderr

    port = free_port()
    portal_argv = on_loopback(command(svc["portal"]), port)
    assert portal_argv[: portal_argv.index("--host")] == ["serve"]
    assert "--workers" in portal_argv and "--proxy-headers" in portal_argv
    checks = {
        "portal": on_loopback(healthcheck(svc["portal"]), port),
        "worker": healthcheck(svc["worker"]),
    }
    for argv in checks.values():
        assert argv[0] == "archive"

    logdir = tmp_path / "logs"
    logdir.mkdir()
    started: list[Service] = []

    def logs() -> str:
        return "\n".join(f"--- {s.name}\n{s.text()[-3000:]}" for s in started)

    # the worker waits for clamd (depends_on: service_healthy), which waits for the signatures
    scanner = start_clamd(stack, env, tmp_path / "clamav", logdir)
    try:
        for name, argv in (
            ("portal", portal_argv),
            ("worker", command(svc["worker"])),
            ("beat", command(svc["beat"])),
        ):
            started.append(Service(name, argv, env, logdir))

        def healthy(name: str) -> Callable[[], bool]:
            def check() -> bool:
                for s in started:
                    assert s.proc.poll() is None, f"{s.name} exited with {s.proc.returncode}\n{logs()}"
                return run(checks[name][1:], env, timeout=60).returncode == 0

            return check

        wait_for("portal healthy", healthy("portal"), START_TIMEOUT, logs)
        wait_for("worker healthy", healthy("worker"), START_TIMEOUT, logs)
        portal = started[0].proc.pid
        workers = int(portal_argv[portal_argv.index("--workers") + 1])
        children = Path(f"/proc/{portal}/task/{portal}/children").read_text().split()
        assert len(children) >= workers, f"uvicorn runs {workers} worker processes: {children}"
        status, health = get_json(f"http://127.0.0.1:{port}/healthz")
        assert (status, health["backend"], health["database"]) == (200, "elastic", True), health
        # proxy headers: the ingress (a trusted address) passes on the visitor's address, uvicorn logs it
        visitor = f"203.0.113.{free_port() % 250 + 1}"
        status, _ = get_json(f"http://127.0.0.1:{port}/healthz?via=ingress", {"X-Forwarded-For": visitor})
        assert status == 200
        wait_for("the visitor's address in the access log", lambda: visitor in started[0].text(), 10, logs)

        ingested = run(
            ["ingest", str(policy_bag(tmp_path / "bag", tmp_path / "samples")), "--archive", "GZ"], env
        )
        assert ingested.returncode == 0, ingested.stdout + ingested.stderr
        refused = run(["ingest", str(infected_bag(tmp_path / "infected")), "--archive", "GZ"], env)
        said = refused.stdout + refused.stderr
        assert refused.returncode == 1 and "CHK001" in said and "Eicar" in said, said

        search = f"http://127.0.0.1:{port}/api/v1/search?q={urllib.parse.quote('部署验收')}"

        def found() -> bool:
            status, body = get_json(search)
            return status == 200 and [h["archival_code"] for h in body["hits"]] == ["GZ-PROD-0001"]

        wait_for("the record searchable through Elasticsearch", found, 90, logs)

        def migrated() -> list[dict[str, Any]]:
            listed = run(["jobs", "--json"], env)
            assert listed.returncode == 0, listed.stderr
            return [
                j for j in json.loads(listed.stdout) if j["state"] == "done" and j["outcome"] == "migrated"
            ]

        wait_for("the PDF migrated by the worker", lambda: bool(migrated()), 180, logs)
        (job,) = migrated()
        assert job["record"] == "GZ/GZ-PROD-0001" and job["version"] == "v2", job
    finally:
        codes = {s.name: s.stop() for s in started}
        for s in started:
            s.kill()
        scanner.stop()
        scanner.kill()
    assert codes == {"portal": 0, "worker": 0, "beat": 0}, logs()
    assert "Traceback" not in logs(), logs()
