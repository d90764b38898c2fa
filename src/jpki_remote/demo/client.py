"""A registered terminal as the scripted demo drives it: the real terminal agent (terminal authentication, the APDU
relay of :mod:`jpki_remote.terminal.agent` over a virtual-card reader) and the browser page bound to the same
terminal (a browser session from a one-time link), both talking to the server only through the JSON API.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from jpki_remote.demo.provision import DemoTerminal
from jpki_remote.terminal.agent import AgentCore, AgentError, PinPad, drive
from jpki_remote.terminal.client import ServerClient
from jpki_remote.terminal.keys import load_or_create_key

API = "/api/v1"
_CODE = re.compile(r"(?<!\d)(\d{6,8})(?!\d)")


class ApiFailure(Exception):
    """The server answered with an error (``status``, stable ``code``)."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = str(error.get("code") or f"http_{status}")
        super().__init__(f"HTTP {status} {self.code}: {error.get('message_en', '')}".strip())


class TerminalClient:
    """One terminal: ``agent`` (its authenticated agent session) and the page's browser session."""

    def __init__(self, base_url: str, terminal: DemoTerminal, cards_dir: Path) -> None:
        self.terminal = terminal
        self.cards_dir = cards_dir
        self.http = httpx.Client(base_url=base_url, timeout=180.0)
        self.agent = ServerClient(base_url, terminal.terminal_id, load_or_create_key(Path(terminal.key_file)))
        self.agent.authenticate()
        code = self.agent.browser_link()
        self._token = self.call("POST", "/terminals/browser-session", {"code": code}, auth=False)["token"]

    # ---- the page (browser session) ------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, auth: bool = True, **extra: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        response = self.http.request(method, API + path, json=body, headers=headers, **extra)
        try:
            data = response.json()
        except ValueError:
            data = {"error": {"code": f"http_{response.status_code}"}}
        if response.status_code >= 400:
            raise ApiFailure(response.status_code, data)
        return data

    def start(self, kind: str, target: str, card_id: str, known_pin: str | None = None) -> dict[str, Any]:
        body = {"kind": kind, "target": target, "card_id": card_id}
        if known_pin:
            body["known_pin"] = known_pin
        return self.call("POST", "/procedures", body)

    def view(self, procedure_id: str) -> dict[str, Any]:
        return self.call("GET", f"/procedures/{procedure_id}")

    def submit_face(self, procedure_id: str, frames: list[bytes]) -> dict[str, Any]:
        import base64

        encoded = [base64.b64encode(frame).decode() for frame in frames]
        return self.call("POST", f"/procedures/{procedure_id}/face", {"frames": encoded})

    def request_code(self, procedure_id: str) -> dict[str, Any]:
        return self.call("POST", f"/procedures/{procedure_id}/code/request", {})

    def verify_code(self, procedure_id: str, code: str) -> dict[str, Any]:
        return self.call("POST", f"/procedures/{procedure_id}/code/verify", {"code": code})

    def cancel(self, procedure_id: str) -> dict[str, Any]:
        return self.call("POST", f"/procedures/{procedure_id}/cancel", {})

    # ---- the agent and its reader --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def inserted(self, card_id: str) -> Iterator[Any]:
        """The virtual card ``card_id`` in this terminal's reader (an in-process transport, saved as it changes)."""
        from jpki_remote.card.store import CardStore
        from jpki_remote.card.transports.inprocess import InProcessTransport

        transport = InProcessTransport(CardStore(self.cards_dir).open(card_id))
        try:
            yield transport
        finally:
            transport.close()

    def relay(self, procedure_id: str, transport: Any, pinpad: PinPad) -> dict[str, Any]:
        """The agent's part: relay the card until the server says wait (a proof in the page), done or failed."""
        core = AgentCore(transport.transmit, pinpad)
        reply = self.agent.exchange(procedure_id, {"seq": None, "responses": []})
        try:
            return drive(lambda body: self.agent.exchange(procedure_id, body), core, reply)
        except AgentError as exc:
            asked = getattr(pinpad, "asked", None)
            raise AgentError(f"{exc} (PIN pad asked for: {', '.join(asked or []) or 'nothing'})") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("DELETE", "/terminals/session")
        self.agent.close()
        self.http.close()


def latest_code(db: Any, address: str) -> str | None:
    """The newest security code sent to ``address``, read from the development outbox (demo only)."""
    from jpki_remote.proofing.delivery.outbox import dev_outbox

    for entry in dev_outbox(db, address=address, limit=10):
        if "コード" in entry.subject or "code" in entry.subject.lower():
            match = _CODE.search(entry.body)
            if match:
                return match.group(1)
    return None
