"""seals: the timestamp outbox of signed OCFL versions (issue 13)

Revision ID: 0011_seals
Revises: 0009_checks
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_seals'
down_revision = '0009_checks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('seal_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seal_outbox'))
    )
    op.create_index('ix_seal_outbox_pending', 'seal_outbox', ['pending'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_seal_outbox_pending', table_name='seal_outbox')
    op.drop_table('seal_outbox')
