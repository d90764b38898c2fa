"""Putting the agent together: authenticate to the server, open the reader, serve the loopback API, print/open the
terminal's page. Used by ``jpki-remote terminal agent`` and by tests and the demo (``start_agent``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jpki_remote.terminal.client import ServerClient
from jpki_remote.terminal.local_api import LocalServer, create_local_app, new_token, origin_of, page_url
from jpki_remote.terminal.pinpad import DEFAULT_TIMEOUT, PagePinPad
from jpki_remote.terminal.readers import Reader
from jpki_remote.terminal.relay import AgentService, TerminalIdentity
from jpki_remote.terminal.retry import RETRY_SECONDS

log = logging.getLogger(__name__)
DEFAULT_LISTEN = "127.0.0.1:8765"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port); the host must be the loopback."""
    from jpki_remote.terminal.local_api import is_loopback

    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen takes HOST:PORT, not {value!r}")
    if not is_loopback(host):
        raise ValueError(f"the agent listens on the loopback only (127.0.0.1, ::1), not {host!r}")
    return host, int(port)


@dataclass
class RunningAgent:
    service: AgentService
    server: LocalServer
    token: str
    server_url: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def launcher_url(self) -> str:
        return self.server.base_url + "/"

    def page_url(self, code: str | None) -> str:
        return page_url(self.server_url, self.service.identity.kind, self.base_url, code, self.token)

    def stop(self) -> None:
        self.service.close()
        self.server.stop()
        self.service.client.close()


def start_agent(
    *,
    server_url: str,
    terminal_id: str,
    key: Ed25519PrivateKey,
    reader: Reader,
    listen: str = DEFAULT_LISTEN,
    origins: set[str] | None = None,
    http: httpx.Client | None = None,
    pin_timeout: float = DEFAULT_TIMEOUT,
    poll_seconds: float = 0.7,
    retry_seconds: float = RETRY_SECONDS,
) -> RunningAgent:
    """Authenticate as ``terminal_id``, serve the loopback API on ``listen`` and return the running agent."""
    client = ServerClient(server_url, terminal_id, key, http=http)
    client.authenticate()
    me: dict[str, Any] = client.whoami()
    identity = TerminalIdentity(terminal_id, str(me.get("kind")), str(me.get("name") or terminal_id))
    pinpad = PagePinPad(timeout=pin_timeout)
    service = AgentService(client, reader, pinpad, identity, poll_seconds=poll_seconds, retry_seconds=retry_seconds)
    token = new_token()
    host, port = parse_listen(listen)
    holder: dict[str, LocalServer] = {}
    app = create_local_app(
        service,
        token=token,
        origins=origins or {origin_of(server_url)},
        server_url=server_url,
        agent_base=lambda: holder["server"].base_url,
    )
    holder["server"] = LocalServer(app, host, port).start()
    return RunningAgent(service, holder["server"], token, server_url)


def terminal_id_file(key_file: Path) -> Path:
    """Where ``terminal register`` notes the id of the terminal whose key is ``key_file``."""
    return key_file.with_name(key_file.name + ".id")
