"""The opening-review and description API as a matrix: every route × every kind of caller × own/other
archive, each answer exactly allowed (or the refusal the service gives an allowed caller), 401, 403 or 404.

The rules are those of :mod:`access_portal.staff`: an archive named in the request outside the caller's
scope is a 403; a review found by its id, or a record's history, of another archive is a 404. The requests
change nothing durable: the decisions and opinions go to reviews already decided (409 for whoever may act),
the put-up goes to a record already in the queue (200), the edit changes nothing (422 REV001 no_change)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive import db, review
from archive.accounts import add_user, create_token
from archive.models import Archive, Record
from tests.access_portal import TestClient, build_portal_home

WHO = ("root", "gz", "gd", "aud", "none")


@dataclass
class Node:
    client: TestClient
    tokens: dict[str, str]
    decided: dict[str, int]  # archive → a decided review
    queued: dict[str, str]  # archive → a record with a pending review
    titles: dict[str, str]


def _unclassified(s: Any, archive: str, skip: int) -> Record:
    rows = s.execute(
        select(Record).join(Archive).where(Archive.code == archive, Record.security_class.is_(None))
    ).scalars()
    return list(rows)[skip]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    from access_portal.app import create_app

    settings = build_portal_home(Path(tmp_path_factory.mktemp("reviews-authz"))).settings
    tokens = {"none": ""}
    decided, queued, titles = {}, {}, {}
    with db.write_session(settings) as s:
        add_user(s, "root", roles=["admin"], actor="test")
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        add_user(s, "gd", roles=["archivist"], archives=["GD"], actor="test")
        add_user(s, "aud", roles=["auditor"], actor="test")
        for login in WHO[:-1]:
            tokens[login] = create_token(s, login, actor="test")[1]
        for archive in ("GZ", "GD"):
            first, second = _unclassified(s, archive, 0), _unclassified(s, archive, 1)
            done, _ = review.put_up(s, archive, first.archival_code, actor="test")
            review.decide(s, [review.Decision(done.id, "restricted", "matrix")], actor="test")
            review.put_up(s, archive, second.archival_code, actor="test")
            decided[archive], queued[archive] = done.id, second.archival_code
            titles[archive] = second.title
    with TestClient(create_app(settings)) as client:
        yield Node(client, tokens, decided, queued, titles)


def routes(node: Node) -> list[tuple[str, str, str, Any]]:
    out: list[tuple[str, str, str, Any]] = [("list", "GET", "/api/v1/reviews", None)]
    for a in ("GZ", "GD"):
        rid, code = node.decided[a], node.queued[a]
        out += [
            (f"list {a}", "GET", f"/api/v1/reviews?archive={a}", None),
            (f"review {a}", "GET", f"/api/v1/reviews/{rid}", None),
            (
                f"decide {a}",
                "POST",
                "/api/v1/reviews/decisions",
                {"decisions": [{"review_id": rid, "status": "open", "reason": "x"}]},
            ),
            (f"opinion {a}", "POST", f"/api/v1/reviews/{rid}/opinion", {"office": "o", "opinion": "p"}),
            (f"put up {a}", "POST", f"/api/v1/records/{a}/{code}/review", {}),
            (f"edit {a}", "PUT", f"/api/v1/records/{a}/{code}/metadata", {"title": node.titles[a]}),
            (f"history {a}", "GET", f"/api/v1/records/{a}/{code}/history", None),
        ]
    return out


#            list  | GZ: list review decide opinion putup edit history | GD: the same
EXPECTED: dict[str, tuple[int, ...]] = {
    "root": (200, 200, 200, 409, 409, 200, 422, 200, 200, 200, 409, 409, 200, 422, 200),
    "gz": (200, 200, 200, 409, 409, 200, 422, 200, 403, 404, 404, 404, 403, 403, 404),
    "gd": (200, 403, 404, 404, 404, 403, 403, 404, 200, 200, 409, 409, 200, 422, 200),
    "aud": (200, 200, 200, 403, 403, 403, 403, 200, 200, 200, 403, 403, 403, 403, 200),
    "none": (401,) * 15,
}


@pytest.mark.parametrize("who", WHO)
def test_review_matrix(node: Node, who: str) -> None:
    headers = {"Authorization": f"Bearer {node.tokens[who]}"} if node.tokens[who] else {}
    got = []
    for _name, method, path, body in routes(node):
        r = node.client.request(method, path, headers=headers, json=body)
        got.append(r.status_code)
    names = [n for n, _, _, _ in routes(node)]
    assert tuple(got) == EXPECTED[who], dict(zip(names, got, strict=True))
