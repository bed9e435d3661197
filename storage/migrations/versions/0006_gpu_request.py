"""Which GPUs a run asked for (the Train tab's "GPUs for this run"): empty means the app's default.

Revision ID: 0006
Revises: 0005

"all" (every GPU the app may use), "one", or the GPU ids themselves ("0,2"). The queue hands
the run such a set when one is free (backend.jobs.launch.GpuPool); `worker_gpus` then says what
it got.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("gpu_request", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("gpu_request")
