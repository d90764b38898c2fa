"""The agent's HTTP client: terminal authentication and the procedure exchange over the JSON API."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jpki_remote.terminal.service import auth_message


class ServerError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code', '')}: {error.get('message_en', '')}")
        self.status = status
        self.code = error.get("code")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class ServerClient:
    def __init__(
        self, base_url: str, terminal_id: str, key: Ed25519PrivateKey, *, http: httpx.Client | None = None
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=30.0)
        self.terminal_id = terminal_id
        self._key = key
        self._token: str | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, auth: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if auth and self._token else {}
        response = self.http.request(method, f"/api/v1{path}", json=body, headers=headers)
        if response.status_code == 401 and auth and self._token is not None:
            self.authenticate()  # short-lived session ran out: re-authenticate once
            headers = {"Authorization": f"Bearer {self._token}"}
            response = self.http.request(method, f"/api/v1{path}", json=body, headers=headers)
        data = response.json()
        if response.status_code >= 400:
            raise ServerError(response.status_code, data)
        return data

    def authenticate(self) -> str:
        nonce = self._call("POST", "/terminals/challenge", {"terminal_id": self.terminal_id}, auth=False)["nonce"]
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        signature = self._key.sign(auth_message(self.terminal_id, raw))
        session = self._call(
            "POST",
            "/terminals/session",
            {"terminal_id": self.terminal_id, "nonce": nonce, "signature": _b64(signature)},
            auth=False,
        )
        self._token = session["token"]
        return self._token

    def whoami(self) -> dict[str, Any]:
        """This terminal as the server knows it: ``{terminal_id, kind, name, municipality_code, role}``."""
        return self._call("GET", "/terminals/me")

    def browser_link(self) -> str:
        return self._call("POST", "/terminals/browser-link")["code"]

    def start(self, kind: str, target: str, card_id: str, **extra: Any) -> dict[str, Any]:
        return self._call("POST", "/procedures", {"kind": kind, "target": target, "card_id": card_id, **extra})

    def view(self, procedure_id: str) -> dict[str, Any]:
        return self._call("GET", f"/procedures/{procedure_id}")

    def active_procedure(self) -> dict[str, Any] | None:
        return self._call("GET", "/terminals/procedure").get("procedure")

    def exchange(self, procedure_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """One exchange call; a body with ``new_pin`` goes to the new-PIN route (never logged)."""
        route = "new-pin" if body.get("new_pin") is not None else "exchange"
        return self._call("POST", f"/procedures/{procedure_id}/{route}", body)

    def close(self) -> None:
        self.http.close()
