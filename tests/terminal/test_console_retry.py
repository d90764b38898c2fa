"""The console agent (``terminal agent --console``: :func:`jpki_remote.terminal.agent.run_loop`) has the relay's
retry budget (:class:`jpki_remote.terminal.retry.RetryBudget`): a server answering 503 or not reachable is tried
again with the same request until the budget is spent, then the failure is raised; a refusal is never retried."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from jpki_remote.terminal.agent import ScriptedPinPad, run_loop
from jpki_remote.terminal.client import ServerError
from jpki_remote.terminal.retry import RetryBudget

PROCEDURE = "c" * 20
UNAVAILABLE = {"error": {"code": "unavailable", "message_en": "The service is temporarily unavailable."}}
NO_WAIT = (0.0,) * 8


class FlakyServer:
    """Offers one procedure; its exchange calls fail ``failures`` times with ``error``, then it is done (and the
    agent is stopped the next time it looks for a procedure). ``pickup_failures``: the same for the look-up."""

    def __init__(self, stop: threading.Event, failures: int, error: Exception, pickup_failures: int = 0) -> None:
        self.stop = stop
        self.failures = failures
        self.pickup_failures = pickup_failures
        self.error = error
        self.bodies: list[dict[str, Any]] = []
        self.pickups = 0
        self.done = False

    def authenticate(self) -> str:
        return "token"

    def active_procedure(self) -> dict[str, Any] | None:
        self.pickups += 1
        if self.pickups <= self.pickup_failures:
            raise self.error
        if self.done:
            self.stop.set()
            return None
        return {"id": PROCEDURE}

    def exchange(self, procedure_id: str, body: dict[str, Any]) -> dict[str, Any]:
        assert procedure_id == PROCEDURE
        self.bodies.append(dict(body))
        if len(self.bodies) <= self.failures:
            raise self.error
        self.done = True
        return {"state": "done", "exchange": {"status": "done", "seq": 0, "requests": []}}


def _run(server: FlakyServer, seconds: float) -> None:
    def transmit(apdu: bytes) -> bytes:
        raise AssertionError("no card step in these tests")

    run_loop(server, transmit, ScriptedPinPad(), stop=server.stop, poll_seconds=0.0,
             retry=RetryBudget(seconds, NO_WAIT))


def test_503_is_retried_with_the_same_request_until_the_server_answers() -> None:
    server = FlakyServer(threading.Event(), 5, ServerError(503, UNAVAILABLE))
    _run(server, 120.0)
    assert server.done and len(server.bodies) == 6
    assert all(body == {"seq": None, "responses": []} for body in server.bodies)


def test_an_unreachable_server_is_retried_also_when_looking_for_the_procedure() -> None:
    server = FlakyServer(threading.Event(), 2, httpx.ConnectError("connection refused"), pickup_failures=3)
    _run(server, 120.0)
    assert server.done and server.pickups == 3 + 2 and len(server.bodies) == 3


def test_budget_spent_raises_the_server_error() -> None:
    server = FlakyServer(threading.Event(), 100, ServerError(503, UNAVAILABLE))
    with pytest.raises(ServerError) as raised:
        _run(server, 0.0)  # no time to retry: the first failure is the last
    assert raised.value.code == "unavailable" and len(server.bodies) == 1


def test_a_refusal_is_not_retried() -> None:
    server = FlakyServer(threading.Event(), 1, ServerError(409, {"error": {"code": "out_of_sequence"}}))
    with pytest.raises(ServerError) as raised:
        _run(server, 120.0)
    assert raised.value.status == 409 and len(server.bodies) == 1
