"""Demo links: a public, token-addressed page per run that can expire or be revoked.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "demos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=True),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_demos_run_id", "demos", ["run_id"])
    op.create_index("ix_demos_token", "demos", ["token"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_demos_token", table_name="demos")
    op.drop_index("ix_demos_run_id", table_name="demos")
    op.drop_table("demos")
