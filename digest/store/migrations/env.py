"""Alembic environment: the engine, and the metadata when one is needed (autogenerate, compare), come from
the caller (digest.store.db.alembic_config), never from a URL or an import here: the store sits below the
audience, whose tables share the metadata (the composition root, digest.core, registers them)."""

from alembic import context

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("metadata"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
