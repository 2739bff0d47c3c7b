"""checks: 四性检测 runs, items and manual results (issue 12)

Revision ID: 0009_checks
Revises: 0008_review
"""

from alembic import op
import sqlalchemy as sa


revision = "0009_checks"
down_revision = "0008_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("archive_id", sa.Integer(), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("fraction", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report_file", sa.Text(), nullable=True),
        sa.Column("failures_file", sa.Text(), nullable=True),
        sa.Column("report_sha256", sa.String(length=64), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["archive_id"], ["archives.id"], name=op.f("fk_check_runs_archive_id_archives")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_runs")),
    )
    with op.batch_alter_table("check_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_check_runs_archive_id"), ["archive_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_check_runs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_check_runs_stage"), ["stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_check_runs_transfer_id"), ["transfer_id"], unique=False)

    op.create_table(
        "manual_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("archive_id", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("agent", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["archive_id"], ["archives.id"], name=op.f("fk_manual_checks_archive_id_archives")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_checks")),
    )
    with op.batch_alter_table("manual_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manual_checks_archive_id"), ["archive_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_manual_checks_code"), ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_manual_checks_transfer_id"), ["transfer_id"], unique=False)

    op.create_table(
        "check_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("property", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["check_runs.id"], name=op.f("fk_check_items_run_id_check_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_items")),
        sa.UniqueConstraint("run_id", "code", name=op.f("uq_check_items_run_id")),
    )
    with op.batch_alter_table("check_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_check_items_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("check_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_check_items_run_id"))

    op.drop_table("check_items")
    with op.batch_alter_table("manual_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manual_checks_transfer_id"))
        batch_op.drop_index(batch_op.f("ix_manual_checks_code"))
        batch_op.drop_index(batch_op.f("ix_manual_checks_archive_id"))

    op.drop_table("manual_checks")
    with op.batch_alter_table("check_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_check_runs_transfer_id"))
        batch_op.drop_index(batch_op.f("ix_check_runs_stage"))
        batch_op.drop_index(batch_op.f("ix_check_runs_created_at"))
        batch_op.drop_index(batch_op.f("ix_check_runs_archive_id"))

    op.drop_table("check_runs")
