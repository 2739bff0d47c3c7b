"""Staff users and their role grants: add, list, disable; and what a user may do (:func:`staff_of`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from archive.accounts.events import CREATION, DEACTIVATION, person_event
from archive.accounts.passwords import hash_password
from archive.accounts.staff import Staff
from archive.errors import BadArgument, UnknownUser, UserExists
from archive.models import Role, RoleGrant, User

LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
ROLES = tuple(r.value for r in Role)


def check_grants(roles: Sequence[str], archives: Sequence[str]) -> None:
    if not roles:
        raise BadArgument(variant="no_role")
    for role in roles:
        if role not in ROLES:
            raise BadArgument(variant="role", known=", ".join(ROLES), role=role)
    if Role.archivist in roles and not archives:
        raise BadArgument(variant="archivist_needs_archive")
    if archives and Role.archivist not in roles:
        raise BadArgument(variant="archive_without_archivist")


def add_user(
    session: Session,
    login: str,
    *,
    roles: Sequence[str],
    archives: Sequence[str] = (),
    password: str | None = None,
    display_name: str | None = None,
    actor: str,
) -> User:
    """Create a user with these roles (an archivist role for each of ``archives``); a PREMIS event."""
    from archive.services import get_archive

    if not LOGIN.match(login):
        raise BadArgument(variant="login", login=login)
    check_grants(roles, archives)
    if session.execute(select(User.id).where(User.login == login)).first():
        raise UserExists(login)
    user = User(
        login=login,
        display_name=display_name,
        password_hash=hash_password(password) if password else None,
        disabled=False,
    )
    for role in dict.fromkeys(roles):
        if role == Role.archivist:
            for code in dict.fromkeys(archives):
                user.grants.append(RoleGrant(role=role, archive_id=get_archive(session, code).id))
        else:
            user.grants.append(RoleGrant(role=role, archive_id=None))
    session.add(user)
    session.flush()
    person_event(
        session,
        event_type=CREATION,
        actor=actor,
        object_type="user",
        object_id=login,
        detail=f"user {login} added: {', '.join(grant_names(user))}",
        outcome_detail={"grants": grant_names(user)},
    )
    return user


def grant_names(user: User) -> list[str]:
    """``admin``, ``auditor``, ``archivist:GZ`` …"""
    return [f"{g.role}:{g.archive.code}" if g.archive else g.role for g in user.grants]


def get_user(session: Session, login: str) -> User:
    user = session.execute(
        select(User)
        .options(selectinload(User.grants).selectinload(RoleGrant.archive))
        .where(User.login == login)
    ).scalar_one_or_none()
    if user is None:
        raise UnknownUser(login)
    return user


def list_users(session: Session) -> list[dict[str, Any]]:
    users = session.execute(
        select(User).options(selectinload(User.grants).selectinload(RoleGrant.archive)).order_by(User.login)
    ).scalars()
    return [
        {
            "login": u.login,
            "display_name": u.display_name,
            "disabled": u.disabled,
            "created_at": u.created_at.isoformat(),
            "roles": sorted({g.role for g in u.grants}),
            "archives": sorted({g.archive.code for g in u.grants if g.archive}),
        }
        for u in users
    ]


def disable_user(session: Session, login: str, *, actor: str) -> bool:
    """Disable ``login``: their tokens stop working at once. Returns whether anything changed."""
    user = get_user(session, login)
    if user.disabled:
        return False
    user.disabled = True
    person_event(
        session,
        event_type=DEACTIVATION,
        actor=actor,
        object_type="user",
        object_id=login,
        detail=f"user {login} disabled",
    )
    return True


def staff_of(user: User) -> Staff:
    return Staff(
        login=user.login,
        roles=frozenset(g.role for g in user.grants),
        archives=frozenset(g.archive.code for g in user.grants if g.role == Role.archivist and g.archive),
    )
