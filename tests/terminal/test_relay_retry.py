"""The relay's retry budget: a server that answers 5xx (503 while its database is down) or cannot be reached is
tried again with the same request until ``retry_seconds`` are spent, the relay showing ``reconnecting``; then the
relay ends ``error`` with a clear code. A refusal (4xx) is never retried. The real outage is in tests/faults."""

from __future__ import annotations

from typing import Any

import httpx

from jpki_remote.terminal.client import ServerError
from jpki_remote.terminal.pinpad import PagePinPad
from jpki_remote.terminal.relay import RETRY_SECONDS, AgentService, TerminalIdentity

PROCEDURE = "p" * 20
UNAVAILABLE = {"error": {"code": "unavailable", "message_en": "The service is temporarily unavailable."}}


class EmptyReader:
    name = "none"

    def transmit(self, apdu: bytes) -> bytes:
        raise AssertionError("no card step in these tests")

    def present(self) -> bool:
        return False

    def card_id(self) -> str | None:
        return None

    def info(self) -> None:
        return None

    def close(self) -> None:
        pass


class FlakyServer:
    """Fails the first ``failures`` exchange calls with ``error``, then answers that the procedure is done."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.bodies: list[dict[str, Any]] = []
        self.service: AgentService | None = None
        self.states: list[str] = []

    def exchange(self, procedure_id: str, body: dict[str, Any]) -> dict[str, Any]:
        assert procedure_id == PROCEDURE and self.service is not None
        self.bodies.append(dict(body))
        self.states.append(self.service.status()["relay"]["state"])
        if len(self.bodies) <= self.failures:
            raise self.error
        return {"exchange": {"status": "done", "seq": 0, "requests": []}}


def _relay(server: FlakyServer, retry_seconds: float) -> AgentService:
    service = AgentService(
        server,  # type: ignore[arg-type]
        EmptyReader(),
        PagePinPad(),
        TerminalIdentity("kiosk-1", "kiosk", "test kiosk"),
        retry_seconds=retry_seconds,
        retry_delays=(0.0,) * 8,
    )
    server.service = service
    service.drive(PROCEDURE)
    return service


def test_503_is_retried_with_the_same_request_until_the_server_answers() -> None:
    server = FlakyServer(5, ServerError(503, UNAVAILABLE))
    service = _relay(server, RETRY_SECONDS)
    assert service.wait(10) == "done"
    assert len(server.bodies) == 6 and all(b == server.bodies[0] for b in server.bodies)
    assert server.states[0] == "running" and set(server.states[1:]) == {"reconnecting"}
    assert service.status()["relay"] == {"state": "done", "error": None}


def test_connection_refused_is_retried_too() -> None:
    server = FlakyServer(3, httpx.ConnectError("connection refused"))
    assert _relay(server, RETRY_SECONDS).wait(10) == "done"
    assert len(server.bodies) == 4


def test_budget_spent_ends_the_relay_with_the_server_error_code() -> None:
    server = FlakyServer(100, ServerError(503, UNAVAILABLE))
    service = _relay(server, 0.0)  # no time to retry: the first failure is the last
    assert service.wait(10) == "error"
    assert len(server.bodies) == 1
    assert service.status()["relay"] == {"state": "error", "error": "unavailable"}


def test_unreachable_server_ends_the_relay_with_server_unreachable() -> None:
    server = FlakyServer(100, httpx.ConnectError("connection refused"))
    service = _relay(server, 0.0)
    assert service.wait(10) == "error"
    assert service.status()["relay"]["error"] == "server_unreachable"


def test_a_refusal_is_not_retried() -> None:
    server = FlakyServer(1, ServerError(409, {"error": {"code": "out_of_sequence"}}))
    service = _relay(server, RETRY_SECONDS)
    assert service.wait(10) == "error"
    assert len(server.bodies) == 1
    assert service.status()["relay"]["error"] == "out_of_sequence"


class OneCardStep:
    """A card step, then the server is unavailable for the answers (``outage`` calls), then it is done."""

    def __init__(self, outage: int) -> None:
        self.outage = outage
        self.bodies: list[dict[str, Any]] = []

    def exchange(self, procedure_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(dict(body))
        if len(self.bodies) == 1:
            return {"state": "generate_keys", "exchange": {"status": "card", "seq": 7, "requests": [{"apdu": "00a4"}]}}
        if body.get("responses") and self.outage > 0:
            self.outage -= 1
            raise ServerError(503, UNAVAILABLE)
        return {"exchange": {"status": "done", "seq": 8, "requests": []}}


class AnsweringReader(EmptyReader):
    generation = 0

    def transmit(self, apdu: bytes) -> bytes:
        return b"\x90\x00"

    def present(self) -> bool:
        return True


def _card_relay(server: OneCardStep) -> AgentService:
    identity = TerminalIdentity("kiosk-1", "kiosk", "test kiosk")
    return AgentService(server, AnsweringReader(), PagePinPad(), identity, retry_seconds=0.0)  # type: ignore[arg-type]


def test_the_card_answers_the_server_missed_are_sent_first_when_driven_again() -> None:
    server = OneCardStep(outage=1)
    service = _card_relay(server)
    service.drive(PROCEDURE)
    assert service.wait(10) == "error"  # the budget was spent on the card's answers
    service.drive(PROCEDURE)  # the page drives the procedure again once the server is back
    assert service.wait(10) == "done"
    answers = {"seq": 7, "responses": ["9000"]}
    assert server.bodies == [{"seq": None, "responses": []}, answers, answers]


def test_cancel_forgets_the_missed_answers() -> None:
    server = OneCardStep(outage=1)
    service = _card_relay(server)
    service.drive(PROCEDURE)
    assert service.wait(10) == "error"
    service.cancel()
    service.drive(PROCEDURE)
    assert service.wait(10) == "done"
    assert server.bodies[-1] == {"seq": None, "responses": []}  # a fresh start: the server re-sends its batch
