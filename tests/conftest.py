"""Fixtures shared by every test package: the shared test data and databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from jpki_remote.store import Database

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("JPKI_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def shared_dir() -> Path:
    """The project's shared/ folder (design, test data): beside the checkout, or $JPKI_SHARED_DIR."""
    configured = os.environ.get("JPKI_SHARED_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for candidate in candidates:
        if (candidate / "data").is_dir():
            return candidate
    raise RuntimeError(f"shared/ test data not found (looked in {candidates}); set JPKI_SHARED_DIR")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """Real face photos: one folder per person, plus _several_faces/ and _hard/."""
    return shared_dir() / "data" / "faces"


def _postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"jpki_test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jpki.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database on SQLite and on PostgreSQL."""
    db = Database(database_url)
    db.create_schema()
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database, for tests whose subject is not the database."""
    db = Database(f"sqlite:///{tmp_path / 'jpki.db'}")
    db.create_schema()
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def postgres_database() -> Iterator[Database]:
    """A migrated PostgreSQL database (for races and other PostgreSQL-only behaviour)."""
    for url in _postgres_database():
        db = Database(url)
        db.create_schema()
        try:
            yield db
        finally:
            db.dispose()
