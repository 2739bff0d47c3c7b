"""``POST /api/v1/transfers``: the bag is stored and queued, answered 202 at once, and a real worker
(``archive worker`` on the configured broker: SQLite's server-less transport, and Redis) ingests it; the
status URL follows it from ``received`` to ``stored`` with its records, or ``rejected`` with its problems."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from access_portal.app import create_app
from archive import db
from archive.accounts import add_user, create_token
from archive.config import Settings
from tests.access_portal import TestClient
from tests.e2e.helpers import simple_bag
from tests.preservation.helpers import Worker, wait_for
from tests.preservation.helpers import broker as broker
from tests.preservation.helpers import workers as workers


def _tokens(settings: Settings) -> dict[str, str]:
    with db.write_session(settings) as s:
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        add_user(s, "gd", roles=["archivist"], archives=["GD"], actor="test")
        add_user(s, "aud", roles=["auditor"], actor="test")
        add_user(s, "root", roles=["admin"], actor="test")
        return {login: create_token(s, login, actor="test")[1] for login in ("gz", "gd", "aud", "root")}


def _zip(tmp_path: Path, name: str, records: list[tuple[str, str, str, bytes]]) -> Path:
    bag = simple_bag(tmp_path / name, records)
    return Path(shutil.make_archive(str(tmp_path / name), "zip", root_dir=bag.parent, base_dir=bag.name))


def _post(client: TestClient, token: str | None, archive: str, path: Path, name: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with open(path, "rb") as fh:
        return client.post(
            "/api/v1/transfers",
            headers=headers,
            data={"archive": archive},
            files={"file": (name or path.name, fh, "application/zip")},
        )


def test_upload_is_queued_and_ingested_by_a_worker(
    broker: Settings, tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    settings = broker
    tokens = _tokens(settings)
    good = _zip(tmp_path, "good", [("卷1", "GZ-700-1990-永久-0001", "上传测试", b"hello")])
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with TestClient(create_app(settings)) as client:
        r = _post(client, tokens["gz"], "GZ", good)
        assert r.status_code == 202, r.text
        body = r.json()
        status_url = body["status_url"]
        assert status_url == f"/api/v1/transfers/{body['transfer_id']}"
        auth = {"Authorization": f"Bearer {tokens['gz']}"}
        # no worker runs yet: the request did not ingest anything
        first = client.get(status_url, headers=auth).json()
        assert first["status"] == "received" and first["records"] == [] and first["archive"] == "GZ"
        rejected = _post(client, tokens["gz"], "GZ", bad).json()

        def status(url: str) -> str:
            return str(client.get(url, headers=auth).json()["status"])

        worker = workers()
        wait_for(lambda: status(status_url) in ("stored", "rejected"), 120, worker)
        done = client.get(status_url, headers=auth).json()
        assert done["status"] == "stored", done
        assert done["records"] == ["GZ/GZ-700-1990-永久-0001"]
        wait_for(lambda: status(rejected["status_url"]) in ("stored", "rejected"), 120, worker)
        refused = client.get(rejected["status_url"], headers=auth).json()
        assert refused["status"] == "rejected" and refused["problems"], refused
        # another archive's archivist does not see it
        other = client.get(status_url, headers={"Authorization": f"Bearer {tokens['gd']}"})
        assert other.status_code == 404
    # uploads removed after their ingest: by the worker, just after it recorded the outcome the API shows
    uploads = settings.home_dir / "uploads"
    wait_for(lambda: not [p for p in uploads.iterdir() if p.name != "partial"], 60, worker)


def test_who_may_submit(home: Settings, tmp_path: Path) -> None:
    tokens = _tokens(home)
    good = _zip(tmp_path, "good", [("卷1", "GZ-701-1990-永久-0001", "上传测试", b"hello")])
    with TestClient(create_app(home)) as client:
        assert _post(client, None, "GZ", good).status_code == 401
        assert _post(client, "arc_0123456789ab_nope", "GZ", good).status_code == 401
        assert _post(client, tokens["aud"], "GZ", good).status_code == 403  # read-only
        assert _post(client, tokens["root"], "GZ", good).status_code == 403  # ingest is an archivist's
        assert _post(client, tokens["gd"], "GZ", good).status_code == 403  # another archive
        assert _post(client, tokens["gz"], "GZ", good, name="bag.exe").status_code == 422
        missing = client.post(
            "/api/v1/transfers", headers={"Authorization": f"Bearer {tokens['gz']}"}, data={"archive": "GZ"}
        )
        assert missing.status_code == 422
        listed = client.get("/api/v1/transfers", headers={"Authorization": f"Bearer {tokens['root']}"}).json()
        assert listed["transfers"] == []  # nothing refused was registered
    uploads = home.home_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
