"""The ``Web`` test helper (a module with a unique name, so test modules never import from a conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from procedure_world import World

from jpki_remote.terminal.client import ServerClient
from jpki_remote.terminal.keys import load_or_create_key, public_bytes
from jpki_remote.terminal.service import register_terminal


@dataclass
class Web:
    world: World
    client: TestClient
    admin_token: str

    def staff_login(
        self,
        staff_id: str = "staff-1",
        password: str = "correct horse battery",  # noqa: S107 - test account
    ) -> dict[str, str]:
        """Create the staff account (if new) and sign in on this client (cookie session); returns the CSRF header
        every counter POST needs."""
        from jpki_remote.terminal.models import StaffAccount
        from jpki_remote.terminal.staff import add_staff

        with self.world.db.session() as s:
            if s.get(StaffAccount, staff_id) is None:
                add_staff(s, staff_id, password, municipality_code="131016")
        response = self.client.post("/api/v1/login/staff", json={"staff_id": staff_id, "password": password})
        assert response.status_code == 200, response.text
        return {"X-CSRF-Token": response.json()["csrf_token"]}

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
