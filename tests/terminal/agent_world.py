"""``AgentWorld``: the web app on a real loopback port, cards in a card directory, terminal agents started with
:func:`jpki_remote.terminal.launch.start_agent`, and a ``Page`` doing what the pages' scripts do over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from procedure_world import World, make_world

from jpki_remote.card.store import CardStore
from jpki_remote.store import Database
from jpki_remote.terminal.keys import load_or_create_key, public_bytes
from jpki_remote.terminal.launch import RunningAgent, start_agent
from jpki_remote.terminal.local_api import TOKEN_HEADER, LocalServer
from jpki_remote.terminal.readers import VirtualReader
from jpki_remote.terminal.service import register_terminal
from jpki_remote.web.app import create_app

API = "/api/v1"


@dataclass
class Page:
    """The browser page of one terminal: a browser session on the server, the agent's loopback API with its token."""

    server: httpx.Client
    agent: httpx.Client
    token: str
    csrf: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **self.csrf}

    def sign_in(self, db: Database, staff_id: str, password: str = "counter password 1") -> None:  # noqa: S107 - test account
        """A member of counter staff signs in on this page (cookie session; CSRF header on every POST)."""
        from jpki_remote.terminal.models import StaffAccount
        from jpki_remote.terminal.staff import add_staff

        with db.session() as s:
            if s.get(StaffAccount, staff_id) is None:
                add_staff(s, staff_id, password, municipality_code="131016")
        answer = self.server.post(f"{API}/login/staff", json={"staff_id": staff_id, "password": password})
        assert answer.status_code == 200, answer.text
        self.csrf = {"X-CSRF-Token": answer.json()["csrf_token"]}

    def api(self, method: str, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return self.server.request(method, API + path, json=json, headers=headers, **kw)

    def ok(self, method: str, path: str, json: Any = None, **kw: Any) -> dict[str, Any]:
        response = self.api(method, path, json, **kw)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()

    def status(self) -> dict[str, Any]:
        response = self.agent.get("/v1/status")
        assert response.status_code == 200, response.text
        return response.json()

    def follow(
        self,
        procedure_id: str,
        pins: dict[tuple[str, bool], str],
        *,
        on_view: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Poll the procedure and the agent like the page does; type PINs when the agent asks; stop when it ends."""
        deadline = time.monotonic() + timeout
        answered: set[tuple[str, bool, int]] = set()
        view: dict[str, Any] = {}
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = self.ok("GET", f"/procedures/{procedure_id}")
            if view["status"] != "active":
                return view
            status = self.status()
            request = status["pin_request"] if status["procedure_id"] == procedure_id else None
            if request is not None:
                key = (request["kind"], request["new"], request["attempt"])
                if key not in answered:
                    answered.add(key)
                    value = pins[(request["kind"], request["new"])]
                    sent = self.agent.post(
                        "/v1/pin", json={"kind": request["kind"], "value": value, "new": request["new"]}
                    )
                    assert sent.status_code == 204, sent.text
                    continue
            if on_view is not None:
                on_view(view)
            time.sleep(0.1)
        raise AssertionError(f"procedure {procedure_id} did not end in {timeout} s: {view}, agent {status}")


@dataclass
class AgentWorld:
    world: World
    server: LocalServer
    cards: CardStore
    tmp: Path
    agents: list[RunningAgent] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.base_url

    def put_in_directory(self, card: Any) -> str:
        """A world card (made in memory) saved into the card directory the agents' virtual readers use."""
        self.cards.add(card.state)
        return card.state.card_id

    def register(self, kind: str, name: str = "t") -> tuple[str, Any]:
        key = load_or_create_key(self.tmp / f"{name}-{kind}.key")
        with self.world.db.session() as s:
            terminal = register_terminal(
                s,
                kind=kind,
                name=name,
                public_key=public_bytes(key),
                municipality_code="131016" if kind == "counter" else None,
            )
            return terminal.id, key

    def agent(self, kind: str, name: str = "t", **options: Any) -> RunningAgent:
        terminal_id, key = self.register(kind, name)
        agent = start_agent(
            server_url=self.url,
            terminal_id=terminal_id,
            key=key,
            reader=VirtualReader(self.cards.directory),
            listen="127.0.0.1:0",
            poll_seconds=0.1,
            **options,
        )
        self.agents.append(agent)
        return agent

    def client(self, base_url: str, **headers: str) -> httpx.Client:
        client = httpx.Client(base_url=base_url, timeout=30.0, headers=headers)
        self.clients.append(client)
        return client

    def page(self, agent: RunningAgent) -> Page:
        """What the page does on load: redeem the link code from its URL fragment, keep the agent token."""
        server = self.client(self.url)
        code = agent.service.client.browser_link()
        token = server.post(f"{API}/terminals/browser-session", json={"code": code}).json()["token"]
        return Page(server, self.client(agent.base_url, **{TOKEN_HEADER: agent.token}), token)

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        for client in self.clients:
            client.close()
        self.server.stop()


def make_agent_world(db: Database, tmp: Path, faces_dir: Path, **settings: Any) -> AgentWorld:
    world = make_world(db, tmp, faces_dir)
    world.settings = world.settings.with_overrides(admin_token="admin-" + "y" * 30, **settings)
    app = create_app(world.settings, db=world.db, ports=world.ports, mount_status=False)
    server = LocalServer(app, "127.0.0.1", 0).start()
    return AgentWorld(world, server, CardStore(tmp / "cards"), tmp)
