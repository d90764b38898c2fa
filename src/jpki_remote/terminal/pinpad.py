"""`PagePinPad`: the :class:`~jpki_remote.terminal.agent.PinPad` fed by the terminal's browser page.

The exchange loop (:func:`~jpki_remote.terminal.agent.drive`, in the agent's relay thread) asks for a PIN and blocks;
the page sees the open request in ``GET /v1/status`` (``pin_request: {kind, new, attempt}``), lets the holder type it
on its keypad and answers with ``POST /v1/pin`` (:meth:`PagePinPad.answer`), which wakes the relay thread.

* A PIN is held only between the page's answer and the relay thread taking it (microseconds), or — after a refused
  PIN — until the very next request for it; :meth:`PagePinPad.cancel` (``POST /v1/cancel``, the page's idle wipe)
  drops everything held and wakes every waiting request with "cancelled". Nothing here logs or stores a value.
* An answer is accepted only for the request that is open (same kind, same new/current), in the right format.
* After a refused PIN the card has counted the try; the agent never retries by itself. :meth:`PagePinPad.retry`
  opens the same request again (``retry: true``): the holder typing it again *is* the decision to retry; the value
  then serves the next request of that kind. Cancelling or not answering within ``timeout`` declines.
* ``attempt`` counts the requests for that PIN in this procedure (0, 1, …: a retry, or the same PIN needed again in
  a later step) and ``seq`` every request: a page tells two requests apart even when it never saw the gap.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from jpki_remote.terminal.agent import PIN_KINDS, pin_format_ok

DEFAULT_TIMEOUT = 180.0  # seconds a request stays open (the kiosk page wipes itself after 60 s of inactivity)


@dataclass(frozen=True)
class PinRequest:
    kind: str
    new: bool
    attempt: int
    seq: int = 0
    retry: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "new": self.new, "attempt": self.attempt, "seq": self.seq, "retry": self.retry}


class PinRefused(ValueError):
    """An answer that does not fit the open request (``code``: no_request, wrong_request, bad_format)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class PagePinPad:
    """Thread-safe hand-off of PINs from the page (HTTP threads) to the relay thread."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._request: PinRequest | None = None
        self._answer: str | None = None
        self._ready: dict[tuple[str, bool], str] = {}  # a retry's value, for the next request of that kind
        self._attempts: dict[tuple[str, bool], int] = {}
        self._last: tuple[str, bool] | None = None
        self._generation = 0  # bumped by cancel(): every wait in progress ends
        self._seq = 0

    # ---- the relay thread's side (PinPad protocol) ----------------------------------------------------------
    def pin(self, kind: str) -> str | None:
        return self._ask(kind, False)

    def new_pin(self, kind: str) -> str | None:
        return self._ask(kind, True)

    def retry(self, message: dict[str, Any] | None) -> bool:
        code = str((message or {}).get("code") or "")
        if code == "code_b_incorrect":
            key = ("code_b", False)
        elif self._last is None:
            return False
        else:  # pin_incorrect: the current PIN was refused (also in a change); new_pin_invalid: choose again
            key = (self._last[0], code == "new_pin_invalid")
        value = self._ask(*key, again=True)
        if value is None:
            return False
        with self._cond:
            self._ready[key] = value
        return True

    def _ask(self, kind: str, new: bool, *, again: bool = False) -> str | None:
        if kind not in PIN_KINDS:
            return None
        key = (kind, new)
        with self._cond:
            ready = self._ready.pop(key, None)
            if ready is not None:
                return ready
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            self._last = key
            self._seq += 1
            generation = self._generation
            self._request = PinRequest(kind, new, attempt, self._seq, again)
            self._answer = None
            deadline = time.monotonic() + self.timeout
            try:
                while self._answer is None and self._generation == generation:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                value, self._answer = self._answer, None
                return value if self._generation == generation else None
            finally:
                if self._generation == generation:
                    self._request = None

    # ---- the page's side -------------------------------------------------------------------------------------
    def answer(self, kind: object, value: object, new: object) -> None:
        """The holder's entry for the open request; raises :class:`PinRefused` (the value is not kept)."""
        with self._cond:
            request = self._request
            if request is None:
                raise PinRefused("no_request")
            if kind != request.kind or bool(new) is not request.new:
                raise PinRefused("wrong_request")
            if not pin_format_ok(request.kind, value):
                raise PinRefused("bad_format")
            assert isinstance(value, str)
            self._answer = value
            self._cond.notify_all()

    def cancel(self) -> None:
        """Drop the open request and every PIN held; waits in progress return "cancelled"."""
        with self._cond:
            self._generation += 1
            self._request = None
            self._answer = None
            self._ready.clear()
            self._cond.notify_all()

    def reset(self) -> None:
        """A new procedure: forget attempts and anything held."""
        self.cancel()
        with self._cond:
            self._attempts.clear()
            self._last = None

    @property
    def request(self) -> PinRequest | None:
        with self._cond:
            return self._request

    @property
    def holding(self) -> bool:
        """Whether any PIN value is held right now (tests check that cancel leaves none)."""
        with self._cond:
            return self._answer is not None or bool(self._ready)
