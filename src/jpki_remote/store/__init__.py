"""Database access (SQLAlchemy 2 + Alembic): SQLite by default, PostgreSQL by URL."""

from jpki_remote.store.database import Base, Database, make_engine

__all__ = ["Base", "Database", "make_engine"]
