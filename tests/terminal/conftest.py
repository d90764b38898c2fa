"""The real web application served by uvicorn on 127.0.0.1 over a procedure world, and real terminal agents with
their loopback API — everything talks HTTP, as on a kiosk (no browser: the tests do what the page's scripts do)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "procedures"))
from agent_world import AgentWorld, make_agent_world

from jpki_remote.store import Database


@pytest.fixture
def agent_world(sqlite_database: Database, tmp_path: Path, faces_dir: Path) -> Iterator[AgentWorld]:
    world = make_agent_world(sqlite_database, tmp_path, faces_dir)
    try:
        yield world
    finally:
        world.close()
