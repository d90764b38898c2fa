"""A counter renewal driven end to end through the agent's loopback API: the card put on the virtual reader by
``POST /v1/card``, the relay started by ``POST /v1/procedures/{id}/drive``, the auth PIN typed on the "page" and
handed over by ``POST /v1/pin`` — never through the server, never in a log."""

from __future__ import annotations

import logging
import re

import pytest
from agent_world import AgentWorld
from procedure_world import PINS

from jpki_remote.ca.models import CertificateState
from jpki_remote.terminal.relay import wait_for


def _pin_traces(text: str, pin: str) -> list[str]:
    """The PIN as a word, or its ASCII as hex (how an APDU log would show it)."""
    word = re.findall(rf"(?<![0-9A-Za-z]){re.escape(pin)}(?![0-9A-Za-z])", text)
    return word + [h for h in {pin.encode().hex(), pin.encode().hex().upper()} if h in text]


def test_the_log_check_would_see_a_pin() -> None:
    assert _pin_traces("VERIFY 0020008104 31323334 9000", "1234") == ["31323334"]
    assert _pin_traces("pin=1234 sent", "1234") == ["1234"]
    assert _pin_traces("id 9a1234bc, 12345", "1234") == []


def test_counter_renewal_through_the_loopback_api(agent_world: AgentWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    issued = agent_world.world.issue_card()
    card_id = agent_world.put_in_directory(issued.card)
    agent = agent_world.agent("counter", "window-1")
    page = agent_world.page(agent)
    page.sign_in(agent_world.world.db, "staff-1")

    before = page.status()
    assert before["terminal_kind"] == "counter" and before["terminal_name"] == "window-1"
    assert before["card_present"] is False and before["pin_request"] is None
    assert page.agent.post("/v1/card", json={"card_id": card_id}).status_code == 204
    status = page.status()
    assert status["card_present"] and status["card_id"] == card_id
    assert status["card"]["diversification_data"] == issued.card.state.kdd.hex()
    assert status["card"]["expiry"]  # from the common AP's card information

    view = page.ok(
        "POST",
        "/counter/procedures",
        {"kind": "renewal", "target": "certificates", "card_id": card_id},
    )
    assert page.agent.post(f"/v1/procedures/{view['id']}/drive", json={}).status_code == 202

    def staff(view: dict) -> None:
        if view["waiting_for"] == "staff_check":
            page.ok(
                "POST",
                f"/counter/procedures/{view['id']}/staff-check",
                {"documents": ["driver_licence"]},
            )

    final = page.follow(view["id"], {("auth_pin", False): PINS["auth_pin"]}, on_view=staff)
    assert final["status"] == "completed", final
    ca = agent_world.world.ca
    assert ca.status("authentication", issued.auth_serial).state is CertificateState.REVOKED
    assert agent.service.wait(10) == "done"
    assert not agent.service.pinpad.holding and page.status()["pin_request"] is None
    assert agent_world.world.audit.verify().ok
    assert _pin_traces(caplog.text, PINS["auth_pin"]) == []
    assert "relay" in caplog.text  # the relay did log (its states), so the check above looked at something


def test_a_pulled_card_is_reported_and_the_relay_waits_for_it(agent_world: AgentWorld) -> None:
    issued = agent_world.world.issue_card()
    card_id = agent_world.put_in_directory(issued.card)
    agent = agent_world.agent("counter", "window-2")
    page = agent_world.page(agent)
    page.sign_in(agent_world.world.db, "staff-2")
    page.agent.post("/v1/card", json={"card_id": card_id})
    view = page.ok(
        "POST",
        "/counter/procedures",
        {"kind": "renewal", "target": "certificates", "card_id": card_id},
    )
    page.agent.post(f"/v1/procedures/{view['id']}/drive", json={})
    # the holder is asked for the auth PIN; the card is pulled before they type it
    assert wait_for(lambda: page.status()["pin_request"] is not None, 10)
    assert page.status()["pin_request"]["kind"] == "auth_pin"
    assert page.agent.delete("/v1/card").status_code == 204
    typed = {"kind": "auth_pin", "value": PINS["auth_pin"], "new": False}
    assert page.agent.post("/v1/pin", json=typed).status_code == 204
    assert wait_for(lambda: page.status()["relay"]["state"] == "insert_card", 10)
    assert page.ok("GET", f"/procedures/{view['id']}")["status"] == "active"
    page.agent.post("/v1/card", json={"card_id": card_id})

    def staff(view: dict) -> None:
        if view["waiting_for"] == "staff_check":
            page.ok(
                "POST",
                f"/counter/procedures/{view['id']}/staff-check",
                {"documents": ["passport"]},
            )

    final = page.follow(view["id"], {("auth_pin", False): PINS["auth_pin"]}, on_view=staff)
    assert final["status"] == "completed", final
