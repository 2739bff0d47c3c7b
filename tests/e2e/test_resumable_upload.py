"""A resumable upload through a real ``archive serve``: the connection is cut at 60 %, the node keeps what
arrived, a second writer is refused while the first still sends, and the client resumes from the offset HEAD
reports; the finished bag is byte for byte what was sent and becomes a transfer."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from archive import db
from archive.accounts import add_user, create_token
from archive.config import Settings
from archive.models import Transfer
from tests.e2e.helpers import free_port, serving

TUS = {"Tus-Resumable": "1.0.0"}


def test_a_cut_upload_resumes_where_it_stopped(home: Settings, tmp_path: Path) -> None:
    with db.write_session(home) as s:
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        token = create_token(s, "gz", actor="test")[1]
    auth = {"Authorization": f"Bearer {token}"}
    data = os.urandom(3 * 1024 * 1024 + 17)
    cut_at = int(len(data) * 0.6)
    meta = f"archive {base64.b64encode(b'GZ').decode()},filename {base64.b64encode(b'bag.tar').decode()}"
    with serving(dict(os.environ), free_port(), tmp_path / "serve.log") as url:
        created = httpx.post(
            url + "/api/v1/uploads",
            headers={**TUS, **auth, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
        )
        assert created.status_code == 201, created.text
        upload = url + created.headers["Location"]
        path = urlsplit(upload).path
        # a PATCH announcing every byte, of which 60 % are sent before the connection dies
        sock = socket.create_connection(("127.0.0.1", urlsplit(url).port or 80))
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[:cut_at])
        try:
            # while the first PATCH still holds the upload, a second one is refused (423), never interleaved
            deadline = time.monotonic() + 30
            while True:
                other = httpx.patch(
                    upload,
                    headers={
                        **TUS,
                        **auth,
                        "Upload-Offset": "0",
                        "Content-Type": "application/offset+octet-stream",
                    },
                    content=b"",
                )
                if other.status_code == 423:
                    break
                assert other.status_code == 204, other.text  # it came first, with nothing to write
                if time.monotonic() > deadline:
                    pytest.fail("the second writer was never refused")
        finally:
            sock.close()

        def offset() -> int:
            r = httpx.head(upload, headers={**TUS, **auth})
            assert r.status_code == 200
            return int(r.headers["Upload-Offset"])

        deadline = time.monotonic() + 30
        while offset() != cut_at:  # the node writes what arrived once it sees the connection gone
            if time.monotonic() > deadline:
                pytest.fail(f"offset {offset()} after the cut, expected {cut_at}")
            time.sleep(0.1)
        resumed = httpx.patch(
            upload,
            headers={
                **TUS,
                **auth,
                "Upload-Offset": str(cut_at),
                "Content-Type": "application/offset+octet-stream",
            },
            content=data[cut_at:],
            timeout=60,
        )
        assert resumed.status_code == 204, resumed.text
        assert resumed.headers["Upload-Offset"] == str(len(data))
        status_url = resumed.headers["Archive-Transfer-Url"]
        status = httpx.get(url + status_url, headers=auth).json()
        assert status["status"] in ("received", "validating", "storing", "stored", "rejected")
    with db.read_session(home) as s:
        transfer = s.get(Transfer, status_url.rsplit("/", 1)[1])
        assert transfer is not None
        stored = Path(transfer.source).read_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
