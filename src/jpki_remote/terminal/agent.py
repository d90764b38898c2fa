"""The terminal agent: owns the card reader, relays APDUs between card and server, never holds issuer keys.

The exchange protocol (server stays stateless; state is in the procedure row):

1. the agent calls ``POST /api/v1/procedures/{id}/exchange`` with ``{"seq": n, "responses": [hex, …]}`` — the card's
   answers to batch ``n`` (empty on the first call, or when only polling);
2. the server answers with the procedure view plus ``exchange``: ``status`` (``card`` — carry out ``requests``;
   ``wait`` — the holder must complete a proof in the browser, poll again; ``insert_card``; ``done``; ``failed``),
   ``seq`` (the batch number to answer), ``requests`` and ``new_pin`` (a PIN kind the holder must choose now);
   ``retry`` — a PIN was refused (the card counted it): the agent asks the holder and, only if they want, sends
   ``{"event": "retry"}``; nothing is ever re-tried automatically;
3. each request is either ``{"apdu": hex}`` (relayed verbatim: for issuer commands it is protected by secure
   messaging end to end) or a local operation the agent builds itself so that the PIN never leaves the terminal:
   ``{"op": "verify_pin", "pin_kind": k, "header": "00200080"}`` → VERIFY with the PIN the holder types;
   ``{"op": "change_pin", "pin_kind": k, "verify": hdr, "change": hdr}`` → VERIFY old + CHANGE new, answered by
   both status words.

A *new* PIN for a reset must reach the card inside secure messaging, so the agent sends it in the ``new_pin`` field
of its exchange requests while the server's PIN-setting conversation lasts (only over the authenticated TLS session),
never logs it, and drops it as soon as that conversation is over. A card removed mid-procedure is reported with
``{"event": "card_removed"}``; the next card with ``{"event": "card_inserted"}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from jpki_remote.terminal.retry import RetryBudget

log = logging.getLogger(__name__)

_PIN_FORMATS = {
    "sign_password": re.compile(r"^[A-Z0-9]{6,16}$"),
    "auth_pin": re.compile(r"^[0-9]{4}$"),
    "residence_pin": re.compile(r"^[0-9]{4}$"),
    "text_pin": re.compile(r"^[0-9]{4}$"),
    "code_b": re.compile(r"^[0-9]{14}$"),
}
_VERIFY_INS = {0x20}
_CHANGE_INS = {0x24, 0x32}


class AgentError(Exception):
    """The server asked for something the agent refuses to do, or the holder cancelled."""


class PinPad(Protocol):
    """Where the holder types PINs (a keypad, the kiosk screen through a local page, or a test)."""

    def pin(self, kind: str) -> str | None:
        """The current PIN ``kind`` (``auth_pin``, ``sign_password``, ``residence_pin``, ``text_pin``, ``code_b``)."""
        ...

    def new_pin(self, kind: str) -> str | None:
        """A new PIN chosen by the holder (entered twice on a real keypad)."""
        ...

    def retry(self, message: dict[str, Any] | None) -> bool:
        """After a refused PIN (the card counts every try): does the holder want to try again? Never automatic."""
        ...


@dataclass
class ScriptedPinPad:
    """A PIN pad answering from a dict (tests, the scripted demo). Values are removed when consumed if ``once``."""

    pins: dict[str, str] = field(default_factory=dict)
    new_pins: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def pin(self, kind: str) -> str | None:
        self.asked.append(kind)
        return self.pins.get(kind)

    def new_pin(self, kind: str) -> str | None:
        self.asked.append(f"new:{kind}")
        return self.new_pins.get(kind)

    def retry(self, message: dict[str, Any] | None) -> bool:
        return False


PIN_KINDS = frozenset(_PIN_FORMATS)


def pin_format_ok(kind: str, value: object) -> bool:
    """Whether ``value`` has the format of a ``kind`` PIN (checked before it is ever sent to the card)."""
    if not isinstance(value, str) or len(value) > 32:
        return False
    try:
        _pin_bytes(kind, value)
    except AgentError:
        return False
    return True


def _pin_bytes(kind: str, value: str) -> bytes:
    value = value.strip()
    if kind == "sign_password":
        value = value.upper()  # the card's sign password is upper-case letters and digits
    pattern = _PIN_FORMATS.get(kind)
    if pattern is None or not pattern.fullmatch(value):
        raise AgentError(f"the {kind} has the wrong format")
    return value.encode("ascii")


def _with_data(header: bytes, data: bytes) -> bytes:
    return header + bytes([len(data)]) + data


class AgentCore:
    """Carries out the server's requests on one card. ``transmit`` is the reader's (any CardTransport)."""

    def __init__(self, transmit: Callable[[bytes], bytes], pinpad: PinPad) -> None:
        self._transmit = transmit
        self.pinpad = pinpad

    def perform(self, requests: list[dict[str, Any]]) -> list[bytes]:
        return [self._one(request) for request in requests]

    def _one(self, request: dict[str, Any]) -> bytes:
        if "apdu" in request:
            return self._transmit(bytes.fromhex(str(request["apdu"])))
        operation = request.get("op")
        kind = str(request.get("pin_kind", ""))
        if operation == "verify_pin":
            header = self._header(request.get("header"), _VERIFY_INS)
            value = self.pinpad.pin(kind)
            if value is None:
                raise AgentError("cancelled by the holder")
            return self._transmit(_with_data(header, _pin_bytes(kind, value)))[-2:]
        if operation == "change_pin":
            verify = self._header(request.get("verify"), _VERIFY_INS)
            change = self._header(request.get("change"), _CHANGE_INS)
            old, new = self.pinpad.pin(kind), self.pinpad.new_pin(kind)
            if old is None or new is None:
                raise AgentError("cancelled by the holder")
            verify_sw = self._transmit(_with_data(verify, _pin_bytes(kind, old)))[-2:]
            if verify_sw != b"\x90\x00":
                return verify_sw + b"\x00\x00"
            return verify_sw + self._transmit(_with_data(change, _pin_bytes(kind, new)))[-2:]
        raise AgentError(f"unknown request {operation!r}")

    @staticmethod
    def _header(value: object, allowed_ins: set[int]) -> bytes:
        """A PIN only ever goes into VERIFY / CHANGE REFERENCE DATA: refuse any other header from the server."""
        try:
            header = bytes.fromhex(str(value))
        except ValueError:
            raise AgentError("malformed header") from None
        if len(header) != 4 or header[0] not in (0x00, 0x80) or header[1] not in allowed_ins:
            raise AgentError("the server asked to send a PIN in a command that is not a PIN command")
        return header


def drive(
    call: Callable[[dict[str, Any]], dict[str, Any]],
    core: AgentCore,
    reply: dict[str, Any],
    *,
    max_rounds: int = 500,
) -> dict[str, Any]:
    """Run the exchange until the server says done/failed/wait. ``call(body)`` posts one exchange request."""
    new_pin: str | None = None
    pin_state: str | None = None
    for _ in range(max_rounds):
        exchange = reply["exchange"]
        status = exchange["status"]
        if status in ("done", "failed", "wait"):
            return reply
        if status == "retry":
            if not core.pinpad.retry(reply.get("message")):
                return reply
            reply = call({"seq": exchange["seq"], "responses": [], "event": "retry"})
            continue
        if status == "insert_card":
            reply = call({"seq": exchange["seq"], "responses": [], "event": "card_inserted"})
            continue
        if exchange.get("new_pin"):
            new_pin = core.pinpad.new_pin(exchange["new_pin"])
            pin_state = reply["state"]
            if new_pin is None:
                raise AgentError("cancelled by the holder")
        elif pin_state is not None and reply["state"] != pin_state:
            new_pin, pin_state = None, None  # the PIN-setting conversation is over: forget the PIN
        responses = core.perform(exchange["requests"])
        body: dict[str, Any] = {"seq": exchange["seq"], "responses": [r.hex() for r in responses]}
        if new_pin is not None:
            body["new_pin"] = new_pin
        reply = call(body)
    raise AgentError("too many exchange rounds")


class ConsolePinPad:
    """PIN entry on the agent's own console (no echo). A kiosk replaces it with its keypad / local page."""

    def pin(self, kind: str) -> str | None:
        import getpass

        value = getpass.getpass(f"{kind}: ")
        return value or None

    def new_pin(self, kind: str) -> str | None:
        import getpass

        first = getpass.getpass(f"new {kind}: ")
        if first and first == getpass.getpass(f"new {kind} again: "):
            return first
        return None

    def retry(self, message: dict[str, Any] | None) -> bool:
        answer = input(f"{(message or {}).get('ja', '')} {(message or {}).get('en', '')} retry? [y/N] ")
        return answer.strip().lower() in ("y", "yes")


