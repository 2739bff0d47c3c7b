"""What one authenticated person may do: the roles they hold and the archives they hold them for."""

from __future__ import annotations

from dataclasses import dataclass

from archive.models import Role


@dataclass(frozen=True)
class Staff:
    login: str
    roles: frozenset[str]
    #: the archive codes the person is an archivist of
    archives: frozenset[str]
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return Role.admin in self.roles

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def may_act_for(self, archive: str | None) -> bool:
        """May change things of ``archive`` (an admin anywhere, an archivist in their archives)."""
        return self.is_admin or (archive is not None and archive in self.archives)

    def may_read(self, archive: str | None) -> bool:
        """May see things of ``archive`` (adds the auditor's read-only view of the whole node)."""
        return self.may_act_for(archive) or Role.auditor in self.roles
