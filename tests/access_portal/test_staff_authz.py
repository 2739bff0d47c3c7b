"""The staff API's authorisation as a matrix: every staff route × every kind of caller × own/other archive,
each answer exactly allowed, 401, 403 or 404; and a staff access decision reaching the public search and the
record page once the outbox is drained.

Choices (see :mod:`access_portal.staff`): an archive named in the request outside the caller's scope is a
403 whether or not the object exists; an object found by id (a transfer) of another archive is a 404,
identical to a missing one. An archivist's scope is exactly the archives granted (GZ does not include its
district GZ-TH).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from access_portal.schemas import record_url
from archive import db
from archive.accounts import add_user, create_token, disable_user, revoke_token
from archive.config import Settings
from archive.models import Archive, Event, Record, Transfer
from search import drain, get_backend
from tests.access_portal import SECRET_CODE, TestClient, build_portal_home, open_records

ROLES = ("admin", "archivist_gz", "archivist_gd", "auditor")
REFUSED = ("none", "bad", "expired", "revoked", "disabled")


@dataclass
class Node:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]
    gz_transfer: str
    gd_transfer: str
    gz_code: str  # a GZ record the matrix posts to
    gd_code: str
    public_code: str  # an open GZ record for the public round trip
    public_title: str


def _transfer_of(settings: Settings, archive: str) -> str:
    with db.read_session(settings) as s:
        return (
            s.execute(
                select(Transfer.id)
                .join(Archive, Transfer.archive_id == Archive.id)
                .where(Archive.code == archive)
            )
            .scalars()
            .first()
            or ""
        )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    from access_portal.app import create_app

    settings = build_portal_home(Path(tmp_path_factory.mktemp("staff"))).settings
    tokens: dict[str, str] = {"none": "", "bad": "arc_0123456789ab_notasecretatall"}
    with db.write_session(settings) as s:
        add_user(s, "root", roles=["admin"], actor="test")
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        add_user(s, "gd", roles=["archivist"], archives=["GD"], actor="test")
        add_user(s, "aud", roles=["auditor"], actor="test")
        add_user(s, "gone", roles=["archivist"], archives=["GZ"], actor="test")
        for name, login in (
            ("admin", "root"),
            ("archivist_gz", "gz"),
            ("archivist_gd", "gd"),
            ("auditor", "aud"),
        ):
            tokens[name] = create_token(s, login, actor="test")[1]
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        tokens["expired"] = create_token(s, "gz", expires_days=1, actor="test", now=past)[1]
        revoked, tokens["revoked"] = create_token(s, "gz", actor="test")
        revoke_token(s, revoked.id, actor="test")
        tokens["disabled"] = create_token(s, "gone", actor="test")[1]
        disable_user(s, "gone", actor="test")
        gd_code = (
            s.execute(
                select(Record.archival_code).join(Archive).where(Archive.code == "GD").order_by(Record.id)
            )
            .scalars()
            .first()
        )
        assert gd_code
    gz_open = [(c, code) for c, code in open_records(settings) if c == "GZ"]
    with db.read_session(settings) as s:
        public = s.execute(
            select(Record).join(Archive).where(Archive.code == "GZ", Record.archival_code == gz_open[0][1])
        ).scalar_one()
        public_title = public.title
    with TestClient(create_app(settings)) as client:
        yield Node(
            settings,
            client,
            tokens,
            _transfer_of(settings, "GZ"),
            _transfer_of(settings, "GD"),
            SECRET_CODE,
            gd_code,
            gz_open[0][1],
            public_title,
        )


def headers(node: Node, who: str) -> dict[str, str]:
    token = node.tokens[who]
    return {"Authorization": f"Bearer {token}"} if token else {}


def routes(node: Node) -> list[tuple[str, str, str]]:
    """(name, method, path) of every staff route, once for a GZ object and once for a GD one."""
    return [
        ("list GZ", "GET", "/api/v1/transfers?archive=GZ"),
        ("list GD", "GET", "/api/v1/transfers?archive=GD"),
        ("transfer GZ", "GET", f"/api/v1/transfers/{node.gz_transfer}"),
        ("transfer GD", "GET", f"/api/v1/transfers/{node.gd_transfer}"),
        ("access GZ", "POST", f"/api/v1/records/GZ/{node.gz_code}/access"),
        ("access GD", "POST", f"/api/v1/records/GD/{node.gd_code}/access"),
        ("submit GZ", "POST", "/api/v1/transfers?archive=GZ"),
        ("submit GD", "POST", "/api/v1/transfers?archive=GD"),
    ]


EXPECTED: dict[str, tuple[int, ...]] = {
    # list GZ, list GD, get GZ, get GD, set GZ, set GD, submit GZ, submit GD (submitting is an archivist's)
    "admin": (200, 200, 200, 200, 200, 200, 403, 403),
    "archivist_gz": (200, 403, 200, 404, 200, 403, 202, 403),
    "archivist_gd": (403, 200, 404, 200, 403, 200, 403, 202),
    "auditor": (200, 200, 200, 200, 403, 403, 403, 403),
    **{who: (401,) * 8 for who in REFUSED},
}


def call(node: Node, who: str, method: str, path: str) -> Any:
    if method == "POST" and path.startswith("/api/v1/transfers?archive="):
        # an empty zip: accepted and queued (no worker runs here), or refused before it is read
        return node.client.post(
            "/api/v1/transfers",
            headers=headers(node, who),
            data={"archive": path.rpartition("=")[2]},
            files={"file": ("bag.zip", b"PK\x05\x06" + bytes(18), "application/zip")},
        )
    body = {"status": "restricted", "reason": f"matrix {who}", "review_on": "2030-01-01"}
    return node.client.request(
        method, path, headers=headers(node, who), json=body if method == "POST" else None
    )


@pytest.mark.parametrize("who", ROLES + REFUSED)
def test_role_matrix(node: Node, who: str) -> None:
    got = []
    for name, method, path in routes(node):
        r = call(node, who, method, path)
        got.append(r.status_code)
        if r.status_code == 401:
            assert r.headers["content-type"].startswith("application/problem+json"), name
            assert r.headers["www-authenticate"].startswith("Bearer"), name
            assert r.json()["code"] == "ACC001"
        elif r.status_code == 403:
            assert r.headers["content-type"].startswith("application/problem+json"), name
            assert r.json()["status"] == 403
    assert tuple(got) == EXPECTED[who], dict(zip([n for n, _, _ in routes(node)], got, strict=True))


def test_other_archives_transfer_is_indistinguishable_from_a_missing_one(node: Node) -> None:
    h = headers(node, "archivist_gz")
    other = node.client.get(f"/api/v1/transfers/{node.gd_transfer}", headers=h)
    missing = node.client.get("/api/v1/transfers/no-such-transfer", headers=h)
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    # naming another archive is refused the same whether or not the record exists
    exists = node.client.post(
        f"/api/v1/records/GD/{node.gd_code}/access", headers=h, json={"status": "open", "reason": "x"}
    )
    absent = node.client.post(
        "/api/v1/records/GD/NO-SUCH/access", headers=h, json={"status": "open", "reason": "x"}
    )
    assert exists.status_code == absent.status_code == 403
    assert exists.json() == absent.json()
    own_missing = node.client.post(
        "/api/v1/records/GZ/NO-SUCH/access", headers=h, json={"status": "open", "reason": "x"}
    )
    assert own_missing.status_code == 404
    admin_unknown_archive = node.client.post(
        "/api/v1/records/XX/NO-SUCH/access",
        headers=headers(node, "admin"),
        json={"status": "open", "reason": "x"},
    )
    assert admin_unknown_archive.status_code == 404


def test_lists_show_only_the_archives_in_scope(node: Node) -> None:
    for who, allowed in (("archivist_gz", {"GZ"}), ("archivist_gd", {"GD"})):
        r = node.client.get("/api/v1/transfers", headers=headers(node, who))
        assert r.status_code == 200
        seen = {t["archive"] for t in r.json()["transfers"]}
        assert seen == allowed
    everything = node.client.get("/api/v1/transfers", headers=headers(node, "auditor")).json()["transfers"]
    assert {"GD", "GZ", "GZ-TH"} <= {t["archive"] for t in everything}


def test_transfer_detail(node: Node) -> None:
    r = node.client.get(f"/api/v1/transfers/{node.gz_transfer}", headers=headers(node, "archivist_gz"))
    body = r.json()
    assert body["status"] == "stored" and body["archive"] == "GZ" and body["problems"] == []
    assert body["records"] and all(ref.startswith("GZ/") for ref in body["records"])


def test_bad_body_is_a_422_not_a_500(node: Node) -> None:
    h = headers(node, "archivist_gz")
    path = f"/api/v1/records/GZ/{node.gz_code}/access"
    for body in ({"status": "auto", "reason": "x"}, {"status": "open"}, {"status": "open", "reason": ""}):
        assert node.client.post(path, headers=h, json=body).status_code == 422, body
    bad_date = {"status": "open", "reason": "x", "review_on": "2030-13-40"}
    assert node.client.post(path, headers=h, json=bad_date).status_code == 422


def _public_hits(node: Node) -> set[str]:
    r = node.client.get("/api/v1/search", params={"q": node.public_title, "archive": "GZ"})
    assert r.status_code == 200
    return {h["archival_code"] for h in r.json()["hits"]}


def test_access_change_reaches_the_public_search_and_page(node: Node) -> None:
    backend = get_backend(node.settings)
    page = record_url("GZ", node.public_code)
    path = f"/api/v1/records/GZ/{node.public_code}/access"
    h = headers(node, "archivist_gz")
    assert node.public_code in _public_hits(node)
    assert node.client.get(page).status_code == 200

    r = node.client.post(
        path, headers=h, json={"status": "restricted", "reason": "涉及个人隐私", "review_on": "2031-06-01"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_status"] == "restricted" and r.json()["changed"] is True
    assert drain(node.settings, backend).failed == 0
    assert node.public_code not in _public_hits(node)
    assert node.client.get(page).status_code == 404
    with db.read_session(node.settings) as s:
        record = s.execute(select(Record).where(Record.archival_code == node.public_code)).scalar_one()
        assert record.access_reason == "涉及个人隐私" and record.access_review_on == dt.date(2031, 6, 1)
        event = (
            s.execute(select(Event).where(Event.record_id == record.id).order_by(Event.id.desc()))
            .scalars()
            .first()
        )
        assert event is not None and event.agent == "gz"
        assert event.outcome_detail["agent_type"] == "person"
        assert event.outcome_detail["staff_reason"] == "涉及个人隐私"
        assert event.outcome_detail["review_on"] == "2031-06-01"

    r = node.client.post(path, headers=h, json={"status": "open", "reason": "开放审核通过"})
    assert r.status_code == 200 and r.json()["access_status"] == "open"
    assert drain(node.settings, backend).failed == 0
    assert node.public_code in _public_hits(node)
    assert node.client.get(page).status_code == 200
