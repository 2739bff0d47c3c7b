"""The staff pages as a matrix: every page route × every role × own/other archive, each answer exactly
allowed, the 303 to the sign-in page, the 403 page or the 404 page; CSRF refused on every form route; the
transfer pages (filters and totals, problems bounded with "and K more", the CSV of every problem)."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from access_portal.app import create_app
from access_portal.staff import SESSION_COOKIE
from archive.config import Settings
from ingest.pipeline import ingest, problem_file
from tests.access_portal import TestClient, build_portal_home
from tests.access_portal.staffweb import PEOPLE, add_people, csrf_of, sign_in
from tests.access_portal.test_hardening import _flat
from tests.access_portal.test_staff_authz import _transfer_of
from tests.e2e.helpers import simple_bag

WHO = ("anonymous", *PEOPLE)  # root (admin), gz, gd (archivists), aud (auditor)


@dataclass
class Node:
    settings: Settings
    clients: dict[str, TestClient]
    gz_transfer: str
    gd_transfer: str
    rejected: str  # a GZ transfer refused with more problems than are shown


def _rejected_transfer(settings: Settings, root: Path) -> str:
    """A GZ bag whose manifest names 25 files that are not there: 25 problems of one code."""
    bag = simple_bag(
        root / "broken",
        [(f"卷{n}", f"GZ-800-1990-永久-{n:04d}", f"缺失文件{n}", b"x") for n in range(25)],
    )
    for folder in (bag / "data").iterdir():
        if folder.name.startswith("卷"):
            shutil.rmtree(folder)
    result = ingest(bag, "GZ", settings)
    assert result.transfer_id
    return result.transfer_id


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = Path(tmp_path_factory.mktemp("staffpages"))
    settings = build_portal_home(root).settings
    add_people(settings, {**PEOPLE, "spare": (["auditor"], [])})
    rejected = _rejected_transfer(settings, root)
    app = create_app(settings)
    clients: dict[str, TestClient] = {}
    for who in WHO:
        clients[who] = TestClient(app)
        clients[who].__enter__()
        if who != "anonymous":
            assert sign_in(clients[who], who).status_code == 303
    try:
        yield Node(settings, clients, _transfer_of(settings, "GZ"), _transfer_of(settings, "GD"), rejected)
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


EMPTY_ZIP = b"PK\x05\x06" + bytes(18)


def pages(node: Node) -> list[tuple[str, str, str]]:
    gz, gd = node.gz_transfer, node.gd_transfer
    return [
        ("dashboard", "GET", "/staff"),
        ("list", "GET", "/staff/transfers"),
        ("list GZ", "GET", "/staff/transfers?archive=GZ"),
        ("list GD", "GET", "/staff/transfers?archive=GD"),
        ("transfer GZ", "GET", f"/staff/transfers/{gz}"),
        ("transfer GD", "GET", f"/staff/transfers/{gd}"),
        ("csv GZ", "GET", f"/staff/transfers/{gz}/problems.csv"),
        ("csv GD", "GET", f"/staff/transfers/{gd}/problems.csv"),
        ("upload form", "GET", "/staff/upload"),
        ("upload GZ", "POST", "/staff/upload?archive=GZ"),
        ("upload GD", "POST", "/staff/upload?archive=GD"),
        ("users", "GET", "/staff/users"),
        ("add user", "POST", "/staff/users"),
        ("disable user", "POST", "/staff/users/spare/disable"),
    ]


EXPECTED: dict[str, tuple[int, ...]] = {
    # dash, list, list GZ, list GD, tr GZ, tr GD, csv GZ, csv GD, upload form, upload GZ, upload GD,
    # users, add user, disable user
    "anonymous": (303,) * 14,
    "root": (200, 200, 200, 200, 200, 200, 200, 200, 403, 403, 403, 200, 303, 303),  # uploads: archivists
    "gz": (200, 200, 200, 403, 200, 404, 200, 404, 200, 303, 403, 403, 403, 403),
    "gd": (200, 200, 403, 200, 404, 200, 404, 200, 200, 403, 303, 403, 403, 403),
    "aud": (200, 200, 200, 200, 200, 200, 200, 200, 403, 403, 403, 403, 403, 403),
}


def visit(node: Node, who: str, method: str, path: str) -> Any:
    client = node.clients[who]
    token = csrf_of(client) if who != "anonymous" else ""
    if method == "POST" and path.startswith("/staff/users"):
        form = {"login": f"new-{who}", "password": "a long enough password", "role": "auditor"}
        return client.post(path, data={**form, "csrf_token": token}, follow_redirects=False)
    if method == "POST":
        archive = path.rpartition("=")[2]
        return client.post(
            "/staff/upload",
            data={"archive": archive, "csrf_token": token},
            files={"file": ("bag.zip", EMPTY_ZIP, "application/zip")},
            follow_redirects=False,
        )
    return client.get(path, follow_redirects=False)


@pytest.mark.parametrize("who", WHO)
def test_page_matrix(node: Node, who: str) -> None:
    got = []
    for name, method, path in pages(node):
        r = visit(node, who, method, path)
        got.append(r.status_code)
        if r.status_code == 303 and who == "anonymous":
            assert r.headers["location"].startswith("/staff/login?next="), name
        if r.status_code in (403, 404):
            assert r.headers["content-type"].startswith("text/html"), name
            assert 'class="logout"' in r.text, name  # the staff frame
    names = [n for n, _, _ in pages(node)]
    assert tuple(got) == EXPECTED[who], dict(zip(names, got, strict=True))


def test_lists_show_only_what_the_person_may_see(node: Node) -> None:
    gz_list = node.clients["gz"].get("/staff/transfers").text
    assert node.gz_transfer in gz_list and node.gd_transfer not in gz_list
    gd_list = node.clients["gd"].get("/staff/transfers").text
    assert node.gd_transfer in gd_list and node.gz_transfer not in gd_list
    dash = node.clients["gz"].get("/staff").text
    assert 'id="arch-GZ"' in dash and 'id="arch-GD"' not in dash
    other = node.clients["gz"].get(f"/staff/transfers/{node.gd_transfer}")
    missing = node.clients["gz"].get("/staff/transfers/no-such-transfer")
    assert other.status_code == missing.status_code == 404
    assert other.text.replace(node.gd_transfer, "X") == missing.text.replace("no-such-transfer", "X")


def test_every_form_route_refuses_a_change_without_the_csrf_token(node: Node) -> None:
    """Every non-safe /staff route of the app (also those added later) is checked; the sign-in form checks
    its own token (tests/access_portal/test_staff_sessions.py)."""
    routes = [
        (route.path, method)
        for route in _flat(create_app(node.settings).routes)
        if isinstance(route, APIRoute) and route.path.startswith("/staff")
        for method in sorted((route.methods or set()) - {"GET", "HEAD"})
        if route.path != "/staff/login"
    ]
    assert ("/staff/logout", "POST") in routes and ("/staff/upload", "POST") in routes
    client = node.clients["gz"]
    for path, method in routes:
        concrete = path.replace("{transfer_id}", node.gz_transfer).replace("{login}", "gd")
        # none, forged, not even ASCII, another session's
        for token in (None, "0" * 64, "令牌", csrf_of(node.clients["gd"])):
            data = {"archive": "GZ", **({"csrf_token": token} if token else {})}
            r = client.request(method, concrete, data=data, follow_redirects=False)
            assert r.status_code == 403, (path, token, r.status_code)
            assert "SES003" in r.text
    assert client.get("/staff").status_code == 200  # still signed in: nothing was done
    assert "gd" in node.clients["gd"].get("/staff").text  # gd was not disabled


def test_filters_and_totals(node: Node) -> None:
    client = node.clients["root"]
    everything = client.get("/staff/transfers").text
    rejected = client.get("/staff/transfers?status=rejected").text
    assert node.rejected in rejected and node.gz_transfer not in rejected
    assert rejected.count("<tr data-transfer=") == int(rejected.split('data-transfers="')[1].split('"')[0])
    assert node.rejected in everything
    nothing = client.get("/staff/transfers?from=2999-01-01").text
    assert 'data-transfers="0"' in nothing
    garbage = client.get("/staff/transfers?from=yesterday&status=nonsense")
    assert garbage.status_code == 200  # an unreadable filter is no filter, not an error


def test_refused_transfer_shows_problems_bounded_and_every_one_as_csv(node: Node) -> None:
    client = node.clients["gz"]
    page = client.get(f"/staff/transfers/{node.rejected}")
    assert page.status_code == 200
    assert 'data-status="rejected"' in page.text
    shown = node.settings.problems_shown
    every = problem_file(node.settings, node.rejected).read_text(encoding="utf-8").splitlines()
    listed = page.text.count('class="en"')
    assert 0 < listed < len(every)  # bounded: the first of each code ...
    assert 'class="more"' in page.text  # ... and "and K more"
    download = client.get(f"/staff/transfers/{node.rejected}/problems.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text.lstrip("\ufeff"))))
    assert len(rows) == len(every) > shown
    assert all(r["code"] and r["message_zh"] and r["message_en"] for r in rows)


def test_stored_transfer_links_its_records(node: Node) -> None:
    page = node.clients["gz"].get(f"/staff/transfers/{node.gz_transfer}").text
    assert 'data-status="stored"' in page and "/records/GZ/" in page


def test_pages_in_english_and_cookie_not_readable_by_scripts(node: Node) -> None:
    page = node.clients["aud"].get("/staff/transfers?lang=en")
    assert '<html lang="en">' in page.text and "Transfers" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert SESSION_COOKIE in node.clients["aud"].cookies


def test_admin_adds_and_disables_people(node: Node) -> None:
    admin = node.clients["root"]
    token = csrf_of(admin, "/staff/users")
    form = {"login": "th", "password": "a long enough password", "role": "archivist", "archive": "GZ-TH"}
    added = admin.post("/staff/users", data={**form, "csrf_token": token}, follow_redirects=False)
    assert added.status_code == 303
    again = admin.post("/staff/users", data={**form, "csrf_token": token})
    assert again.status_code == 409 and "ACC004" in again.text
    bad = admin.post("/staff/users", data={**form, "login": "th2", "archive": [], "csrf_token": token})
    assert bad.status_code == 422 and "ARC003" in bad.text  # an archivist needs an archive
    th = TestClient(create_app(node.settings))
    with th:
        assert sign_in(th, "th", "a long enough password").status_code == 303
        assert th.get("/staff").status_code == 200
        out = admin.post("/staff/users/th/disable", data={"csrf_token": token}, follow_redirects=False)
        assert out.status_code == 303
        assert th.get("/staff", follow_redirects=False).status_code == 303  # the session stopped at once
    page = admin.get("/staff/users").text
    assert 'data-user="th"' in page
    short = admin.post(
        "/staff/users", data={**form, "login": "th3", "password": "short", "csrf_token": token}
    )
    assert short.status_code == 422 and 'class="logout"' in short.text  # the workspace's error page


def test_dashboard_figures(node: Node) -> None:
    from sqlalchemy import func, select

    from archive import db
    from archive.models import Archive, Record

    with db.read_session(node.settings) as s:
        held = s.execute(
            select(func.count()).select_from(Record).join(Archive).where(Archive.code == "GZ")
        ).scalar_one()
        opened = s.execute(
            select(func.count())
            .select_from(Record)
            .join(Archive)
            .where(Archive.code == "GZ", Record.access_status == "open")
        ).scalar_one()
    page = node.clients["gz"].get("/staff").text
    section = page.split('id="arch-GZ"')[1]
    assert f'data-figure="holdings">{held}<' in section
    assert f'data-figure="open_share">{round(100 * opened / held)}%<' in section
    assert 'data-figure="transfers_month">' in section and 'data-figure="last_audit">' in section
    assert 'data-figure="reviews_due">' in section


@pytest.mark.parametrize(
    "path",
    [
        "/staff/transfers/T\x00x",
        "/staff/transfers/T\x00x/problems.csv",
        "/staff/transfers?archive=G\x00Z",
        "/staff/transfers?from=\x00&to=9999-99-99",
    ],
)
def test_control_characters_are_not_found_never_an_error(node: Node, path: str) -> None:
    answer = node.clients["root"].get(path.replace("\x00", "%00"))
    assert answer.status_code in (200, 404)
