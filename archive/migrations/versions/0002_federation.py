"""federation: peers and signature nonces

Revision ID: 0002_federation
Revises: 0001
Create Date: 2026-12-06 21:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_federation'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('peers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('url', sa.String(length=1024), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('archives', sa.JSON(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_contact_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.String(length=32), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_peers')),
    sa.UniqueConstraint('node_id', name=op.f('uq_peers_node_id'))
    )
    op.create_table('federation_nonces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_federation_nonces')),
    sa.UniqueConstraint('key_id', 'nonce', name=op.f('uq_federation_nonces_key_id'))
    )
    op.create_index('ix_federation_nonces_expires_at', 'federation_nonces', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_federation_nonces_expires_at', table_name='federation_nonces')
    op.drop_table('federation_nonces')
    op.drop_table('peers')
