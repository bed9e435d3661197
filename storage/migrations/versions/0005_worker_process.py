"""The process that trains a run: its pid, the process's start time, host, GPUs and rendezvous port.

Revision ID: 0005
Revises: 0004

A run trains in its own `accelerate launch` process group. A reader decides whether a `running`
run is alive from these columns: on the worker's own host by pid + start time (a pid alone may
be reused by another process), elsewhere by the heartbeat. Runs stored before 0005 have none of
them, and are judged by their heartbeat as before.
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("worker_pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("worker_started", sa.Float, nullable=True))  # seconds since the epoch
        batch.add_column(sa.Column("worker_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("worker_gpus", sa.String(200), nullable=True))  # "0,1"; "" on the CPU
        batch.add_column(sa.Column("worker_port", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in ("worker_port", "worker_gpus", "worker_host", "worker_started", "worker_pid"):
            batch.drop_column(name)
