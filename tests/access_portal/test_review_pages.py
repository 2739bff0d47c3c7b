"""The workspace's review and record pages, signed in with a session: put a record up for review, decide it
from the queue (checkboxes, reason), see it on the public search at once; edit its description and see the
new version in its history; the refusals (no CSRF token, an auditor deciding, another archive's record or
queue)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from access_portal.app import create_app
from archive import db, services
from archive.config import Settings
from tests.access_portal import TestClient, build_portal_home, open_records
from tests.access_portal.staffweb import add_people, csrf_of, sign_in


@dataclass
class Node:
    settings: Settings
    codes: list[str]  # open GZ records
    gd_code: str


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    settings = build_portal_home(Path(tmp_path_factory.mktemp("review-pages"))).settings
    add_people(settings)
    records = open_records(settings)
    yield Node(settings, [c for a, c in records if a == "GZ"], next(c for a, c in records if a == "GD"))


def client_for(node: Node, login: str) -> TestClient:
    client = TestClient(create_app(node.settings))
    assert sign_in(client, login).status_code == 303
    return client


def page(archive: str, code: str) -> str:
    return f"/staff/records/{quote(archive)}/{quote(code)}"


def title_of(node: Node, code: str) -> str:
    with db.read_session(node.settings) as s:
        return services.get_record(s, "GZ", code).title


def public_codes(client: TestClient, q: str) -> set[str]:
    r = client.get("/api/v1/search", params={"q": q, "archive": "GZ"})
    return {hit["archival_code"] for hit in r.json()["hits"]}


def test_open_a_record_by_review_from_the_pages(node: Node) -> None:
    code = node.codes[0]
    title = title_of(node, code)
    with client_for(node, "gz") as c:
        token = csrf_of(c, page("GZ", code))
        r = c.post(
            page("GZ", code) + "/access",
            data={"status": "restricted", "reason": "待审", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        assert code not in public_codes(c, title)

        no_token = c.post(page("GZ", code) + "/review", data={"note": "x"}, follow_redirects=False)
        assert no_token.status_code == 403
        r = c.post(
            page("GZ", code) + "/review",
            data={"note": "申请开放", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303

        queue = c.get("/staff/reviews")
        assert queue.status_code == 200 and code in queue.text
        found = re.search(
            r'name="review_id" value="(\d+)" id="review-\d+" aria-label="[^"]*' + re.escape(code), queue.text
        )
        assert found, queue.text
        none_selected = c.post(
            "/staff/reviews/decide", data={"status": "open", "reason": "x", "csrf_token": token}
        )
        assert none_selected.status_code == 422
        r = c.post(
            "/staff/reviews/decide",
            data={"review_id": [found.group(1)], "status": "open", "reason": "审核通过", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/staff/reviews?done=1"
        assert code in public_codes(c, title)  # at once, no drain
        decided = c.get("/staff/reviews", params={"state": "decided"})
        assert code in decided.text and "审核通过" in decided.text

        assert c.get(page("GD", node.gd_code)).status_code == 404
        assert c.get("/staff/reviews", params={"archive": "GD"}).status_code == 403

    with client_for(node, "aud") as c:
        assert c.get(page("GZ", code)).status_code == 200  # reads
        token = csrf_of(c)
        r = c.post(
            "/staff/reviews/decide",
            data={"review_id": ["1"], "status": "open", "reason": "x", "csrf_token": token},
        )
        assert r.status_code == 403


def test_edit_the_description_from_the_record_page(node: Node) -> None:
    code = node.codes[1]
    with client_for(node, "gz") as c:
        before = c.get(page("GZ", code))
        assert before.status_code == 200 and 'data-version="v1"' in before.text
        token = csrf_of(c, page("GZ", code))
        with db.read_session(node.settings) as s:
            fields = services.record_detail(services.get_record(s, "GZ", code))
        form = {
            "title": "修订后的题名甲乙",
            "creator": fields["creator"] or "",
            "date": fields["date"] or "",
            "keywords": fields["keywords"] or "",
            "description": fields["description"] or "",
            "csrf_token": token,
        }
        r = c.post(page("GZ", code) + "/metadata", data=form, follow_redirects=False)
        assert r.status_code == 303, r.text
        after = c.get(r.headers["location"])
        assert 'data-version="v2"' in after.text and "修订后的题名甲乙" in after.text
        assert code in public_codes(c, "修订后的题名甲乙")
        bad = c.post(page("GZ", code) + "/metadata", data={**form, "date": "1991-13-01"})
        assert bad.status_code == 422 and "REV001" in bad.text
    with client_for(node, "gd") as c:
        token = csrf_of(c)
        r = c.post(page("GZ", code) + "/metadata", data={"title": "x", "csrf_token": token})
        assert r.status_code == 403
