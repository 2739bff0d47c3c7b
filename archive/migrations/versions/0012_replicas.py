"""replicas: which committed OCFL version reached which replica (issue 13)

Revision ID: 0012_replicas
Revises: 0011_seals
"""
from alembic import op
import sqlalchemy as sa


revision = '0012_replicas'
down_revision = '0011_seals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('replica_copies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('replica', sa.String(length=1024), nullable=False),
    sa.Column('outbox_key', sa.String(length=255), nullable=False),
    sa.Column('object_id', sa.String(length=512), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('files', sa.BigInteger(), nullable=False),
    sa.Column('copied_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replica_copies')),
    sa.UniqueConstraint('replica', 'outbox_key', name=op.f('uq_replica_copies_replica'))
    )
    with op.batch_alter_table('replica_copies', schema=None) as batch_op:
        batch_op.create_index('ix_replica_copies_object', ['object_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('replica_copies', schema=None) as batch_op:
        batch_op.drop_index('ix_replica_copies_object')
    op.drop_table('replica_copies')
