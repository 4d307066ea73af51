"""Alembic environment: the engine comes from the caller (digest.db.upgrade), never from a URL here."""

from alembic import context

from digest.store.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
