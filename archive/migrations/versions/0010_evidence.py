"""Join the branches of the migration chain on the evidence branch (sessions 0006 and checks 0009).

No schema change: the evidence work needs no table of its own. The lead re-chains the migrations at
integration, which makes this file unnecessary there.

Revision ID: 0010_evidence
Revises: 0006_sessions, 0009_checks
"""

from __future__ import annotations

revision = "0010_evidence"
down_revision = ("0006_sessions", "0009_checks")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
