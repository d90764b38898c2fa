"""The web app over a procedure world (real CA, cards, codes, audit), driven with FastAPI's TestClient."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "procedures"))
from procedure_world import make_world
from web_world import Web

from jpki_remote.store import Database
from jpki_remote.web.app import create_app


@pytest.fixture
def web(sqlite_database: Database, tmp_path: Path, faces_dir: Path) -> Web:
    world = make_world(sqlite_database, tmp_path, faces_dir)
    settings = world.settings.with_overrides(admin_token="admin-" + "x" * 30, max_request_bytes=2_000_000)
    app = create_app(settings, db=world.db, ports=world.ports, mount_status=False)
    return Web(world, TestClient(app, raise_server_exceptions=False), settings.admin_token)
