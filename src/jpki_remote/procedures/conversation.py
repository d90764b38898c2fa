"""Card conversations driven through a stateless server: deterministic scripts re-run over a stored transcript.

A *script* is ordinary synchronous code that talks to a card through ``conv.transmit(apdu) -> response`` (so it can
use any client or issuer-session class written against a transport). The server never keeps a script running
between HTTP requests. Instead, every exchange request re-runs the script from its start: commands whose responses
are already in the stored transcript are answered from it (their bytes are checked against the recorded hash, so a
non-deterministic script is caught), and the first command without a response stops the run — it is what the
terminal must send next. When the script returns, its result is handed to the procedure. The transcript lives in the
procedure row; a restarted server, or another worker behind the load balancer, continues exactly where the last left.

What makes scripts deterministic: all randomness comes from ``conv.random(n)``, derived from a per-conversation seed
stored with the transcript (e.g. the SCP03 host challenge). The seed is not a secret worth more than the session
it opens: session keys also need the card's static keys, which only the issuer key store holds.

The transcript stores, per command, only a digest of the request and the card's response; command bytes (which may
carry a wrapped new PIN) are never stored.

Local operations (never leave the terminal):

* ``conv.verify_pin(kind, header)`` — the terminal asks the holder for the PIN ``kind`` and sends
  ``header ‖ Lc ‖ PIN`` itself; the server only sees the status word.
* ``conv.change_pin(kind, verify_header, change_header)`` — VERIFY old + CHANGE REFERENCE DATA new, both typed at
  the terminal; the server sees the two status words.

A *new* PIN for a reset must reach the card inside secure messaging, so it has to pass through the server:
``conv.new_pin(kind)`` returns the value the terminal sent with this very request, or stops the run asking for it.
The terminal keeps sending it with each request of the conversation until the server says the conversation ended;
the server uses it only in memory while building the command and never stores or logs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_TRANSCRIPT = 400  # commands per conversation; a script needing more is a bug or an attack


class ConversationError(Exception):
    """The transcript does not fit the script (tampered terminal, changed code) or is too long."""


@dataclass(frozen=True)
class CardRequest:
    """One item the terminal must carry out; ``wire`` is what goes in the exchange reply."""

    wire: dict[str, Any]
    digest: str  # SHA-256 over the canonical request, recorded with the response

    @staticmethod
    def apdu(command: bytes) -> CardRequest:
        return CardRequest({"apdu": command.hex()}, _digest({"apdu": command.hex()}))

    @staticmethod
    def local(operation: str, **params: str) -> CardRequest:
        wire = {"op": operation, **params}
        return CardRequest(wire, _digest(wire))


def _digest(wire: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(wire, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class NeedCard(Exception):
    """The run stopped: these requests must be carried out by the terminal next."""

    def __init__(self, requests: list[CardRequest]) -> None:
        super().__init__(f"{len(requests)} card request(s)")
        self.requests = requests


class NeedNewPin(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Transcript:
    seed: bytes
    entries: list[tuple[str, bytes]] = field(default_factory=list)  # (request digest, response)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed.hex(), "entries": [[d, r.hex()] for d, r in self.entries]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Transcript:
        return Transcript(bytes.fromhex(data["seed"]), [(d, bytes.fromhex(r)) for d, r in data["entries"]])


class Conversation:
    """What a script sees. ``transmit`` has the CardTransport shape, so card clients can run on it."""

    def __init__(self, transcript: Transcript, *, new_pin: str | None = None) -> None:
        self._transcript = transcript
        self._position = 0
        self._random_counter = 0
        self._new_pin = new_pin
        self.new_pin_used = False
        self.checkpoints: list[str] = []

    def checkpoint(self, name: str) -> None:
        """Mark a point of the script (e.g. "the next command is COMMIT"): the engine records it durably before it
        hands the following command to the terminal."""
        self.checkpoints.append(name)

    # ---- randomness --------------------------------------------------------------------------------------------
    def random(self, n: int) -> bytes:
        """``n`` bytes, fixed for this conversation (derived from its seed)."""
        self._random_counter += 1
        out = b""
        block = 0
        while len(out) < n:
            msg = self._random_counter.to_bytes(4, "big") + block.to_bytes(4, "big")
            out += hmac.new(self._transcript.seed, msg, hashlib.sha256).digest()
            block += 1
        return out[:n]

    # ---- card I/O ----------------------------------------------------------------------------------------------
    def _answer(self, request: CardRequest) -> bytes:
        index = self._position
        if index < len(self._transcript.entries):
            digest, response = self._transcript.entries[index]
            if not hmac.compare_digest(digest, request.digest):
                raise ConversationError(f"conversation diverged at command {index}")
            self._position += 1
            return response
        raise NeedCard([request])

    def transmit(self, apdu: bytes) -> bytes:
        return self._answer(CardRequest.apdu(bytes(apdu)))

    def transmit_many(self, apdus: Sequence[bytes]) -> list[bytes]:
        """Several independent commands in one round trip (e.g. the remaining READ BINARYs of a certificate)."""
        requests = [CardRequest.apdu(bytes(a)) for a in apdus]
        available = len(self._transcript.entries) - self._position
        if available >= len(requests):
            return [self._answer(r) for r in requests]
        for request in requests[:available]:
            self._answer(request)
        raise NeedCard(requests[available:])

    def verify_pin(self, kind: str, header: bytes) -> int:
        """The terminal asks the holder for PIN ``kind`` and sends VERIFY; returns the status word."""
        response = self._answer(CardRequest.local("verify_pin", pin_kind=kind, header=header.hex()))
        return _status_word(response)

    def change_pin(self, kind: str, verify_header: bytes, change_header: bytes) -> tuple[int, int]:
        """VERIFY old + CHANGE new, both typed at the terminal; returns both status words (change 0 if skipped)."""
        response = self._answer(
            CardRequest.local("change_pin", pin_kind=kind, verify=verify_header.hex(), change=change_header.hex())
        )
        if len(response) != 4:
            raise ConversationError("a PIN change answer is two status words")
        return int.from_bytes(response[:2], "big"), int.from_bytes(response[2:], "big")

    def new_pin(self, kind: str) -> str:
        """The new PIN ``kind`` the terminal sent with this request (stops the run asking for it otherwise)."""
        if self._new_pin is None:
            raise NeedNewPin(kind)
        self.new_pin_used = True
        return self._new_pin


def _status_word(response: bytes) -> int:
    if len(response) < 2:
        raise ConversationError("a card response has at least a status word")
    return int.from_bytes(response[-2:], "big")


Script = Callable[[Conversation, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class RunOutcome:
    finished: bool
    result: dict[str, Any] | None = None
    requests: list[CardRequest] = field(default_factory=list)
    needs_new_pin: str | None = None
    new_pin_used: bool = False
    checkpoints: tuple[str, ...] = ()


def run_script(script: Script, params: dict[str, Any], transcript: Transcript, *, new_pin: str | None) -> RunOutcome:
    """Run ``script`` over ``transcript``: either it finishes, or it says what the terminal must do next."""
    if len(transcript.entries) > MAX_TRANSCRIPT:
        raise ConversationError("conversation too long")
    conv = Conversation(transcript, new_pin=new_pin)
    try:
        result = script(conv, params)
    except NeedCard as need:
        return RunOutcome(
            False, requests=need.requests, new_pin_used=conv.new_pin_used, checkpoints=tuple(conv.checkpoints)
        )
    except NeedNewPin as need:
        return RunOutcome(False, needs_new_pin=need.kind, checkpoints=tuple(conv.checkpoints))
    return RunOutcome(True, result=result, new_pin_used=conv.new_pin_used, checkpoints=tuple(conv.checkpoints))


def record_responses(transcript: Transcript, pending: Sequence[str], responses: Sequence[bytes]) -> None:
    """Append the terminal's answers to the outstanding requests (digests ``pending``) to the transcript."""
    if len(responses) != len(pending):
        raise ConversationError(f"expected {len(pending)} response(s), got {len(responses)}")
    for digest, response in zip(pending, responses, strict=True):
        if not 2 <= len(response) <= 65538:
            raise ConversationError("a response is 2–65538 bytes")
        transcript.entries.append((digest, bytes(response)))
