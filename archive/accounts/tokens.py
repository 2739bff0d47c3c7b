"""API tokens for the staff API: ``arc_<id>_<secret>``, shown once; only SHA-256 of the secret is stored.

The secret is 32 random bytes, so a plain SHA-256 is enough (a slow password hash guards low-entropy
secrets, which these are not); the id lets the token be found without a scan, and revoked by its prefix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from archive.accounts.events import CREATION, DEACTIVATION, person_event
from archive.accounts.staff import Staff
from archive.accounts.users import get_user, staff_of
from archive.errors import BadArgument, UnknownToken
from archive.models import ApiToken, RoleGrant, User, utcnow

PREFIX = "arc_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(text: str) -> tuple[str, str] | None:
    if not text.startswith(PREFIX):
        return None
    token_id, sep, secret = text[len(PREFIX) :].partition("_")
    if not sep or not token_id or not secret:
        return None
    return token_id, secret


def create_token(
    session: Session,
    login: str,
    *,
    expires_days: int | None = None,
    actor: str,
    now: dt.datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for ``login``; returns the row and the token text (the only time it exists)."""
    if expires_days is not None and expires_days < 1:
        raise BadArgument(variant="expires")
    user = get_user(session, login)
    now = now or utcnow()
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiToken(
        id=token_id,
        user_id=user.id,
        secret_sha256=_digest(secret),
        created_at=now,
        expires_at=now + dt.timedelta(days=expires_days) if expires_days else None,
    )
    session.add(row)
    session.flush()
    person_event(
        session,
        event_type=CREATION,
        actor=actor,
        object_type="token",
        object_id=token_id,
        detail=f"API token {token_id} for {login}"
        + (f", expires {row.expires_at.isoformat()}" if row.expires_at else ""),
        outcome_detail={"user": login},
    )
    return row, f"{PREFIX}{token_id}_{secret}"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


def authenticate(session: Session, text: str, *, now: dt.datetime | None = None) -> Staff | None:
    """The person a token belongs to, or None if it is malformed, unknown, expired, revoked or the user is
    disabled. The secret is compared in constant time."""
    parts = _split(text.strip())
    if parts is None:
        return None
    token_id, secret = parts
    row = session.execute(
        select(ApiToken)
        .options(selectinload(ApiToken.user).selectinload(User.grants).selectinload(RoleGrant.archive))
        .where(ApiToken.id == token_id)
    ).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    now = now or utcnow()
    if row.revoked_at is not None or (row.expires_at is not None and _aware(row.expires_at) <= now):
        return None
    if row.user.disabled:
        return None
    staff = staff_of(row.user)
    return Staff(staff.login, staff.roles, staff.archives, token_id=row.id)


def revoke_token(session: Session, ref: str, *, actor: str) -> ApiToken:
    """Revoke the token named by its id, a unique prefix of it, or the token text itself."""
    parts = _split(ref)
    key = parts[0] if parts else ref.removeprefix(PREFIX).rstrip("_")
    if len(key) < 4:
        raise UnknownToken(ref[:16])
    rows = (
        session.execute(select(ApiToken).where(ApiToken.id.startswith(key, autoescape=True))).scalars().all()
    )
    if len(rows) != 1:
        raise UnknownToken(key)
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        person_event(
            session,
            event_type=DEACTIVATION,
            actor=actor,
            object_type="token",
            object_id=row.id,
            detail=f"API token {row.id} revoked",
        )
    return row


__all__ = ["PREFIX", "authenticate", "create_token", "get_user", "revoke_token"]
