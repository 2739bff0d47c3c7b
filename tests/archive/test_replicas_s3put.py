"""The signed uploads (``archive.replicas.s3put``) against the real SeaweedFS S3 server: what they store is
what the SDK reads back, the server's refusals come back coded, a dropped connection costs a retry only,
and a server that cannot be reached is REP002."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import threading
import uuid
from pathlib import Path

import boto3
import pytest

from archive.replicas import CopyMismatch, ReplicaUnavailable, S3Target
from archive.replicas.s3put import SignedPuts
from tests.conftest import s3_env

pytestmark = pytest.mark.s3


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> S3Target:
    env = s3_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    prefix = uuid.uuid4().hex[:12]
    made = S3Target(
        "archive-test", prefix, env["ARCHIVE_S3_ENDPOINT_URL"], "us-east-1", f"s3://archive-test/{prefix}"
    )
    made.ensure_bucket()
    return made


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_what_is_put_is_what_the_sdk_reads_with_its_metadata(target: S3Target, tmp_path: Path) -> None:
    """Keys with Chinese, spaces and reserved characters; an empty file; the inventory digest as metadata."""
    for name, data in [
        ("文书/卷 1/关于档案移交的通知 (定稿).txt", "关于做好档案移交工作的通知。\n".encode() * 20),
        ("o/v1/content/a+b=c&d~e.bin", os.urandom(70_000)),
        ("o/v1/content/empty", b""),
    ]:
        src = tmp_path / "src"
        src.write_bytes(data)
        digest = hashlib.sha512(data).hexdigest()
        target.put_file(name, src, ("sha512", digest))
        got = target.client.get_object(Bucket=target.bucket, Key=f"{target.prefix}/{name}")
        assert got["Body"].read() == data
        assert got["ETag"].strip('"') == hashlib.md5(data).hexdigest()
        assert got["Metadata"] == {"sha512": digest}
    assert len(target.list()) == 3


def test_a_body_that_arrives_different_is_refused_and_nothing_is_stored(target: S3Target) -> None:
    """A Content-MD5 that is not the body's: the server refuses it (BadDigest), REP003, no object."""
    with pytest.raises(CopyMismatch) as caught:
        target._put("o/v1/content/x", b"what arrives", {"Content-MD5": _md5(b"what was sent")})
    assert caught.value.code == "REP003"
    assert target.list() == {}


def test_a_refusal_is_coded_with_the_servers_own_words(target: S3Target) -> None:
    """A part of an upload the server does not know: its S3 error code and message, REP002."""
    with pytest.raises(ReplicaUnavailable) as caught:
        target._put("k", b"data", {"Content-MD5": _md5(b"data")}, {"partNumber": "1", "uploadId": "none"})
    assert caught.value.code == "REP002"
    assert "NoSuchUpload" in caught.value.en
    assert target.list() == {}


def test_a_wrong_secret_is_refused_not_stored(target: S3Target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = S3Target(target.bucket, target.prefix, target.endpoint_url, "us-east-1", "wrong")
    with pytest.raises(ReplicaUnavailable) as caught:
        wrong._put("k", b"data", {"Content-MD5": _md5(b"data")})
    assert "SignatureDoesNotMatch" in caught.value.en or "AccessDenied" in caught.value.en
    assert target.list() == {}


def test_a_connection_dropped_between_requests_costs_a_retry_only(target: S3Target) -> None:
    puts = SignedPuts(target.endpoint_url, "us-east-1", boto3.session.Session().get_credentials())
    first = puts.put(target.bucket, f"{target.prefix}/a", b"one", {"Content-MD5": _md5(b"one")})
    assert first.status == 200 and first.etag == hashlib.md5(b"one").hexdigest()
    [kept] = puts._idle
    assert kept.sock is not None
    kept.sock.shutdown(socket.SHUT_RDWR)  # as a server or a proxy closing an idle connection
    second = puts.put(target.bucket, f"{target.prefix}/b", b"two", {"Content-MD5": _md5(b"two")})
    assert second.status == 200 and second.etag == hashlib.md5(b"two").hexdigest()
    assert set(target.list()) == {"a", "b"}
    puts.close()
    assert puts._idle == []


def test_a_server_that_cannot_be_reached_is_rep002_after_the_retries(target: S3Target) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    gone = S3Target("b", "", f"http://127.0.0.1:{port}", "us-east-1", "gone")
    with pytest.raises(ReplicaUnavailable) as caught:
        gone._put("k", b"data", {"Content-MD5": _md5(b"data")})
    assert caught.value.code == "REP002"
    assert "refused" in caught.value.en.lower()


def test_an_endpoint_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        SignedPuts("ftp://example.org", "us-east-1", None)


class _ConnectProxy:
    """A CONNECT-only proxy on loopback: records each tunnel's request head, then relays bytes both ways."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.heads: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        text = head.decode("latin-1")
        self.heads.append(text)
        host, _, port = text.split()[1].rpartition(":")
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def relay(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=relay, args=(upstream, client), daemon=True)
        back.start()
        relay(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        self.server.close()


def test_the_environments_proxy_is_used_through_a_tunnel(
    target: S3Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY (with user:password) carries the uploads through CONNECT, as the SDK's client would;
    NO_PROXY naming the endpoint sends them direct."""
    proxy = _ConnectProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://archivist:s%40cret@127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        through = S3Target(target.bucket, target.prefix, target.endpoint_url, "us-east-1", "proxied")
        assert (
            through._put("p", b"via proxy", {"Content-MD5": _md5(b"via proxy")})
            == hashlib.md5(b"via proxy").hexdigest()
        )
        endpoint = target.endpoint_url.split("//", 1)[1]
        assert len(proxy.heads) == 1 and proxy.heads[0].startswith(f"CONNECT {endpoint} HTTP/1.")
        auth = base64.b64encode(b"archivist:s@cret").decode()
        assert f"Proxy-Authorization: Basic {auth}" in proxy.heads[0]

        monkeypatch.setenv("NO_PROXY", endpoint.split(":")[0])
        direct = S3Target(target.bucket, target.prefix, target.endpoint_url, "us-east-1", "direct")
        direct._put("d", b"direct", {"Content-MD5": _md5(b"direct")})
        assert len(proxy.heads) == 1  # not through the proxy
        assert set(target.list()) == {"p", "d"}
        through._puts.close()
        direct._puts.close()
    finally:
        proxy.close()
