"""The tus 1.0.0 endpoint ``/api/v1/uploads``: creation, chunks, HEAD offsets, resuming, wrong offsets (409),
too large (413), expiry and clean-up, termination, concurrent writers (423), who may call it, and the same bag
sent twice (here and through ``POST /api/v1/transfers``) answered with the first transfer."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from access_portal import tus
from access_portal.app import create_app
from archive import db
from archive.accounts import add_user, create_token
from archive.config import Settings, get_settings
from archive.models import Event, Transfer
from archive.uploads import TransferDigest, Upload, partial_dir, partial_path
from tests.access_portal import TestClient

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _meta(archive: str = "GZ", filename: str = "bag.zip") -> str:
    return ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("archive", archive), ("filename", filename))
    )


@pytest.fixture
def node(any_home: Settings) -> Settings:
    """A home on SQLite and on PostgreSQL (the duplicate check locks the archive's row there)."""
    return any_home


@pytest.fixture
def tokens(node: Settings) -> dict[str, str]:
    with db.write_session(node) as s:
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        add_user(s, "gz2", roles=["archivist"], archives=["GZ"], actor="test")
        add_user(s, "gd", roles=["archivist"], archives=["GD"], actor="test")
        add_user(s, "aud", roles=["auditor"], actor="test")
        return {login: create_token(s, login, actor="test")[1] for login in ("gz", "gz2", "gd", "aud")}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _create(client: TestClient, token: str, length: int, **kw: str) -> str:
    r = client.post(
        "/api/v1/uploads",
        headers={**TUS, **_auth(token), "Upload-Length": str(length), "Upload-Metadata": _meta(**kw)},
    )
    assert r.status_code == 201, r.text
    assert r.headers["Tus-Resumable"] == "1.0.0" and r.headers["Upload-Expires"].endswith("GMT")
    location = r.headers["Location"]
    assert location.startswith("/api/v1/uploads/")
    return location


def _patch(client: TestClient, token: str, url: str, offset: int, data: bytes) -> object:
    return client.patch(url, headers={**CHUNK, **_auth(token), "Upload-Offset": str(offset)}, content=data)


def test_discovery_names_version_extensions_and_limit(
    node: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVE_MAX_TRANSFER_BYTES", "12345")
    with TestClient(create_app(get_settings())) as client:
        r = client.options("/api/v1/uploads")
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0" and r.headers["Tus-Max-Size"] == "12345"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
    }


def test_upload_in_chunks_resumes_and_becomes_a_transfer(node: Settings, tokens: dict[str, str]) -> None:
    data = os.urandom(300_000)
    with TestClient(create_app(node)) as client:
        url = _create(client, tokens["gz"], len(data))
        head = client.head(url, headers={**TUS, **_auth(tokens["gz"])})
        assert head.status_code == 200 and head.headers["Upload-Offset"] == "0"
        assert head.headers["Upload-Length"] == str(len(data)) and head.headers["Cache-Control"] == "no-store"
        assert tus.parse_metadata(head.headers["Upload-Metadata"]) == {"archive": "GZ", "filename": "bag.zip"}
        r = _patch(client, tokens["gz"], url, 0, data[:100_000])
        assert r.status_code == 204 and r.headers["Upload-Offset"] == "100000"  # type: ignore[attr-defined]
        # the client lost track (a cut connection): HEAD tells where to resume
        assert client.head(url, headers={**TUS, **_auth(tokens["gz"])}).headers["Upload-Offset"] == "100000"
        # a chunk that does not start at the offset is refused and changes nothing
        wrong = _patch(client, tokens["gz"], url, 50_000, data[50_000:])
        assert wrong.status_code == 409 and wrong.json()["detail"]["code"] == "UPL002"  # type: ignore[attr-defined]
        assert client.head(url, headers={**TUS, **_auth(tokens["gz"])}).headers["Upload-Offset"] == "100000"
        # another archivist of the same archive may resume it
        r = _patch(client, tokens["gz2"], url, 100_000, data[100_000:200_000])
        assert r.status_code == 204  # type: ignore[attr-defined]
        last = _patch(client, tokens["gz"], url, 200_000, data[200_000:])
        assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))  # type: ignore[attr-defined]
        status_url = last.headers["Archive-Transfer-Url"]  # type: ignore[attr-defined]
        assert last.headers["Location"] == status_url  # type: ignore[attr-defined]
        assert "Archive-Duplicate-Of" not in last.headers  # type: ignore[attr-defined]
        transfer = client.get(status_url, headers=_auth(tokens["gz"])).json()
        assert (
            transfer["status"] == "received" and transfer["archive"] == "GZ" and transfer["bag"] == "bag.zip"
        )
        done = client.get(url, headers=_auth(tokens["gz"]))
        assert done.json()["status_url"] == status_url and done.json()["offset"] == len(data)
        assert done.headers["Archive-Transfer-Url"] == status_url
        # a completed upload takes no more bytes
        assert _patch(client, tokens["gz"], url, len(data), b"x").status_code == 409  # type: ignore[attr-defined]
    transfer_id = status_url.rsplit("/", 1)[1]
    with db.read_session(node) as s:
        row = s.get(Transfer, transfer_id)
        assert row is not None
        stored = Path(row.source)
        digest = s.get(TransferDigest, transfer_id)
        assert digest is not None and digest.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.read_bytes() == data  # the bytes, in order, moved (not copied) to the transfer's folder
    assert stored.parent.name == transfer_id and not partial_path(node, url.rsplit("/", 1)[1]).exists()


