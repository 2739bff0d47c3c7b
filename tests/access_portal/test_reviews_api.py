"""The opening-review and description API: a record restricted, put up for review, opened by a decision and
seen by the public search at once (no drain in between), a metadata edit reaching the index, and the scope
rules (another archive's review → 404, naming another archive → 403, an auditor reads only)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive import db
from archive.accounts import add_user, create_token
from archive.config import Settings
from archive.events import ACCESS_DECISION
from archive.models import Event, Record
from tests.access_portal import TestClient, build_portal_home, open_records


@dataclass
class Node:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]
    codes: list[str]  # open GZ records
    titles: dict[str, str]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    from access_portal.app import create_app

    settings = build_portal_home(Path(tmp_path_factory.mktemp("reviews"))).settings
    tokens = {}
    with db.write_session(settings) as s:
        add_user(s, "root", roles=["admin"], actor="test")
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        add_user(s, "gd", roles=["archivist"], archives=["GD"], actor="test")
        add_user(s, "aud", roles=["auditor"], actor="test")
        for login in ("root", "gz", "gd", "aud"):
            tokens[login] = create_token(s, login, actor="test")[1]
    codes = [code for archive, code in open_records(settings) if archive == "GZ"]
    with db.read_session(settings) as s:
        titles = {
            r.archival_code: r.title
            for r in s.execute(select(Record).where(Record.archival_code.in_(codes))).scalars()
        }
    with TestClient(create_app(settings)) as client:
        yield Node(settings, client, tokens, codes, titles)


def h(node: Node, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.tokens[who]}"}


def public_codes(node: Node, q: str) -> set[str]:
    r = node.client.get("/api/v1/search", params={"q": q, "archive": "GZ"})
    assert r.status_code == 200, r.text
    return {hit["archival_code"] for hit in r.json()["hits"]}


def test_open_by_review_reaches_the_public_search_at_once(node: Node) -> None:
    code = node.codes[0]
    title = node.titles[code]
    c = node.client
    assert code in public_codes(node, title)

    r = c.post(
        f"/api/v1/records/GZ/{code}/access",
        headers=h(node, "gz"),
        json={"status": "restricted", "reason": "待审"},
    )
    assert r.status_code == 200 and r.json()["access_status"] == "restricted"
    assert code not in public_codes(node, title)  # no drain: indexed right after the commit

    put = f"/api/v1/records/GZ/{code}/review"
    assert c.post(put, headers=h(node, "aud"), json={}).status_code == 403
    assert c.post(f"/api/v1/records/GD/{code}/review", headers=h(node, "gz"), json={}).status_code == 403
    r = c.post(put, headers=h(node, "gz"), json={"note": "到期审核"})
    assert r.status_code == 201, r.text
    review_id = r.json()["id"]
    assert r.json()["why"] == "manual" and r.json()["state"] == "pending"
    again = c.post(put, headers=h(node, "gz"), json={})
    assert again.status_code == 200 and again.json()["id"] == review_id and again.json()["created"] is False

    queue = c.get("/api/v1/reviews", headers=h(node, "gz"))
    assert queue.status_code == 200 and review_id in [x["id"] for x in queue.json()["reviews"]]
    assert review_id not in [
        x["id"] for x in c.get("/api/v1/reviews", headers=h(node, "gd")).json()["reviews"]
    ]
    assert c.get("/api/v1/reviews", params={"archive": "GD"}, headers=h(node, "gz")).status_code == 403
    assert c.get("/api/v1/reviews", params={"archive": "GZ"}, headers=h(node, "aud")).status_code == 200
    assert c.get("/api/v1/reviews", params={"archive": "G\x00Z"}, headers=h(node, "root")).json() == {
        "reviews": []
    }
    assert c.get("/api/v1/records/G%00Z/x/history", headers=h(node, "root")).status_code == 404
    assert c.get("/api/v1/records/GZ/x%00/history", headers=h(node, "root")).status_code == 404
    assert c.get("/api/v1/reviews").status_code == 401
    assert c.get(f"/api/v1/reviews/{2**70}", headers=h(node, "gz")).status_code == 422
    assert c.post(put, headers=h(node, "gz"), json={"note": "\x00"}).status_code == 422
    other = c.get(f"/api/v1/reviews/{review_id}", headers=h(node, "gd"))
    missing = c.get("/api/v1/reviews/999999", headers=h(node, "gd"))
    assert other.status_code == missing.status_code == 404 and other.json() == missing.json()

    opinion = {"office": "广州市规划局", "opinion": "同意开放", "given_on": "2026-11-20"}
    assert (
        c.post(f"/api/v1/reviews/{review_id}/opinion", headers=h(node, "gd"), json=opinion).status_code == 404
    )
    assert (
        c.post(f"/api/v1/reviews/{review_id}/opinion", headers=h(node, "aud"), json=opinion).status_code
        == 403
    )
    r = c.post(f"/api/v1/reviews/{review_id}/opinion", headers=h(node, "gz"), json=opinion)
    assert r.status_code == 200 and r.json()["office"] == "广州市规划局"

    decision = {"decisions": [{"review_id": review_id, "status": "open", "reason": "审核通过"}]}
    assert c.post("/api/v1/reviews/decisions", headers=h(node, "aud"), json=decision).status_code == 403
    assert c.post("/api/v1/reviews/decisions", headers=h(node, "gd"), json=decision).status_code == 404
    r = c.post("/api/v1/reviews/decisions", headers=h(node, "gz"), json=decision)
    assert r.status_code == 200, r.text
    assert r.json()["decisions"][0]["access_status"] == "open"
    assert code in public_codes(node, title)  # no drain
    assert c.post("/api/v1/reviews/decisions", headers=h(node, "gz"), json=decision).status_code == 409

    with db.read_session(node.settings) as s:
        event = (
            s.execute(
                select(Event)
                .where(Event.object_id == f"GZ/{code}", Event.event_type == ACCESS_DECISION)
                .order_by(Event.id.desc())
            )
            .scalars()
            .first()
        )
        assert event is not None and event.agent == "gz"
        assert event.outcome_detail["review"] == review_id
        assert event.outcome_detail["joint_review"]["opinion"] == "同意开放"

    bodies: list[dict[str, Any]] = [
        {"decisions": []},
        {"decisions": [{"review_id": review_id, "status": "auto", "reason": "x"}]},
        {"decisions": [{"review_id": review_id, "status": "open", "reason": ""}]},
        {
            "decisions": [
                {"review_id": review_id, "status": "restricted", "reason": "x", "review_on": "2001-01-01"}
            ]
        },
    ]
    bodies.append({"decisions": [{"review_id": review_id, "status": "open", "reason": "理由\x00"}]})
    bodies.append({"decisions": [{"review_id": 2**40, "status": "open", "reason": "x"}]})
    for body in bodies:
        assert c.post("/api/v1/reviews/decisions", headers=h(node, "gz"), json=body).status_code == 422, body


def test_metadata_edit_reaches_the_index_and_keeps_history(node: Node) -> None:
    code = node.codes[1]
    c = node.client
    path = f"/api/v1/records/GZ/{code}/metadata"
    body = {"title": "珠江堤防加固修订题名", "keywords": ["堤防"]}
    assert c.put(path, headers=h(node, "aud"), json=body).status_code == 403
    assert c.put(f"/api/v1/records/GD/{code}/metadata", headers=h(node, "gz"), json=body).status_code == 403
    for bad in ({"date": "1991-13-01"}, {"title": ""}, {"security_class": "公开"}, {"title": "a\x00"}):
        assert c.put(path, headers=h(node, "gz"), json=bad).status_code == 422, bad

    r = c.put(path, headers=h(node, "gz"), json=body)
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert r.json()["changes"]["title"]["after"] == "珠江堤防加固修订题名"
    assert code in public_codes(node, "珠江堤防加固修订题名")  # no drain

    history = c.get(f"/api/v1/records/GZ/{code}/history", headers=h(node, "aud"))
    assert history.status_code == 200
    versions = history.json()["versions"]
    assert versions[0]["version"] == version and versions[0]["who"] == "gz"
    assert versions[0]["changes"]["title"]["before"] == node.titles[code]
    assert versions[-1]["version"] == "v1"
    assert c.get(f"/api/v1/records/GZ/{code}/history", headers=h(node, "gd")).status_code == 404
    assert c.get("/api/v1/records/GZ/NO-SUCH/history", headers=h(node, "gz")).status_code == 404
