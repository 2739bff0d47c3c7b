"""uploads: resumable (tus) uploads and the SHA-256 of every uploaded bag (issue 11)

Revision ID: 0007_uploads
Revises: 0006_sessions (0005_accounts before staffweb merged uploads)
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_uploads'
down_revision = '0006_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('uploads',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('archive_id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('length', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('transfer_id', sa.String(length=40), nullable=True),
    sa.Column('duplicate_of', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['archive_id'], ['archives.id'], name=op.f('fk_uploads_archive_id_archives')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_expires_at'), ['expires_at'], unique=False)
    op.create_table('transfer_digests',
    sa.Column('transfer_id', sa.String(length=40), nullable=False),
    sa.Column('archive_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['archive_id'], ['archives.id'], name=op.f('fk_transfer_digests_archive_id_archives')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_transfer_digests_transfer_id_transfers')),
    sa.PrimaryKeyConstraint('transfer_id', name=op.f('pk_transfer_digests'))
    )
    with op.batch_alter_table('transfer_digests', schema=None) as batch_op:
        batch_op.create_index('ix_transfer_digests_archive_sha256', ['archive_id', 'sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('transfer_digests', schema=None) as batch_op:
        batch_op.drop_index('ix_transfer_digests_archive_sha256')
    op.drop_table('transfer_digests')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_expires_at'))
    op.drop_table('uploads')
