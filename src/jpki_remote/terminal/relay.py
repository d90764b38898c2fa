"""`AgentService`: what the terminal agent does for its page — relay one procedure's card exchanges in a thread.

The page starts a procedure on the server, then asks the agent to ``drive`` it. The relay thread runs the exchange
loop (:func:`~jpki_remote.terminal.agent.drive`) against the reader, with the page's PIN pad; while the server waits
for something done in the browser (face, security code, staff check) it polls the procedure's view (a read, so it
never races the page's own calls) until a card step comes; a card pulled out is reported
(``card_removed``) and the relay waits for a card to be put back (``card_inserted``); a PIN the holder does not
type (cancel, timeout) ends the relay. Transient server failures (connection refused while the server restarts, 5xx —
a 503 while its database is briefly down) are retried with back-off for ``retry_seconds`` (the setting
``JPKI_TERMINAL_RETRY_SECONDS``, 2 minutes by default: a server restart or a database fail-over, not more), the
relay state ``reconnecting`` meanwhile; then the relay ends ``error`` with the server's error code (or
``server_unreachable``) for the page to show. The procedure is durable on the server, so driving it again later
resumes where it stood; the card's answers the server did not get are sent first (never a new PIN).

The relay holds no secret beyond the PIN in flight (see :mod:`jpki_remote.terminal.pinpad`) and the new PIN of a
reset while its PIN-setting conversation lasts (inside :func:`drive`); it logs states, never values.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from jpki_remote.card.transports.base import CardRemovedError, NoCardError, TransportError
from jpki_remote.terminal.agent import AgentCore, AgentError, drive
from jpki_remote.terminal.client import ServerClient, ServerError
from jpki_remote.terminal.pinpad import PagePinPad
from jpki_remote.terminal.readers import Reader
from jpki_remote.terminal.retry import RETRY_DELAYS, RETRY_SECONDS, RetryBudget, transient

log = logging.getLogger(__name__)

PROCEDURE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
ACTIVE_STATES = ("running", "waiting", "insert_card", "reconnecting")


@dataclass(frozen=True)
class TerminalIdentity:
    terminal_id: str
    kind: str  # kiosk | app | counter
    name: str


class _CardChanged(CardRemovedError):
    """The card on the reader is not the one this card session started with (pulled and put back)."""


class AgentService:
    def __init__(
        self,
        client: ServerClient,
        reader: Reader,
        pinpad: PagePinPad,
        identity: TerminalIdentity,
        *,
        poll_seconds: float = 0.7,
        retry_seconds: float = RETRY_SECONDS,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.client = client
        self.reader = reader
        self.pinpad = pinpad
        self.identity = identity
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.retry_delays = retry_delays
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._procedure_id: str | None = None
        # the card's answers the server never got when the relay gave up (procedure, body, card generation): driving
        # that procedure again sends them first, so the server takes the conversation up where the card stands
        self._unsent: tuple[str, dict[str, Any], int] | None = None
        # idle | running | waiting | insert_card | reconnecting | done | failed | stopped | error
        self._relay = "idle"
        self._error: str | None = None
        self._server_lock = threading.Lock()  # one server call at a time (the client re-authenticates in place)

    # ---- page commands -------------------------------------------------------------------------------------
    def drive(self, procedure_id: str) -> None:
        """Relay ``procedure_id`` until it ends (idempotent while it runs; another procedure replaces it)."""
        if not PROCEDURE_ID.fullmatch(procedure_id):
            raise ValueError("malformed procedure id")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                if self._procedure_id == procedure_id:
                    return
                self._halt_locked()
            self._stop = threading.Event()
            self._procedure_id = procedure_id
            self._relay, self._error = "running", None
            self.pinpad.reset()
            thread = threading.Thread(
                target=self._run, args=(procedure_id, self._stop), name=f"relay-{procedure_id[:8]}", daemon=True
            )
            self._thread = thread
        thread.start()

    def cancel(self) -> None:
        """Drop any PIN request and PIN held and stop relaying (the page cancels the procedure on the server)."""
        with self._lock:
            self._halt_locked()
            self._unsent = None
            if self._relay in ("running", "waiting", "insert_card"):
                self._relay = "stopped"

    def _halt_locked(self) -> None:
        self._stop.set()
        self.pinpad.cancel()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._lock.release()
            try:
                thread.join(timeout=10)
            finally:
                self._lock.acquire()

    def close(self) -> None:
        self.cancel()
        self.reader.close()

    def browser_link(self) -> str:
        """A fresh one-time code for the page's browser session (the client is shared with the relay thread)."""
        with self._server_lock:
            return self.client.browser_link()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the relay thread ends (tests); returns the relay state."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._relay

    def status(self) -> dict[str, Any]:
        present = self.reader.present()
        info = self.reader.info() if present else None
        request = self.pinpad.request
        return {
            "terminal_id": self.identity.terminal_id,
            "terminal_kind": self.identity.kind,
            "terminal_name": self.identity.name,
            "reader": self.reader.name,
            "card_present": present,
            "card_id": self.reader.card_id() if present else None,
            "procedure_id": self._procedure_id,
            "pin_request": request.as_dict() if request is not None else None,
            "card": info.as_dict() if info is not None else None,
            "relay": {"state": self._relay, "error": self._error},
            "retry_seconds": self.retry_seconds,  # the relay's budget: the page waits out a blip as long
        }

    # ---- the relay thread ----------------------------------------------------------------------------------
    def _call(self, procedure_id: str, body: dict[str, Any], stop: threading.Event) -> dict[str, Any]:
        """One exchange call, retrying transient failures (server restarting, 5xx such as a 503 while the database
        is down) for ``retry_seconds`` (:class:`RetryBudget`); the same body each time (the server recognises a
        retry); the relay state ``reconnecting`` meanwhile."""
        resume = self._relay

        def exchange() -> dict[str, Any]:
            with self._server_lock:
                return self.client.exchange(procedure_id, body)

        return RetryBudget(self.retry_seconds, self.retry_delays).call(
            exchange,
            stop=stop,
            label=f"relay {procedure_id[:8]}",
            on_retry=lambda: self._set_relay("reconnecting"),
            on_recovered=lambda: self._set_relay(resume),
        )

    def _set_relay(self, state: str) -> None:
        """Between active states only: a relay cancelled meanwhile stays ``stopped``."""
        with self._lock:
            if self._relay in ACTIVE_STATES:
                self._relay = state

    def _wait_for_card_step(self, procedure_id: str, stop: threading.Event) -> bool:
        """While the holder completes proofs in the browser, read the procedure (a read changes nothing, so it
        never races the page's own calls) until it needs the card again or has ended; False when stopped."""
        while not stop.wait(self.poll_seconds):
            try:
                with self._server_lock:
                    view = self.client.view(procedure_id)
            except (ServerError, httpx.TransportError) as exc:
                if not transient(exc):
                    return True  # let the exchange call report it
                continue
            if view.get("status") != "active" or view.get("waiting_for") == "card":
                return True
        return False

    def _transmit_for(self, generation: Callable[[], int], start: int) -> Callable[[bytes], bytes]:
        def transmit(apdu: bytes) -> bytes:
            if generation() != start:
                raise _CardChanged("the card was replaced")
            return self.reader.transmit(apdu)

        return transmit

    def _run(self, procedure_id: str, stop: threading.Event) -> None:
        generation: Callable[[], int] = lambda: getattr(self.reader, "generation", 0)  # noqa: E731

        def call(body: dict[str, Any]) -> dict[str, Any]:
            if stop.is_set():
                raise AgentError("stopped")
            try:
                return self._call(procedure_id, body, stop)
            except (ServerError, httpx.TransportError) as exc:
                if transient(exc) and body.get("responses") and body.get("new_pin") is None:  # never keep a PIN
                    self._unsent = (procedure_id, body, generation())
                raise

        outcome, error = "failed", None
        first: dict[str, Any] = {"seq": None, "responses": []}
        unsent, self._unsent = self._unsent, None
        if unsent is not None and unsent[0] == procedure_id and unsent[2] == generation():
            log.info("relay %s: sending the card's answers the server did not get before", procedure_id[:8])
            first = unsent[1]
        try:
            reply = call(first)
            while not stop.is_set():
                status = reply["exchange"]["status"]
                if status in ("done", "failed"):
                    outcome = status
                    break
                if status == "wait":
                    self._relay = "waiting"
                    if self._wait_for_card_step(procedure_id, stop):
                        reply = call({"seq": None, "responses": []})
                    continue
                if status == "insert_card":
                    self._relay = "insert_card"
                    while not stop.is_set() and not self.reader.present():
                        stop.wait(self.poll_seconds)
                    if stop.is_set():
                        break
                    reply = call({"seq": None, "responses": [], "event": "card_inserted"})
                    continue
                self._relay = "running"
                core = AgentCore(self._transmit_for(generation, generation()), self.pinpad)
                try:
                    reply = drive(call, core, reply)
                except (CardRemovedError, NoCardError):
                    log.info("relay %s: card removed", procedure_id[:8])
                    reply = call({"seq": None, "responses": [], "event": "card_removed"})
                    continue
                if reply["exchange"]["status"] == "retry":
                    outcome, error = "stopped", "not_retried"  # the holder did not type the PIN again
                    break
            else:
                outcome = "stopped"
            if stop.is_set() and outcome == "failed":
                outcome = "stopped"
        except AgentError as exc:
            outcome, error = ("stopped", "cancelled") if stop.is_set() else ("error", _agent_error_code(exc))
        except ServerError as exc:
            outcome, error = "error", exc.code or f"http_{exc.status}"
        except httpx.TransportError as exc:
            outcome, error = "error", "server_unreachable"
            log.warning("relay %s ended: server unreachable (%s)", procedure_id[:8], type(exc).__name__)
        except (httpx.HTTPError, TransportError, ValueError, KeyError, TypeError) as exc:
            outcome, error = "error", type(exc).__name__
            log.warning("relay %s ended: %s", procedure_id[:8], type(exc).__name__)
        finally:
            self.pinpad.cancel()  # nothing held once the relay is over
        with self._lock:
            if self._stop is stop:
                self._relay, self._error = outcome, error
        log.info("relay %s: %s%s", procedure_id[:8], outcome, f" ({error})" if error else "")


def _agent_error_code(exc: AgentError) -> str:
    text = str(exc)
    if "cancelled" in text:
        return "cancelled"
    if "format" in text:
        return "bad_pin_format"
    return "refused_request"


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for callers and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
