"""transfers keep a bounded problem account: counts per code and where the full problem file is

Revision ID: 0004_transfer_problems
Revises: 0003_oai
Create Date: 2026-12-06 21:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_transfer_problems"
down_revision = "0003_oai"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("problem_counts", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("problem_file", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("problem_file")
        batch.drop_column("problem_counts")
