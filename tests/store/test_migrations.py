"""The Alembic migrations produce exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from jpki_remote.store import Database
from jpki_remote.store.migrate import upgrade
from jpki_remote.store.schema import load_models


def test_migrated_schema_matches_the_models(database: Database) -> None:
    metadata = load_models().metadata
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_every_model_table_exists_after_upgrade(database: Database) -> None:
    tables = set(inspect(database.engine).get_table_names())
    assert set(load_models().metadata.tables) <= tables


def test_upgrade_is_idempotent(database: Database) -> None:
    upgrade(database)
    upgrade(database)
    assert "alembic_version" in inspect(database.engine).get_table_names()
