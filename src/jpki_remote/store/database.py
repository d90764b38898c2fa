"""Database access: one SQLAlchemy engine + session factory per process.

SQLite (embedded default) and PostgreSQL are both first-class. Tables are declared by each domain package in its
own ``models.py`` on :class:`Base`; :mod:`jpki_remote.store.schema` imports them all so Alembic sees the full model.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event, exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

CONNECT_TIMEOUT_SECONDS = 10  # PostgreSQL: give up connecting after this (libpq's default is to wait for TCP)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _drop_result_rows(record: logging.LogRecord) -> bool:
    """SQLAlchemy logs fetched rows at DEBUG; rows hold contacts, encodings and outbox messages, so never log them."""
    return record.levelno > logging.DEBUG


# Statements (INFO) may be logged, without their parameters (hide_parameters below); result rows never.
logging.getLogger("sqlalchemy.engine.Engine").addFilter(_drop_result_rows)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout, parent dirs are created."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: SQL logging must never write bound values (contacts, encodings, outbox messages).
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pool_pre_ping: a pooled connection the database dropped (restart, failover, network cut) is replaced on
    # checkout instead of failing the request; connect_timeout: a database that does not answer fails the request
    # (503, see web.errors) after that many seconds instead of hanging it for the TCP timeout.
    connect_args = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True, connect_args=connect_args
    )


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be used *right now* — connection refused or lost, server
    shutting down, connection pool exhausted, SQLite busy — so the request may simply be tried again later (the
    API answers 503 with Retry-After). Programming and data errors (no such table, constraint violated) are not."""
    if isinstance(error, exc.TimeoutError):  # no pooled connection free within pool_timeout
        return True
    if not isinstance(error, exc.DBAPIError):
        # a driver's own error, from a raw DB-API cursor (the CRL publisher streams rows that way)
        return _driver_error_unavailable(error)
    if error.connection_invalidated:
        return True
    if not isinstance(error, (exc.OperationalError, exc.InterfaceError)):
        return False
    return _driver_error_unavailable(error.orig, wrapped=True)


def _driver_error_unavailable(error: BaseException, *, wrapped: bool = False) -> bool:
    """``error`` as raised by sqlite3 or psycopg: an outage? (``wrapped``: SQLAlchemy already classed it as an
    OperationalError or InterfaceError.)"""
    if isinstance(error, sqlite3.OperationalError):
        # sqlite3 raises OperationalError for "no such table" as well; only a busy database is transient
        return "locked" in str(error) or "busy" in str(error)
    if type(error).__module__.split(".")[0] == "psycopg":
        import psycopg

        # connection failures, admin shutdown, cancelled statements, serialization failures
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
    return wrapped and not isinstance(error, sqlite3.Error)


class Database:
    """An engine plus a session factory. ``with db.session() as s:`` commits on success, rolls back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def create_schema(self) -> None:
        """Bring the schema to the newest version (Alembic ``upgrade head``)."""
        from jpki_remote.store.migrate import upgrade

        upgrade(self)

    def dispose(self) -> None:
        self.engine.dispose()
