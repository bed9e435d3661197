"""Alembic environment: storage.database.migrate passes an open connection via config.attributes."""

from alembic import context

from storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Modelsmith migrations run through storage.database.migrate(engine), "
                       "which passes the connection; there is no alembic.ini to run them from the CLI.")
# render_as_batch: on SQLite, ALTERs it cannot do become a table copy (foreign keys are off then).
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
