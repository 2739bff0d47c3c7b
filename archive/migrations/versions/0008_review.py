"""review: per-archive on-age policy and the opening-review queue (issue 11)

Revision ID: 0008_review
Revises: 0007_uploads (re-chained when staffweb merged uploads and review)
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_review'
down_revision = '0007_uploads'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('archives', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_age', sa.String(length=16), server_default='open', nullable=False))
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('archive_id', sa.Integer(), nullable=False),
    sa.Column('why', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('requested_by', sa.String(length=255), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('office', sa.String(length=255), nullable=True),
    sa.Column('office_opinion', sa.Text(), nullable=True),
    sa.Column('office_opinion_on', sa.Date(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=255), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('next_review_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['archive_id'], ['archives.id'], name=op.f('fk_reviews_archive_id_archives')),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_reviews_record_id_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_archive_state', ['archive_id', 'state', 'due_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_reviews_record_id'), ['record_id'], unique=False)
        batch_op.create_index(
            'uq_reviews_open_record',
            ['record_id'],
            unique=True,
            sqlite_where=sa.text("state != 'decided'"),
            postgresql_where=sa.text("state != 'decided'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('uq_reviews_open_record')
        batch_op.drop_index(batch_op.f('ix_reviews_record_id'))
        batch_op.drop_index('ix_reviews_archive_state')
    op.drop_table('reviews')
    with op.batch_alter_table('archives', schema=None) as batch_op:
        batch_op.drop_column('on_age')
