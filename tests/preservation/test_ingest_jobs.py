"""The ingest job of an uploaded bag on a real worker: a failure that is not a rejection is retried with
backoff and then rejects the transfer with UPL006 (never ``received`` for ever), and the bag may then be
sent again; a worker killed mid-ingest has the transfer picked up by the next worker that starts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from access_portal.app import create_app
from archive import db
from archive.accounts import add_user, create_token
from archive.config import Settings
from archive.models import Event
from tests.access_portal import TestClient
from tests.e2e.helpers import simple_bag
from tests.preservation.helpers import Worker, wait_for
from tests.preservation.helpers import broker as broker
from tests.preservation.helpers import workers as workers


def _token(settings: Settings) -> str:
    with db.write_session(settings) as s:
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        return create_token(s, "gz", actor="test")[1]


def _zip(tmp_path: Path, code: str) -> Path:
    bag = simple_bag(tmp_path / code, [("卷1", code, "重试测试", b"hello " + code.encode())])
    return Path(shutil.make_archive(str(tmp_path / code), "zip", root_dir=bag.parent, base_dir=bag.name))


def _post(client: TestClient, token: str, path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        r = client.post(
            "/api/v1/transfers",
            headers={"Authorization": f"Bearer {token}"},
            data={"archive": "GZ"},
            files={"file": (path.name, fh, "application/zip")},
        )
    assert r.status_code in (200, 202), r.text
    return dict(r.json())


def test_failing_ingest_is_retried_then_rejected_and_may_be_sent_again(
    broker: Settings, tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    settings = broker
    token = _token(settings)
    auth = {"Authorization": f"Bearer {token}"}
    bag = _zip(tmp_path, "GZ-710-1990-永久-0001")
    worker = workers(env={"ARCHIVE_TASK_MAX_RETRIES": "1"})
    # the node's transfer journal becomes unusable (a file where the folder was): every attempt fails
    journal = settings.journal_dir
    shutil.rmtree(journal)
    journal.write_bytes(b"")
    with TestClient(create_app(settings)) as client:
        first = _post(client, token, bag)

        def status(url: str) -> dict[str, Any]:
            return dict(client.get(url, headers=auth).json())

        wait_for(lambda: status(first["status_url"])["status"] == "rejected", 120, worker)
        failed = status(first["status_url"])
        assert [p["code"] for p in failed["problems"]] == ["UPL006"], failed
        assert "2 attempt(s)" in failed["problems"][0]["message_en"]
        wait_for(lambda: not (settings.home_dir / "uploads" / first["transfer_id"]).exists(), 60, worker)
        with db.read_session(settings) as s:
            outcomes = [
                e.outcome
                for e in s.execute(
                    select(Event).where(Event.transfer_id == first["transfer_id"]).order_by(Event.id)
                ).scalars()
                if e.event_type == "ingestion"
            ]
        assert outcomes == ["warning", "failure"]  # one retry, then given up
        # mended: the same bag is not pointed at the failed transfer but ingested anew
        journal.unlink()
        journal.mkdir()
        again = _post(client, token, bag)
        assert again["duplicate_of"] is None and again["transfer_id"] != first["transfer_id"]
        wait_for(lambda: status(again["status_url"])["status"] in ("stored", "rejected"), 120, worker)
        assert status(again["status_url"])["status"] == "stored"


def test_a_worker_killed_mid_ingest_is_picked_up_by_the_next(
    broker: Settings, tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    settings = broker
    token = _token(settings)
    auth = {"Authorization": f"Bearer {token}"}
    bag = _zip(tmp_path, "GZ-711-1990-永久-0001")
    doomed = workers(env={"ARCHIVE_FAILPOINT": "ingest:verified"})
    with TestClient(create_app(settings)) as client:
        queued = _post(client, token, bag)
        wait_for(lambda: doomed.proc.poll() is not None, 120, doomed)  # SIGKILLed mid-ingest
        assert client.get(queued["status_url"], headers=auth).json()["status"] == "validating"
        worker = workers()
        wait_for(
            lambda: client.get(queued["status_url"], headers=auth).json()["status"] == "stored", 120, worker
        )
        done = client.get(queued["status_url"], headers=auth).json()
        assert done["records"] == ["GZ/GZ-711-1990-永久-0001"] and done["problems"] == []
        assert "re-queued the ingest of transfer" in worker.text()
        # the task removes the upload right after the ingest decided
        wait_for(lambda: not (settings.home_dir / "uploads" / queued["transfer_id"]).exists(), 60, worker)
