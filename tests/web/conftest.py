"""The web app over a procedure world (real CA, cards, codes, audit), driven with FastAPI's TestClient."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "procedures"))
from procedure_world import World, make_world

from jpki_remote.store import Database
from jpki_remote.terminal.client import ServerClient
from jpki_remote.terminal.keys import load_or_create_key, public_bytes
from jpki_remote.terminal.service import register_terminal
from jpki_remote.web.app import create_app


@dataclass
class Web:
    world: World
    client: TestClient
    admin_token: str

    def terminal(self, kind: str, tmp: Path, name: str = "t") -> ServerClient:
        key = load_or_create_key(tmp / f"{name}-{kind}.key")
        with self.world.db.session() as s:
            terminal = register_terminal(
                s,
                kind=kind,
                name=name,
                public_key=public_bytes(key),
                municipality_code="131016" if kind == "counter" else None,
            )
            terminal_id = terminal.id
        server = ServerClient("http://testserver", terminal_id, key, http=self.client)
        server.authenticate()
        return server


@pytest.fixture
def web(sqlite_database: Database, tmp_path: Path, faces_dir: Path) -> Web:
    world = make_world(sqlite_database, tmp_path, faces_dir)
    settings = world.settings.with_overrides(admin_token="admin-" + "x" * 30, max_request_bytes=2_000_000)
    app = create_app(settings, db=world.db, ports=world.ports, mount_status=False)
    return Web(world, TestClient(app, raise_server_exceptions=False), settings.admin_token)
