"""Argon2id password hashes (argon2-cffi, its RFC 9106 low-memory defaults)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # type Argon2id by default


def hash_password(password: str) -> str:
    """The ``$argon2id$…`` hash of ``password`` (salted; two calls give two different hashes)."""
    return _hasher.hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    if not hashed:
        return False
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