def test_creation_with_upload_and_same_bag_twice(node: Settings, tokens: dict[str, str]) -> None:
    data = os.urandom(50_000)
    with TestClient(create_app(node)) as client:
        r = client.post(
            "/api/v1/uploads",
            headers={
                **CHUNK,
                **_auth(tokens["gz"]),
                "Upload-Length": str(len(data)),
                "Upload-Metadata": _meta(),
            },
            content=data,
        )
        assert r.status_code == 201 and r.headers["Upload-Offset"] == str(len(data)), r.text
        first = r.headers["Archive-Transfer-Url"]
        # the same bytes again, resumably: recognised, pointed at the first transfer, nothing new queued
        url = _create(client, tokens["gz2"], len(data))
        again = _patch(client, tokens["gz2"], url, 0, data)
        assert again.status_code == 204  # type: ignore[attr-defined]
        assert again.headers["Archive-Transfer-Url"] == first  # type: ignore[attr-defined]
        assert again.headers["Archive-Duplicate-Of"] == first.rsplit("/", 1)[1]  # type: ignore[attr-defined]
        # and in one piece through POST /api/v1/transfers
        r = client.post(
            "/api/v1/transfers",
            headers=_auth(tokens["gz"]),
            data={"archive": "GZ"},
            files={"file": ("other-name.zip", data, "application/zip")},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {
            "transfer_id": first.rsplit("/", 1)[1],
            "status_url": first,
            "duplicate_of": first.rsplit("/", 1)[1],
        }
        # the same bytes for another archive are another transfer
        with db.write_session(node) as s:
            add_user(s, "both", roles=["archivist"], archives=["GZ", "GD"], actor="test")
            both = create_token(s, "both", actor="test")[1]
        r = client.post(
            "/api/v1/transfers",
            headers=_auth(both),
            data={"archive": "GD"},
            files={"file": ("bag.zip", data, "application/zip")},
        )
        assert r.status_code == 202 and r.json()["duplicate_of"] is None
    with db.read_session(node) as s:
        assert len(s.execute(select(Transfer)).scalars().all()) == 2
        notes = s.execute(select(Event).where(Event.outcome == "warning")).scalars().all()
        assert {e.agent for e in notes} == {"gz", "gz2"}  # each repeat is an event on the first transfer
        assert not [
            p for p in (node.home_dir / "uploads").iterdir() if p.name != "partial" and not any(p.iterdir())
        ]


def test_a_rejected_first_transfer_lets_the_bag_try_again(node: Settings, tokens: dict[str, str]) -> None:
    data = os.urandom(10_000)
    with TestClient(create_app(node)) as client:

        def post() -> dict[str, str]:
            r = client.post(
                "/api/v1/transfers",
                headers=_auth(tokens["gz"]),
                data={"archive": "GZ"},
                files={"file": ("bag.zip", data, "application/zip")},
            )
            assert r.status_code in (200, 202), r.text
            return dict(r.json())

        first = post()
        assert post()["duplicate_of"] == first["transfer_id"]
        with db.write_session(node) as s:
            row = s.get(Transfer, first["transfer_id"])
            assert row is not None
            row.status = "rejected"
        retry = post()
        assert retry["duplicate_of"] is None and retry["transfer_id"] != first["transfer_id"]


def test_size_limits(node: Settings, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_MAX_TRANSFER_BYTES", "1000")
    settings = get_settings()
    with TestClient(create_app(settings)) as client:
        big = client.post(
            "/api/v1/uploads",
            headers={**TUS, **_auth(tokens["gz"]), "Upload-Length": "1001", "Upload-Metadata": _meta()},
        )
        assert big.status_code == 413 and big.json()["detail"]["code"] == "ACC006"
        url = _create(client, tokens["gz"], 1000)
        assert _patch(client, tokens["gz"], url, 0, b"a" * 600).status_code == 204  # type: ignore[attr-defined]
        beyond = _patch(client, tokens["gz"], url, 600, b"b" * 401)
        assert beyond.status_code == 413 and beyond.json()["detail"]["code"] == "UPL005"  # type: ignore[attr-defined]
        assert client.head(url, headers={**TUS, **_auth(tokens["gz"])}).headers["Upload-Offset"] == "600"


def test_protocol_refusals(node: Settings, tokens: dict[str, str]) -> None:
    with TestClient(create_app(node)) as client:
        gz = _auth(tokens["gz"])
        r = client.post("/api/v1/uploads", headers={**gz, "Upload-Length": "10", "Upload-Metadata": _meta()})
        assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
        for headers in (
            {"Upload-Length": "ten", "Upload-Metadata": _meta()},
            {"Upload-Length": "-1", "Upload-Metadata": _meta()},
            {"Upload-Defer-Length": "1", "Upload-Metadata": _meta()},
            {"Upload-Length": "10"},
            {"Upload-Length": "10", "Upload-Metadata": "archive !!!"},
            {"Upload-Length": "10", "Upload-Metadata": _meta(filename="bag.exe")},
        ):
            r = client.post("/api/v1/uploads", headers={**TUS, **gz, **headers})
            assert r.status_code == 400 and r.json()["detail"]["code"] == "UPL001", (headers, r.text)
        url = _create(client, tokens["gz"], 10)
        r = client.patch(url, headers={**TUS, **gz, "Upload-Offset": "0"}, content=b"0123456789")
        assert r.status_code == 415
        r = client.patch(url, headers={**CHUNK, **gz}, content=b"0123456789")
        assert r.status_code == 400
        assert client.head("/api/v1/uploads/" + "0" * 32, headers={**TUS, **gz}).status_code == 404


def test_who_may_upload(node: Settings, tokens: dict[str, str]) -> None:
    with TestClient(create_app(node)) as client:
        headers = {**TUS, "Upload-Length": "10", "Upload-Metadata": _meta("GZ")}
        assert client.post("/api/v1/uploads", headers=headers).status_code == 401
        assert client.post("/api/v1/uploads", headers={**headers, **_auth("nope")}).status_code == 401
        assert client.post("/api/v1/uploads", headers={**headers, **_auth(tokens["aud"])}).status_code == 403
        assert client.post("/api/v1/uploads", headers={**headers, **_auth(tokens["gd"])}).status_code == 403
        url = _create(client, tokens["gz"], 10)
        # another archive's archivist: the upload does not exist for them
        gd = {**TUS, **_auth(tokens["gd"])}
        assert client.head(url, headers=gd).status_code == 404
        assert _patch(client, tokens["gd"], url, 0, b"0123456789").status_code == 404  # type: ignore[attr-defined]
        assert client.delete(url, headers=gd).status_code == 404
        assert client.head(url, headers={**TUS, **_auth(tokens["aud"])}).status_code == 403
        assert client.head(url, headers=TUS).status_code == 401
        assert client.head(url, headers={**TUS, **_auth(tokens["gz"])}).headers["Upload-Offset"] == "0"


def test_termination_removes_the_bytes(node: Settings, tokens: dict[str, str]) -> None:
    with TestClient(create_app(node)) as client:
        url = _create(client, tokens["gz"], 100)
        upload_id = url.rsplit("/", 1)[1]
        assert _patch(client, tokens["gz"], url, 0, b"x" * 40).status_code == 204  # type: ignore[attr-defined]
        assert partial_path(node, upload_id).stat().st_size == 40
        r = client.delete(url, headers={**TUS, **_auth(tokens["gz"])})
        assert r.status_code == 204
        assert not partial_path(node, upload_id).exists()
        assert client.head(url, headers={**TUS, **_auth(tokens["gz"])}).status_code == 404
        assert _patch(client, tokens["gz"], url, 40, b"y").status_code == 404  # type: ignore[attr-defined]


def test_a_second_writer_is_refused_while_one_writes(node: Settings, tokens: dict[str, str]) -> None:
    with TestClient(create_app(node)) as client:
        url = _create(client, tokens["gz"], 100)
        upload_id = url.rsplit("/", 1)[1]
        # a PATCH in progress holds the upload's lock (here: taken by a writer of our own)
        holder = tus.open_writer(partial_path(node, upload_id), upload_id, 100)
        try:
            busy = _patch(client, tokens["gz"], url, 0, b"x" * 10)
            assert busy.status_code == 423 and busy.json()["detail"]["code"] == "UPL003"  # type: ignore[attr-defined]
            holder.write(b"a" * 10)
        finally:
            holder.close()
        assert _patch(client, tokens["gz"], url, 10, b"b" * 10).status_code == 204  # type: ignore[attr-defined]
        assert partial_path(node, upload_id).read_bytes() == b"a" * 10 + b"b" * 10


def test_expired_uploads_are_refused_and_cleaned(node: Settings, tokens: dict[str, str]) -> None:
    with TestClient(create_app(node)) as client:
        old = _create(client, tokens["gz"], 100)
        fresh = _create(client, tokens["gz"], 100)
        assert _patch(client, tokens["gz"], old, 0, b"x" * 30).status_code == 204  # type: ignore[attr-defined]
        old_id, fresh_id = old.rsplit("/", 1)[1], fresh.rsplit("/", 1)[1]
        with db.write_session(node) as s:
            row = s.get(Upload, old_id)
            assert row is not None
            row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        assert client.head(old, headers={**TUS, **_auth(tokens["gz"])}).status_code == 410
        assert _patch(client, tokens["gz"], old, 30, b"y").status_code == 410  # type: ignore[attr-defined]
    stray = partial_dir(node) / ("f" * 32)
    stray.write_bytes(b"left by a crash")
    os.utime(stray, (0, 0))
    result = subprocess.run(
        [sys.executable, "-m", "archive", "uploads", "clean", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert {c["upload"] for c in json.loads(result.stdout)} == {old_id, "f" * 32}
    assert not partial_path(node, old_id).exists() and not stray.exists()
    assert partial_path(node, fresh_id).exists()
    with db.read_session(node) as s:
        assert s.get(Upload, old_id) is None and s.get(Upload, fresh_id) is not None
