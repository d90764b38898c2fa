"""Database access (SQLAlchemy 2 + Alembic): SQLite by default, PostgreSQL by URL."""

from jpki_remote.store.database import Base, Database, database_unavailable, make_engine

__all__ = ["Base", "Database", "database_unavailable", "make_engine"]
