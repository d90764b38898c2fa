"""Every procedure view from the API carries ``completed_at`` / ``finished_at`` and ``code_tries_left``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from procedure_world import PINS, code_from_outbox
from web_world import Web

from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad, drive

API = "/api/v1"


def _auth(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server._token}"}


def _recent(stamp: str | None) -> bool:
    return stamp is not None and abs(datetime.fromisoformat(stamp) - datetime.now(UTC)) < timedelta(minutes=2)


def test_code_tries_left_on_every_view_and_completed_at_at_the_end(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    kiosk = web.terminal("kiosk", tmp_path)
    budget = web.world.settings.security_code_max_failures
    reply = kiosk.start("revocation", "signature", issued.card_id)
    assert reply["code_tries_left"] == budget and reply["completed_at"] is None and reply["finished_at"] is None
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}))
    reply = drive(lambda body: kiosk.exchange(reply["id"], body), core, reply)
    assert reply["waiting_for"] == "security_code" and reply["code_tries_left"] == budget
    pid = reply["id"]
    web.client.post(f"{API}/procedures/{pid}/code/request", headers=_auth(kiosk), json={})
    code = code_from_outbox(web.world)
    wrong = "000000" if code != "000000" else "111111"
    answer = web.client.post(f"{API}/procedures/{pid}/code/verify", headers=_auth(kiosk), json={"code": wrong}).json()
    assert answer["code_tries_left"] == budget - 1
    view = web.client.get(f"{API}/procedures/{pid}", headers=_auth(kiosk)).json()
    assert view["code_tries_left"] == budget - 1 and view["completed_at"] is None  # not only on the verify answer
    done = web.client.post(f"{API}/procedures/{pid}/code/verify", headers=_auth(kiosk), json={"code": code}).json()
    if done["status"] == "active":
        done = drive(lambda body: kiosk.exchange(pid, body), core, done)
    view = web.client.get(f"{API}/procedures/{pid}", headers=_auth(kiosk)).json()
    assert view["status"] == "completed", view
    assert _recent(view["completed_at"]) and view["finished_at"] == view["completed_at"]


def test_no_code_proof_no_tries_and_a_cancel_is_finished_not_completed(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    kiosk = web.terminal("kiosk", tmp_path)
    reply = kiosk.start("pin_change", "auth_pin", issued.card_id)
    assert reply["code_tries_left"] is None  # a PIN change needs no security code
    cancelled = web.client.post(f"{API}/procedures/{reply['id']}/cancel", headers=_auth(kiosk), json={}).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["completed_at"] is None and _recent(cancelled["finished_at"])
    current = web.client.get(f"{API}/terminals/procedure", headers=_auth(kiosk)).json()
    assert current["procedure"] is None
