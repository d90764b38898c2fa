"""Fixtures of the security tests (the world and web helpers are in :mod:`secworld`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from secworld import SecWeb, World, build_web, make_world

from jpki_remote.store import Database


@pytest.fixture
def world(sqlite_database: Database, tmp_path: Path, faces_dir: Path) -> World:
    return make_world(sqlite_database, tmp_path, faces_dir)


@pytest.fixture
def sec_web(sqlite_database: Database, tmp_path: Path, faces_dir: Path) -> SecWeb:
    return build_web(sqlite_database, tmp_path, faces_dir)


@pytest.fixture(scope="module")
def module_web(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[SecWeb]:
    """One world per module (the fuzzing and enumeration tests share it; none of them needs a clean slate)."""
    tmp = tmp_path_factory.mktemp("secweb")
    db = Database(f"sqlite:///{tmp / 'jpki.db'}")
    db.create_schema()
    try:
        yield build_web(db, tmp, faces_dir)
    finally:
        db.dispose()
