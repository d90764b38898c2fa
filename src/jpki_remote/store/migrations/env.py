"""Alembic environment: runs against the connection handed in by jpki_remote.store.migrate (or the URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from jpki_remote.store.schema import load_models

target_metadata = load_models().metadata
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
