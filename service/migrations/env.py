"""Alembic environment: migrations run on the connection that service.migrate hands over."""

from alembic import context

from service.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `labgrader migrate` (service.migrate.upgrade), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
