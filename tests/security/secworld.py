"""The security tests' world: the procedure world (real CA, virtual cards personalised over secure messaging,
security codes in the development outbox, audit log) behind the real web app, plus terminals of each kind.

The world itself comes from ``tests/procedures/procedure_world.py`` (shared with the procedure and web tests); the
terminal helper is local so that these tests do not depend on another package's fixtures.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "procedures"))
from procedure_world import World, make_world

from jpki_remote.store import Database
from jpki_remote.terminal.client import ServerClient
from jpki_remote.terminal.keys import load_or_create_key, public_bytes
from jpki_remote.terminal.service import register_terminal
from jpki_remote.web.app import create_app

API = "/api/v1"
ADMIN_TOKEN = "admin-" + "s" * 40
MUNICIPALITY = "131016"


@dataclass
class SecWeb:
    """The web app over a world; ``terminal(kind)`` registers and authenticates a terminal (agent session)."""

    world: World
    client: TestClient
    admin_token: str
    key_dir: Path
    terminals: list[ServerClient] = field(default_factory=list)

    def client_from(self, address: str) -> TestClient:
        """A client whose requests come from ``address`` (the per-address rate limits see distinct clients)."""
        return TestClient(self.client.app, raise_server_exceptions=False, client=(address, 40000))

    def terminal(self, kind: str, name: str | None = None, *, client: TestClient | None = None) -> ServerClient:
        """A registered, authenticated terminal; by default on its own client address (10.x.y.z)."""
        number = len(self.terminals) + 1
        name = name or f"{kind}-{number}"
        client = client or self.client_from(f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}")
        key = load_or_create_key(self.key_dir / f"{name}.key")
        with self.world.db.session() as s:
            row = register_terminal(
                s,
                kind=kind,
                name=name,
                public_key=public_bytes(key),
                municipality_code=MUNICIPALITY if kind == "counter" else None,
            )
            terminal_id = row.id
        server = ServerClient("http://testserver", terminal_id, key, http=client)
        server.authenticate()
        self.terminals.append(server)
        return server

    def staff_login(self, server: ServerClient, staff_id: str = "sec-staff") -> dict[str, str]:
        """Sign a member of staff in on the counter terminal's client (cookie session; the account is created if
        new); returns the terminal's bearer header with the CSRF header every counter POST needs."""
        from jpki_remote.terminal.models import StaffAccount
        from jpki_remote.terminal.staff import add_staff

        password = "correct horse battery staple"  # test account
        with self.world.db.session() as s:
            if s.get(StaffAccount, staff_id) is None:
                add_staff(s, staff_id, password, municipality_code=MUNICIPALITY)
        response = server.http.post(f"{API}/login/staff", json={"staff_id": staff_id, "password": password})
        assert response.status_code == 200, response.text
        return {**self.auth(server), "X-CSRF-Token": response.json()["csrf_token"]}

    @staticmethod
    def auth(server: ServerClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {server._token}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def build_web(db: Database, tmp: Path, faces_dir: Path) -> SecWeb:
    world = make_world(db, tmp, faces_dir)
    settings = world.settings.with_overrides(admin_token=ADMIN_TOKEN, max_request_bytes=2_000_000)
    app = create_app(settings, db=world.db, ports=world.ports, mount_status=False)
    key_dir = tmp / "terminal-keys"
    key_dir.mkdir(exist_ok=True)
    return SecWeb(world, TestClient(app, raise_server_exceptions=False), ADMIN_TOKEN, key_dir)


