"""oai: the last public change of a record (OAI-PMH datestamps, deleted records) and the harvested catalogue

Revision ID: 0003_oai
Revises: 0002_federation
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_oai'
down_revision = '0002_federation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_records_public_changed_at'), ['public_changed_at'], unique=False)
    # Records open before this migration were public from their ingest on: their creation is the best
    # datestamp there is.
    op.execute("UPDATE records SET public_changed_at = created_at WHERE access_status = 'open'")
    op.create_table('harvest_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('base_url', sa.String(length=1024), nullable=False),
    sa.Column('origin_url', sa.String(length=1024), nullable=False),
    sa.Column('set_spec', sa.String(length=255), nullable=True),
    sa.Column('metadata_prefix', sa.String(length=64), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_from', sa.String(length=32), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.String(length=16), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_harvest_sources')),
    sa.UniqueConstraint('base_url', name=op.f('uq_harvest_sources_base_url'))
    )
    with op.batch_alter_table('harvest_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_harvest_sources_origin_url'), ['origin_url'], unique=False)
    op.create_table('harvested_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.String(length=1024), nullable=False),
    sa.Column('doc_id', sa.String(length=512), nullable=False),
    sa.Column('datestamp', sa.String(length=32), nullable=False),
    sa.Column('harvested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['harvest_sources.id'], name=op.f('fk_harvested_records_source_id_harvest_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_harvested_records')),
    sa.UniqueConstraint('source_id', 'identifier', name=op.f('uq_harvested_records_source_id'))
    )
    with op.batch_alter_table('harvested_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_harvested_records_source_id'), ['source_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('harvested_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_harvested_records_source_id'))
    op.drop_table('harvested_records')
    with op.batch_alter_table('harvest_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_harvest_sources_origin_url'))
    op.drop_table('harvest_sources')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_public_changed_at'))
        batch_op.drop_column('public_changed_at')
