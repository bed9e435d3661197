"""Typed columns: a dataset's column schema, input and target columns, optional text column;
where an imported run came from.

Revision ID: 0004
Revises: 0003

Datasets stored before 0004 were all text datasets: their inputs are their text column, their
target is their label column, and both columns were stored as text.
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot drop NOT NULL in place, so Alembic copies the table (keeping
    # its rows, indexes and the runs' foreign key to it).
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("text_column", existing_type=sa.String(200), nullable=True)
        batch.add_column(sa.Column("columns_json", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("input_columns_json", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("target_column", sa.String(200), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("imported_from", sa.Text, nullable=True))

    connection = op.get_bind()
    datasets = sa.table("datasets", sa.column("id", sa.Integer), sa.column("text_column", sa.String),
                        sa.column("label_column", sa.String), sa.column("columns_json", sa.Text),
                        sa.column("input_columns_json", sa.Text), sa.column("target_column", sa.String))
    for row in connection.execute(sa.select(datasets.c.id, datasets.c.text_column, datasets.c.label_column)).all():
        names = [name for name in (row.text_column, row.label_column) if name]
        connection.execute(datasets.update().where(datasets.c.id == row.id).values(
            columns_json=json.dumps([{"name": name, "type": "string"} for name in names]),
            input_columns_json=json.dumps([row.text_column] if row.text_column else []),
            target_column=row.label_column))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("imported_from")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("target_column")
        batch.drop_column("input_columns_json")
        batch.drop_column("columns_json")
        batch.alter_column("text_column", existing_type=sa.String(200), nullable=False)
