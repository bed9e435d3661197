"""Artifacts table and runs.progress (so the runs table shows progress without reading metrics).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_artifacts_run_id", "artifacts", ["run_id"])
    # A plain ADD COLUMN, not a batch table copy: copying `runs` would drop the old table, and
    # with foreign keys on that cascades into `metrics`.
    op.add_column("runs", sa.Column("progress", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("runs", "progress")
    op.drop_table("artifacts")
