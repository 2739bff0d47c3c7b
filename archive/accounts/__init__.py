"""Staff accounts: people, their roles (admin, archivist of some archives, auditor), passwords and API tokens.

Every change here is a PREMIS event whose agent is the person who made it (``agent_type`` ``person`` in the
event's outcome detail). The HTTP side (bearer tokens, 401/403/404) is :mod:`access_portal.staff`.
"""

from archive.accounts import sessions
from archive.accounts.passwords import hash_password, verify_password
from archive.accounts.staff import Staff
from archive.accounts.tokens import authenticate, create_token, revoke_token
from archive.accounts.users import add_user, disable_user, list_users, staff_of

__all__ = [
    "Staff",
    "add_user",
    "authenticate",
    "create_token",
    "disable_user",
    "hash_password",
    "list_users",
    "revoke_token",
    "sessions",
    "staff_of",
    "verify_password",
]
