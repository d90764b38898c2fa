"""Fixtures of the procedure tests; the world itself is in procedure_world.py (shared with tests/web)."""

from __future__ import annotations

from pathlib import Path

import pytest
from procedure_world import PINS, IssuedCard, World, make_world, run_agent

from jpki_remote.store import Database

__all__ = ["PINS", "IssuedCard", "World", "make_world", "run_agent"]


@pytest.fixture
def world(sqlite_database: Database, tmp_path: Path, faces_dir: Path) -> World:
    return make_world(sqlite_database, tmp_path, faces_dir)