def run_loop(
    client: Any,
    transmit: Callable[[bytes], bytes],
    pinpad: PinPad,
    *,
    stop: Any,
    poll_seconds: float = 1.0,
    retry: RetryBudget | None = None,
) -> None:
    """Serve this terminal until ``stop`` (a threading.Event) is set: pick up the procedure its page started and
    relay the card for it. ``client`` is a :class:`jpki_remote.terminal.client.ServerClient`. Every server call
    gets the relay's retry budget (``retry``; the command passes ``JPKI_TERMINAL_RETRY_SECONDS``): a server
    restarting or answering 503 is tried again with the same request; once the budget is spent the failure is
    raised (the procedure stays resumable on the server)."""
    from jpki_remote.card.transports.base import CardRemovedError, NoCardError
    from jpki_remote.terminal.retry import RetryBudget

    budget = retry if retry is not None else RetryBudget()
    core = AgentCore(transmit, pinpad)

    def server(call: Callable[[], Any], what: str) -> Any:
        return budget.call(call, stop=stop, label=f"console agent ({what})")

    def exchange(procedure_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return server(lambda: client.exchange(procedure_id, body), procedure_id[:8])

    try:
        server(client.authenticate, "sign-in")
    except AgentError:
        return  # stopped while the server was away
    while not stop.is_set():
        try:
            active = server(client.active_procedure, "procedure")
            if active is None:
                stop.wait(poll_seconds)
                continue
            procedure_id = active["id"]
            reply = exchange(procedure_id, {"seq": None, "responses": []})
            reply = drive(lambda body, pid=procedure_id: exchange(pid, body), core, reply)
            if reply["exchange"]["status"] in ("wait", "retry"):
                stop.wait(poll_seconds)
        except (CardRemovedError, NoCardError):
            log.info("card removed")
            if "procedure_id" in locals():
                exchange(procedure_id, {"seq": None, "responses": [], "event": "card_removed"})
            stop.wait(poll_seconds)
        except AgentError as exc:
            log.warning("agent: %s", exc)
            stop.wait(poll_seconds)
