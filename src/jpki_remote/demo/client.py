"""A registered terminal as the scripted demo drives it — exactly as its browser page does.

The terminal is the terminal package's agent (:func:`jpki_remote.terminal.launch.start_agent`) with a virtual
reader, serving its loopback page API. This client plays the page: it opens the terminal's page through the agent's
launcher (a one-time browser link and the agent's per-launch token arrive in the URL fragment), starts procedures
with the page's browser session, asks the agent to relay the card (``/v1/procedures/{id}/drive``), answers the
agent's PIN requests (``/v1/pin``, what the holder types on the keypad), sends the live capture and the security
code, and — at the counter — signs the member of staff in. The server sees nothing it would not see from a browser.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from jpki_remote.demo.provision import DemoTerminal

API = "/api/v1"
TOKEN_HEADER = "X-Agent-Token"  # noqa: S105 - a header name
CSRF_HEADER = "X-CSRF-Token"
_CODE = re.compile(r"(?<!\d)(\d{6,8})(?!\d)")
FOLLOW_TIMEOUT = 180.0
POLL = 0.15


class ApiFailure(Exception):
    """The server or the agent answered with an error (``status``, stable ``code``)."""

    def __init__(self, status: int, body: Any, where: str = "server") -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = str(error.get("code") or f"http_{status}")
        super().__init__(f"{where} HTTP {status} {self.code}: {error.get('message_en', '')}".strip())


class PinNotKnown(Exception):
    """The agent asked for a PIN the script has no value for (the holder would not know what to type)."""


def _answer(response: httpx.Response, where: str) -> Any:
    if response.status_code == 204:
        return None
    try:
        data = response.json()
    except ValueError:
        data = {"error": {"code": f"http_{response.status_code}"}}
    if response.status_code >= 400:
        raise ApiFailure(response.status_code, data, where)
    return data


class TerminalPage:
    """One terminal: its running agent (virtual reader) and its page's sessions."""

    def __init__(self, base_url: str, terminal: DemoTerminal, cards_dir: Path) -> None:
        from jpki_remote.terminal.keys import load_or_create_key
        from jpki_remote.terminal.launch import start_agent
        from jpki_remote.terminal.readers import VirtualReader

        self.terminal = terminal
        self._csrf: str | None = None
        self.reader = VirtualReader(cards_dir)
        self.agent = start_agent(
            server_url=base_url,
            terminal_id=terminal.terminal_id,
            key=load_or_create_key(Path(terminal.key_file)),
            reader=self.reader,
            listen="127.0.0.1:0",
        )
        origin = f"{urlsplit(base_url).scheme}://{urlsplit(base_url).netloc}"
        self.http = httpx.Client(base_url=base_url, timeout=FOLLOW_TIMEOUT, headers={"Origin": origin})
        self.local = httpx.Client(base_url=self.agent.base_url, timeout=60.0, headers={"Origin": origin})
        # the kiosk browser opens the agent's launcher, which sends it to the page with the link code and token
        launched = self.local.get("/", follow_redirects=False)
        if launched.status_code != 303:
            raise ApiFailure(launched.status_code, {}, "agent launcher")
        fragment = parse_qs(urlsplit(launched.headers["location"]).fragment)
        self.local.headers[TOKEN_HEADER] = fragment["agent_token"][0]
        session = self.call("POST", "/terminals/browser-session", {"code": fragment["link"][0]}, auth=False)
        self._token = session["token"]

    # ---- the server, as the page calls it ---------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        if self._csrf and method not in ("GET", "HEAD"):
            headers[CSRF_HEADER] = self._csrf
        return _answer(self.http.request(method, API + path, json=body, headers=headers), "server")

    def sign_in_staff(self, staff_id: str, password: str) -> bool:
        """Counter: the member of staff signs in (cookie session + CSRF token). False when the server has no
        staff sign-in (older API: the staff id then travels in each request)."""
        response = self.http.post(f"{API}/login/staff", json={"staff_id": staff_id, "password": password})
        if response.status_code == 404:
            return False
        self._csrf = _answer(response, "staff sign-in").get("csrf_token")
        return True

    def start(self, kind: str, target: str, known_pin: str | None = None) -> dict[str, Any]:
        """Start ``kind`` for the card the agent reports in its reader (the page never types a card id)."""
        card_id = self.agent_status().get("card_id")
        if not card_id:
            raise ApiFailure(409, {"error": {"code": "no_card_in_reader"}}, "agent")
        body = {"kind": kind, "target": target, "card_id": card_id}
        if known_pin:
            body["known_pin"] = known_pin
        return self.call("POST", "/procedures", body)

    def view(self, procedure_id: str) -> dict[str, Any]:
        return self.call("GET", f"/procedures/{procedure_id}")

    def submit_face(self, procedure_id: str, frames: list[bytes]) -> dict[str, Any]:
        encoded = [base64.b64encode(frame).decode() for frame in frames]
        return self.call("POST", f"/procedures/{procedure_id}/face", {"frames": encoded})

    def request_code(self, procedure_id: str) -> dict[str, Any]:
        return self.call("POST", f"/procedures/{procedure_id}/code/request", {})

    def verify_code(self, procedure_id: str, code: str) -> dict[str, Any]:
        return self.call("POST", f"/procedures/{procedure_id}/code/verify", {"code": code})

    def cancel(self, procedure_id: str) -> dict[str, Any]:
        with contextlib.suppress(ApiFailure, httpx.HTTPError):
            self.local.post("/v1/cancel")
        return self.call("POST", f"/procedures/{procedure_id}/cancel", {})

    # ---- the agent, as the page calls it ----------------------------------------------------------------------------
    def agent_status(self) -> dict[str, Any]:
        return _answer(self.local.get("/v1/status"), "agent")

    def drive(self, procedure_id: str) -> None:
        _answer(self.local.post(f"/v1/procedures/{procedure_id}/drive", json={}), "agent")

    def insert(self, card_id: str) -> None:
        """The holder puts the card on the reader (the virtual reader's slot)."""
        self.reader.insert(card_id)

    def remove(self) -> None:
        self.reader.remove()

    def follow(
        self,
        procedure_id: str,
        *,
        pins: dict[str, str] | None = None,
        new_pins: dict[str, str] | None = None,
        until: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = FOLLOW_TIMEOUT,
    ) -> dict[str, Any]:
        """Poll like the page: answer the agent's PIN requests from ``pins``/``new_pins`` until the procedure has
        ended or ``until(view)`` holds; returns the last view."""
        answered: set[tuple[Any, ...]] = set()
        deadline = time.monotonic() + timeout
        while True:
            view = self.view(procedure_id)
            if view["status"] != "active" or (until is not None and until(view)):
                return view
            status = self.agent_status()
            request = status.get("pin_request")
            if request and status.get("procedure_id") == procedure_id:
                key = (request.get("kind"), bool(request.get("new")), request.get("attempt"))
                if key not in answered:
                    values = (new_pins if request.get("new") else pins) or {}
                    value = values.get(str(request.get("kind")))
                    if value is None:
                        raise PinNotKnown(
                            f"the agent asked for {'a new ' if request.get('new') else ''}"
                            f"{request.get('kind')} (state {view.get('state')})"
                        )
                    _answer(self.local.post("/v1/pin", json={"kind": key[0], "value": value, "new": key[1]}), "agent")
                    answered.add(key)
            if time.monotonic() > deadline:
                relay = status.get("relay") or {}
                raise TimeoutError(
                    f"procedure still {view.get('state')} after {timeout:.0f} s (agent relay {relay.get('state')}: "
                    f"{relay.get('error') or '-'})"
                )
            time.sleep(POLL)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("DELETE", "/terminals/session")
        self.agent.stop()
        self.reader.remove()
        self.local.close()
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
