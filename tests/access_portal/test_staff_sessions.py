"""Staff web sessions: the cookie's flags, a new id at every sign-in, the end at sign-out and after idle
time, only the id's hash in the catalogue; sign-in answers; lockout that neither a run of guesses, nor
guesses in parallel, nor guesses from many addresses or at many accounts get past; CSRF on every change."""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie

import pytest
from sqlalchemy import select, update

from access_portal.app import create_app
from access_portal.routes.staff_pages import LOGIN_CSRF_COOKIE
from access_portal.staff import SESSION_COOKIE
from archive import db
from archive.accounts import disable_user, sessions
from archive.config import Settings
from archive.errors import LockedOut, SignInFailed
from archive.models import Event, StaffSession
from tests.access_portal import TestClient
from tests.access_portal.staffweb import PASSWORD, add_people, csrf_of, login_form_token, sign_in


def _cookie(response: object, name: str = SESSION_COOKIE) -> SimpleCookie:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    for header in headers:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar
    raise AssertionError(f"no {name} cookie in {headers}")


def _events(settings: Settings, event_type: str) -> list[Event]:
    with db.read_session(settings) as s:
        return list(
            s.execute(select(Event).where(Event.event_type == event_type).order_by(Event.id)).scalars()
        )


def test_sign_in_rotates_the_id_and_keeps_only_its_hash(any_home: Settings) -> None:
    settings = any_home
    add_people(settings)
    with TestClient(create_app(settings)) as client:
        first = client.get("/staff", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/staff/login?next=%2Fstaff"

        answer = sign_in(client, "gz")
        assert answer.status_code == 303 and answer.headers["location"] == "/staff"
        morsel = _cookie(answer)[SESSION_COOKIE]
        assert morsel["httponly"] and morsel["samesite"].lower() == "lax" and not morsel["secure"]
        assert morsel["path"] == "/" and not morsel["max-age"]  # ends with the browser or the server
        first_id = morsel.value
        assert client.get("/staff").status_code == 200

        again = sign_in(client, "gz")
        second_id = _cookie(again)[SESSION_COOKIE].value
        assert second_id != first_id  # a new id at every sign-in ...
        assert sessions.current(settings, first_id) is None  # ... and the old one is ended
        assert sessions.current(settings, second_id) is not None

    with db.read_session(settings) as s:
        stored = set(s.execute(select(StaffSession.id_sha256)).scalars())
    assert hashlib.sha256(second_id.encode()).hexdigest() in stored
    assert first_id not in stored and second_id not in stored
    logins = _events(settings, sessions.LOGIN)
    assert [e.agent for e in logins] == ["gz", "gz"]
    assert all(e.outcome_detail["agent_type"] == "person" for e in logins)


def test_cookie_is_secure_behind_https_or_when_configured(home: Settings) -> None:
    add_people(home)
    with TestClient(create_app(home), base_url="https://testserver") as client:
        assert _cookie(sign_in(client, "gz"))[SESSION_COOKIE]["secure"]
    secure = home.model_copy(update={"cookie_secure": True})
    with TestClient(create_app(secure)) as client:  # plain http: the client keeps the Secure cookie to itself
        token = login_form_token(client)
        client.cookies.set(LOGIN_CSRF_COOKIE, token)
        answer = client.post(
            "/staff/login",
            data={"login": "gz", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert _cookie(answer)[SESSION_COOKIE]["secure"]


def test_session_ends_after_idle_time(home: Settings) -> None:
    add_people(home)
    with TestClient(create_app(home)) as client:
        session_id = _cookie(sign_in(client, "gd"))[SESSION_COOKIE].value
        assert client.get("/staff").status_code == 200
        now = dt.datetime.now(dt.UTC)
        later = now + dt.timedelta(minutes=home.session_idle_minutes - 1)
        assert sessions.current(home, session_id, now=later) is not None  # activity moves the end on
        assert sessions.current(
            home, session_id, now=later + dt.timedelta(minutes=home.session_idle_minutes - 1)
        )
        with db.write_session(home) as s:
            s.execute(
                update(StaffSession).values(
                    last_seen_at=now - dt.timedelta(minutes=home.session_idle_minutes, seconds=1)
                )
            )
        idle = client.get("/staff?lang=en", follow_redirects=False)
        assert idle.status_code == 303
        assert idle.headers["location"] == "/staff/login?next=%2Fstaff%3Flang%3Den"


def test_sign_out_ends_the_session_and_needs_the_token(any_home: Settings) -> None:
    settings = any_home
    add_people(settings)
    with TestClient(create_app(settings)) as client:
        session_id = _cookie(sign_in(client, "aud"))[SESSION_COOKIE].value
        token = csrf_of(client)
        refused = client.post("/staff/logout", follow_redirects=False)
        assert refused.status_code == 403 and "SES003" in refused.text
        refused = client.post("/staff/logout", data={"csrf_token": "x" * 64}, follow_redirects=False)
        assert refused.status_code == 403
        assert sessions.current(settings, session_id) is not None  # still signed in

        out = client.post("/staff/logout", data={"csrf_token": token}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"].startswith("/staff/login")
        assert sessions.current(settings, session_id) is None
        client.cookies.set(SESSION_COOKIE, session_id)  # the old cookie, kept by an attacker
        assert client.get("/staff", follow_redirects=False).status_code == 303
    assert [e.agent for e in _events(settings, sessions.LOGOUT)] == ["aud"]


def test_one_answer_for_unknown_login_wrong_password_and_disabled(home: Settings) -> None:
    add_people(home)
    with db.write_session(home) as s:
        disable_user(s, "gd", actor="test")
    with TestClient(create_app(home)) as client:
        answers = [
            sign_in(client, "nobody"),
            sign_in(client, "gz", "wrong password"),
            sign_in(client, "gd"),  # right password, disabled account
        ]
        for answer in answers:
            assert answer.status_code == 401
            assert "SES001" in answer.text and "用户名或密码不正确" in answer.text
            assert SESSION_COOKIE not in answer.cookies
        assert client.get("/staff", follow_redirects=False).status_code == 303


def test_sign_in_form_needs_its_own_token(home: Settings) -> None:
    add_people(home)
    with TestClient(create_app(home)) as client:
        client.get("/staff/login")
        for token in (None, "forged", "令牌"):
            data = {"login": "gz", "password": PASSWORD, **({"csrf_token": token} if token else {})}
            answer = client.post("/staff/login", data=data, follow_redirects=False)
            assert answer.status_code == 403 and "SES003" in answer.text
            assert SESSION_COOKIE not in answer.cookies


def test_next_goes_only_to_the_workspace(home: Settings) -> None:
    add_people(home)
    for target, expected in (
        ("/staff/transfers?status=rejected", "/staff/transfers?status=rejected"),
        ("https://evil.example/staff", "/staff"),
        ("//evil.example/staff", "/staff"),
        ("/search", "/staff"),
    ):
        with TestClient(create_app(home)) as client:
            assert sign_in(client, "gz", next_url=target).headers["location"] == expected


@pytest.fixture
def strict(any_home: Settings) -> Settings:
    """The lockout tests run on SQLite and on PostgreSQL (whose attempts are counted under a table lock)."""
    home = any_home
    add_people(home)
    return home.model_copy(update={"login_max_failures": 3, "login_address_max_failures": 10})


def test_a_run_of_guesses_locks_the_account_even_for_the_right_password(strict: Settings) -> None:
    with TestClient(create_app(strict)) as client:
        for _ in range(strict.login_max_failures):
            assert sign_in(client, "gz", "guess").status_code == 401
        for password in ("guess", PASSWORD, PASSWORD):
            locked = sign_in(client, "gz", password)
            assert locked.status_code == 429 and "SES002" in locked.text
            assert SESSION_COOKIE not in locked.cookies
        assert sign_in(client, "gd").status_code == 303  # another account from here still may
    lockouts = _events(strict, sessions.LOCKOUT)
    assert len(lockouts) == 1 and lockouts[0].object_id == "gz"  # one event, not one per refusal
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=strict.login_lockout_minutes, seconds=1)
    assert sessions.sign_in(strict, "gz", PASSWORD, address="10.0.0.1", now=later).staff.login == "gz"


def test_guesses_from_many_addresses_lock_the_account(strict: Settings) -> None:
    for n in range(strict.login_max_failures):
        with pytest.raises(SignInFailed):
            sessions.sign_in(strict, "gz", f"guess {n}", address=f"198.51.100.{n}")
    with pytest.raises(LockedOut):
        sessions.sign_in(strict, "gz", PASSWORD, address="203.0.113.7")  # a fresh address, the right password


def test_guesses_at_many_accounts_lock_the_address(strict: Settings) -> None:
    for n in range(strict.login_address_max_failures):
        with pytest.raises(SignInFailed):
            sessions.sign_in(strict, f"user{n}", "guess", address="192.0.2.9")
    with pytest.raises(LockedOut):
        sessions.sign_in(strict, "gd", PASSWORD, address="192.0.2.9")  # a real account, its right password
    assert sessions.sign_in(strict, "gd", PASSWORD, address="192.0.2.10").staff.login == "gd"


def test_parallel_guesses_are_counted_before_any_is_checked(strict: Settings) -> None:
    def attempt(n: int) -> str:
        try:
            sessions.sign_in(strict, "gz", PASSWORD if n == 11 else f"guess {n}", address=f"198.51.100.{n}")
        except LockedOut:
            return "locked"
        except SignInFailed:
            return "failed"
        return "signed in"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(attempt, range(12)))
    # at most login_max_failures attempts ever reach the password check; the rest are refused unseen
    assert outcomes.count("failed") + outcomes.count("signed in") <= strict.login_max_failures + 1
    assert outcomes.count("locked") >= 12 - strict.login_max_failures - 1


def test_the_api_takes_the_session_with_its_csrf_header(home: Settings) -> None:
    """The workspace's scripts call the API from the signed-in browser: a change needs X-CSRF-Token."""
    add_people(home)
    with TestClient(create_app(home)) as client:
        sign_in(client, "gz")
        assert client.get("/api/v1/transfers").status_code == 200
        body = {"status": "restricted", "reason": "test"}
        path = "/api/v1/records/GZ/GZ-NONE/access"
        refused = client.post(path, json=body)
        assert refused.status_code == 403 and refused.json()["code"] == "SES003"
        answered = client.post(path, json=body, headers={"X-CSRF-Token": csrf_of(client)})
        assert answered.status_code == 404  # past the guard: the record does not exist
        client.cookies.clear()
        assert client.get("/api/v1/transfers").status_code == 401


def test_control_characters_never_reach_the_database(any_home: Settings) -> None:
    """PostgreSQL cannot store or compare NUL: such input is refused or not found, never a 500."""
    settings = any_home
    add_people(settings)
    with TestClient(create_app(settings)) as client:
        assert sign_in(client, "g\x00z", "x\x00").status_code == 401
        assert sign_in(client, "root").status_code == 303
        for path in ("/staff/transfers/T%00", "/staff/transfers?archive=G%00Z", "/staff/users/a%00/disable"):
            method = "POST" if path.endswith("disable") else "GET"
            answer = client.request(method, path, data={"csrf_token": csrf_of(client)})
            assert answer.status_code == 404, path
        token = csrf_of(client, "/staff/users")
        added = client.post(
            "/staff/users",
            data={
                "login": "th",
                "password": "long enough password",
                "role": "archivist",
                "archive": "G\x00Z",
                "csrf_token": token,
            },
        )
        assert added.status_code == 404
