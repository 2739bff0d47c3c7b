"""Helpers for the staff workspace's tests: people with passwords, signing in through the form, the CSRF
token of a page."""

from __future__ import annotations

import re
from typing import Any

from archive import db
from archive.accounts import add_user
from archive.config import Settings
from tests.access_portal import TestClient

PASSWORD = "correct horse 电池 staple"
#: login → (roles, archives)
PEOPLE: dict[str, tuple[list[str], list[str]]] = {
    "root": (["admin"], []),
    "gz": (["archivist"], ["GZ"]),
    "gd": (["archivist"], ["GD"]),
    "aud": (["auditor"], []),
}
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


def add_people(settings: Settings, people: dict[str, tuple[list[str], list[str]]] | None = None) -> None:
    with db.write_session(settings) as s:
        for login, (roles, archives) in (people or PEOPLE).items():
            add_user(s, login, roles=roles, archives=archives, password=PASSWORD, actor="test")


def login_form_token(client: TestClient) -> str:
    page = client.get("/staff/login")
    assert page.status_code == 200, page.text
    found = _CSRF_FIELD.search(page.text)
    assert found
    return found.group(1)


def sign_in(client: TestClient, login: str, password: str = PASSWORD, next_url: str = "/staff") -> Any:
    """Post the sign-in form as a browser would (its CSRF token from the form); the answer, not followed."""
    token = login_form_token(client)
    return client.post(
        "/staff/login",
        data={"login": login, "password": password, "csrf_token": token, "next": next_url},
        follow_redirects=False,
    )


def csrf_of(client: TestClient, path: str = "/staff") -> str:
    """The session's CSRF token, as a page carries it."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = _CSRF_META.search(page.text)
    assert found and found.group(1)
    return found.group(1)
