"""Datasets, runs and metrics.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("text_column", sa.String(200), nullable=False),
        sa.Column("label_column", sa.String(200), nullable=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("train_rows", sa.Integer, nullable=False),
        sa.Column("validation_rows", sa.Integer, nullable=False),
        sa.Column("labels_json", sa.Text, nullable=False),
        sa.Column("classes_json", sa.Text, nullable=False),
        sa.Column("report_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_datasets_content_hash", "datasets", ["content_hash"], unique=True)
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("output_dir", sa.Text, nullable=True),
        sa.Column("metrics_json", sa.Text, nullable=False),
    )
    op.create_index("ix_runs_dataset_id", "runs", ["dataset_id"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("time", sa.DateTime, nullable=False),
    )
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_id", "key", "step"])


def downgrade() -> None:
    op.drop_table("metrics")
    op.drop_table("runs")
    op.drop_table("datasets")
