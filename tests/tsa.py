"""A real RFC 3161 time-stamping authority for tests and benchmarks: OpenSSL's ``ts -reply`` behind a small
HTTP wrapper, with a test CA and a TSA certificate (critical ``timeStamping`` EKU) made here with ``openssl``.

    with TestTsa.start(tmp_path) as tsa:     # or the ``tsa`` fixture
        monkeypatch.setenv("ARCHIVE_TSA_URL", tsa.url)
        monkeypatch.setenv("ARCHIVE_TSA_TRUST", str(tsa.ca_pem))

Each request runs one ``openssl ts -reply`` (serialised: it keeps its serial number in a file).
``python -m tests.tsa FOLDER`` runs one in its own process (it prints its URL and CA file, serves until its
stdin closes, and answers ``GET /stats`` with its counters). ``reply_seconds`` sums the time those OpenSSL runs took and ``served_seconds`` the time the HTTP handler took
(OpenSSL included), so a benchmark can show the TSA's own cost beside the client's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TSA_CONFIG = """\
[ tsa ]
default_tsa = test_tsa

[ test_tsa ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""

TSA_EXTENSIONS = """\
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
"""


def _openssl(*args: str, cwd: Path) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60).stdout


def make_pki(folder: Path) -> None:
    """A test root CA (``ca.pem``) and a TSA certificate it issued (``tsa.pem``, ``tsa.key``)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=Pearl Test Root CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-new", *ec, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Pearl Test TSA", cwd=folder
    )
    (folder / "tsa.ext").write_text(TSA_EXTENSIONS)
    _openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tsa.pem", "-days", "3650", "-extfile", "tsa.ext",
        cwd=folder,
    )  # fmt: skip
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(TSA_CONFIG.format(dir=folder))


@dataclass
class TestTsa:
    folder: Path
    server: ThreadingHTTPServer
    requests: int = 0
    reply_seconds: float = 0.0  # in ``openssl ts -reply``
    served_seconds: float = 0.0  # in the HTTP handler: reading the query, OpenSSL, writing the answer
    _lock: threading.Lock = field(default_factory=threading.Lock)

    __test__ = False  # not a test class

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    def reply(self, query: bytes) -> bytes:
        """One ``openssl ts -reply`` for ``query`` (also usable without HTTP, to time OpenSSL alone)."""
        with self._lock:
            tsq = self.folder / "request.tsq"
            tsq.write_bytes(query)
            t = time.perf_counter()
            answer = _openssl(
                "ts", "-reply", "-config", "tsa.cnf", "-queryfile", "request.tsq", cwd=self.folder
            )
            self.reply_seconds += time.perf_counter() - t
            self.requests += 1
            return answer

    @classmethod
    @contextmanager
    def start(cls, folder: Path) -> Iterator[TestTsa]:
        make_pki(folder)
        holder: dict[str, TestTsa] = {}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as production TSAs answer
            disable_nagle_algorithm = True  # the answer is sent whole, not held for a delayed ACK
            wbufsize = -1  # headers and body leave in one write (the handler flushes after do_POST)

            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                started = time.perf_counter()  # the TSA's time: from the whole query to the answer sent
                try:
                    self._answer(query)
                finally:
                    holder["tsa"].served_seconds += time.perf_counter() - started

            def do_GET(self) -> None:
                """``/stats``: the counters, for a client in another process (the benchmark)."""
                t = holder["tsa"]
                body = json.dumps(
                    {
                        "requests": t.requests,
                        "reply_seconds": t.reply_seconds,
                        "served_seconds": t.served_seconds,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, query: bytes) -> None:
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self.close_connection = True
                    self.send_error(415)
                    return
                try:
                    body = holder["tsa"].reply(query)
                except subprocess.CalledProcessError:
                    self.close_connection = True
                    self.send_error(400)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tsa = holder["tsa"] = cls(folder, server)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield tsa
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[TestTsa]:
    """A running test TSA (its CA at ``tsa.ca_pem``)."""
    with TestTsa.start(tmp_path / "tsa") as running:
        yield running


@pytest.fixture
def tsa_home(home: object, tsa: TestTsa, monkeypatch: pytest.MonkeyPatch) -> object:
    """The ``home`` fixture's node with ``ARCHIVE_TSA_URL`` and ``ARCHIVE_TSA_TRUST`` pointing at ``tsa``."""
    from archive.config import get_settings

    monkeypatch.setenv("ARCHIVE_TSA_URL", tsa.url)
    monkeypatch.setenv("ARCHIVE_TSA_TRUST", str(tsa.ca_pem))
    return get_settings()


if __name__ == "__main__":  # python -m tests.tsa FOLDER: serve until stdin closes (first line out: URL CA)
    with TestTsa.start(Path(sys.argv[1])) as running:
        print(running.url, running.ca_pem, flush=True)
        sys.stdin.read()
