"""The procedures' own 429 answers say when to try again: ``Retry-After`` (whole seconds) on a start refused by the
rate limits — the seconds until the lockout ends — and on a security code asked for again within its cooldown — the
seconds until the next one may be sent; declared in the OpenAPI document like the terminal challenges' 429."""

from __future__ import annotations

import secrets
from pathlib import Path

from procedure_world import PINS
from web_world import Web

from jpki_remote.proofing.limits import DEFAULT_RULES, AttemptKind, Scope
from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad, drive

API = "/api/v1"
ADDRESS_STARTS = next(r for r in DEFAULT_RULES if r.kind is AttemptKind.START and r.scope is Scope.ADDRESS)


def _auth(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server._token}"}


def _card_id() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


def test_a_start_over_the_address_limit_says_when_the_lockout_ends(web: Web, tmp_path: Path) -> None:
    app = web.terminal("app", tmp_path)  # online: every start of this client address is counted
    body = {"kind": "renewal", "target": "certificates"}
    for _ in range(ADDRESS_STARTS.limit):
        started = web.client.post(f"{API}/procedures", headers=_auth(app), json={**body, "card_id": _card_id()})
        assert started.status_code == 201, started.text
        assert "retry-after" not in started.headers
        web.client.post(f"{API}/procedures/{started.json()['id']}/cancel", headers=_auth(app), json={})
    refused = web.client.post(f"{API}/procedures", headers=_auth(app), json={**body, "card_id": _card_id()})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited", refused.text
    seconds = int(refused.headers["Retry-After"])
    assert ADDRESS_STARTS.lockout_seconds - 60 <= seconds <= ADDRESS_STARTS.lockout_seconds
    again = web.client.post(f"{API}/procedures", headers=_auth(app), json={**body, "card_id": _card_id()})
    assert again.status_code == 429 and 1 <= int(again.headers["Retry-After"]) <= seconds  # counting down


def test_a_code_asked_for_again_too_soon_says_when_the_next_may_be_sent(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    kiosk = web.terminal("kiosk", tmp_path)
    reply = kiosk.start("revocation", "signature", issued.card_id)
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}))
    reply = drive(lambda body: kiosk.exchange(reply["id"], body), core, reply)
    assert reply["waiting_for"] == "security_code", reply
    path = f"{API}/procedures/{reply['id']}/code/request"
    sent = web.client.post(path, headers=_auth(kiosk), json={})
    assert sent.status_code == 200 and "retry-after" not in sent.headers, sent.text
    refused = web.client.post(path, headers=_auth(kiosk), json={})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "code_refused", refused.text
    cooldown = web.world.settings.security_code_resend_seconds
    assert cooldown - 10 <= int(refused.headers["Retry-After"]) <= cooldown


def test_the_procedure_429s_are_documented_with_retry_after(web: Web) -> None:
    paths = web.client.get(f"{API}/openapi.json").json()["paths"]
    for path in ("/procedures", "/procedures/{procedure_id}/code/request"):
        answer = paths[f"{API}{path}"]["post"]["responses"]["429"]
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, path
        assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}, path
