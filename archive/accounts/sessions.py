"""Staff web sessions and sign-in: lockout after failed attempts, sessions kept only as hashes.

* A session id is 32 random bytes (the cookie); the catalogue keeps its SHA-256 only. A new id is made at
  every sign-in (the one the browser had is ended), the session ends at sign-out and after
  ``ARCHIVE_SESSION_IDLE_MINUTES`` without a request.
* The session's CSRF token is derived from its id (HMAC-SHA-256 of a fixed label keyed by the id): it
  changes with the session, needs no storage, and knowing it does not give the session id.
* Every sign-in attempt is written (and committed) *before* the password is checked; failed ones within
  ``ARCHIVE_LOGIN_LOCKOUT_MINUTES`` are counted per login and per address, so neither a run of guesses, nor
  guesses in parallel, nor guesses spread over many addresses or many accounts get past
  ``ARCHIVE_LOGIN_MAX_FAILURES`` / ``ARCHIVE_LOGIN_ADDRESS_MAX_FAILURES``: once over, even the right
  password is refused until the failures age out. Unknown logins count the same as known ones, and unknown
  login, wrong password and disabled account get one answer (:class:`~archive.errors.SignInFailed`).
* Sign-in, sign-out and a lockout are PREMIS events whose agent is the person.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session, selectinload

from archive import db
from archive.accounts.events import person_event
from archive.accounts.passwords import hash_password, verify_password
from archive.accounts.staff import Staff
from archive.accounts.users import staff_of
from archive.config import Settings
from archive.errors import LockedOut, SignInFailed
from archive.models import LoginAttempt, RoleGrant, StaffSession, User, utcnow

LOGIN = "login"
LOGOUT = "logout"
LOCKOUT = "lockout"
#: A session's last-seen time is written at most this often (every page would otherwise take the write lock).
TOUCH_EVERY = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class SignedIn:
    """A live session: who it is, the session id (the cookie's value) and its CSRF token."""

    staff: Staff
    session_id: str
    csrf_token: str


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token_of(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"archive-csrf-v1", hashlib.sha256).hexdigest()


def csrf_valid(session_id: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token_of(session_id).encode(), str(token).encode())


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown logins against, so they take as long as known ones."""
    return hash_password(secrets.token_urlsafe(16))


def _failures(
    session: Session, since: dt.datetime, *, login: str | None = None, address: str | None = None
) -> int:
    query = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.succeeded.is_(False), LoginAttempt.at > since)
    )
    if login is not None:
        query = query.where(LoginAttempt.login == login)
    if address is not None:
        query = query.where(LoginAttempt.address == address)
    return int(session.execute(query).scalar_one())


def sign_in(
    settings: Settings,
    login: str,
    password: str,
    *,
    address: str,
    previous: str | None = None,
    now: dt.datetime | None = None,
) -> SignedIn:
    """A new session for ``login`` if the password is right and neither the account nor the address is
    locked out; :class:`LockedOut` or :class:`SignInFailed` otherwise. ``previous`` (the session id the
    browser had) is ended: the id is never kept across a sign-in."""
    now = now or utcnow()
    login = "".join(c for c in login.strip() if c >= " ")[:64]  # no control characters (nor NUL) stored
    address = "".join(c for c in address if c >= " ")[:64]
    since = now - dt.timedelta(minutes=settings.login_lockout_minutes)
    with db.write_session(settings) as s:  # committed before the password is looked at
        if s.get_bind().dialect.name == "postgresql":
            # attempts are counted one at a time (SQLite's write lock does this by itself), so parallel
            # guesses cannot all see the count from before each other's
            s.execute(text("LOCK TABLE login_attempts IN SHARE ROW EXCLUSIVE MODE"))
        attempt = LoginAttempt(login=login, address=address, at=now, succeeded=False)
        s.add(attempt)
        s.flush()
        attempt_id = attempt.id
        by_login = _failures(s, since, login=login)
        by_address = _failures(s, since, address=address)
        over_login = by_login > settings.login_max_failures
        over_address = by_address > settings.login_address_max_failures
        if over_login or over_address:
            if (
                by_login == settings.login_max_failures + 1
                or by_address == settings.login_address_max_failures + 1
            ):
                person_event(
                    s,
                    event_type=LOCKOUT,
                    actor=login if over_login else address,
                    object_type="user" if over_login else "address",
                    object_id=login if over_login else address,
                    detail=f"sign-in locked for {settings.login_lockout_minutes} minutes after "
                    + (
                        f"{by_login} failures on {login}"
                        if over_login
                        else f"{by_address} failures from {address}"
                    ),
                    outcome_detail={"address": address, "login": login},
                )
            locked = True
        else:
            locked = False
    if locked:
        raise LockedOut(settings.login_lockout_minutes)
    with db.write_session(settings) as s:
        user = s.execute(
            select(User)
            .options(selectinload(User.grants).selectinload(RoleGrant.archive))
            .where(User.login == login)
        ).scalar_one_or_none()
        good = verify_password(user.password_hash if user else _dummy_hash(), password)
        if user is None or not good or user.disabled or not user.grants:
            raise SignInFailed()
        s.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(succeeded=True))
        s.execute(delete(LoginAttempt).where(LoginAttempt.login == login, LoginAttempt.succeeded.is_(False)))
        if previous:
            _end(s, previous, now)
        session_id = secrets.token_urlsafe(32)
        s.add(
            StaffSession(
                id_sha256=_digest(session_id),
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                address=address,
            )
        )
        person_event(
            s,
            event_type=LOGIN,
            actor=login,
            object_type="user",
            object_id=login,
            detail=f"{login} signed in from {address}",
            outcome_detail={"address": address},
        )
        return SignedIn(staff_of(user), session_id, csrf_token_of(session_id))


def _end(session: Session, session_id: str, now: dt.datetime) -> StaffSession | None:
    row = session.get(StaffSession, _digest(session_id))
    if row is None or row.ended_at is not None:
        return None
    row.ended_at = now
    return row


def current(settings: Settings, session_id: str, *, now: dt.datetime | None = None) -> SignedIn | None:
    """The live session of this id: None if unknown, ended, idle longer than ``ARCHIVE_SESSION_IDLE_MINUTES``
    or the user is disabled. Notes the request as the session's last activity."""
    if not session_id or len(session_id) > 128:
        return None
    now = now or utcnow()
    with db.read_session(settings) as s:
        row = s.execute(
            select(StaffSession)
            .options(
                selectinload(StaffSession.user).selectinload(User.grants).selectinload(RoleGrant.archive)
            )
            .where(StaffSession.id_sha256 == _digest(session_id))
        ).scalar_one_or_none()
        if row is None or row.ended_at is not None or row.user.disabled:
            return None
        last = _aware(row.last_seen_at)
        if now - last > dt.timedelta(minutes=settings.session_idle_minutes):
            return None
        staff = staff_of(row.user)
    if now - last >= TOUCH_EVERY:
        with db.write_session(settings) as s:
            s.execute(
                update(StaffSession)
                .where(StaffSession.id_sha256 == _digest(session_id), StaffSession.ended_at.is_(None))
                .values(last_seen_at=now)
            )
    return SignedIn(staff, session_id, csrf_token_of(session_id))


def sign_out(settings: Settings, session_id: str, *, now: dt.datetime | None = None) -> bool:
    """End the session (a PREMIS event); False if it was not live."""
    now = now or utcnow()
    with db.write_session(settings) as s:
        row = _end(s, session_id, now)
        if row is None:
            return False
        login = row.user.login
        person_event(
            s,
            event_type=LOGOUT,
            actor=login,
            object_type="user",
            object_id=login,
            detail=f"{login} signed out",
        )
        return True


__all__ = ["SignedIn", "csrf_token_of", "csrf_valid", "current", "sign_in", "sign_out"]
