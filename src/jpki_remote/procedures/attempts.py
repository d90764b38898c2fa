"""The rate limits in front of every remote attempt: procedure starts, face captures, security-code sends and entries.

One mechanism: :class:`jpki_remote.proofing.limits.Limits` (Redis when ``JPKI_REDIS_URL`` is set, else the
database). The engine calls :func:`check_attempt` *before* the attempt — so a refused capture (no match, poor live
quality, failed liveness) has been counted as the face engineer recommends, and a grinding client is stopped before
the CPU-heavy face comparison runs. Counter procedures are not limited: staff are present and the counter is where
the limits send the holder.

The subjects are the identifiers the client *presented* (card id as typed or read, terminal, client address),
never looked up, so an unknown card is counted and refused exactly like a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jpki_remote.procedures.errors import ProcedureError

COUNTER = "counter"


@dataclass(frozen=True)
class Admitted:
    remaining: int | None  # attempts left under the tightest rule (None: no limits configured)


class LockedOutError(ProcedureError):
    """The holder (card), the terminal or the client address is locked out. ``counter_visit`` is true for a card
    lockout: the holder is told to visit the municipal counter (code ``locked_out``); a terminal or address lockout
    asks to try again later (code ``rate_limited``). Both answer 429 and say nothing about whether the card exists;
    ``retry_after``: seconds until the lockout ends (the API's ``Retry-After``)."""

    def __init__(self, counter_visit: bool, retry_after: int | None = None) -> None:
        code = "locked_out" if counter_visit else "rate_limited"
        super().__init__(code, 429, {"counter_visit": counter_visit}, retry_after=retry_after)
        self.counter_visit = counter_visit


def check_attempt(
    limits: Any,
    kind: str,
    *,
    channel: str,
    card_id: str | None,
    terminal_id: str | None,
    address: str | None,
) -> Admitted:
    """Count one attempt of ``kind`` (``face_attempt``, ``code_attempt``, ``procedure_start``); raise
    :class:`LockedOutError` when a subject is (now) locked out."""
    if limits is None or channel == COUNTER:
        return Admitted(None)
    from jpki_remote.proofing.limits import LockedOut

    subjects = {"card_id": card_id, "terminal_id": terminal_id, "address": address}
    named = {k: v[:256] for k, v in subjects.items() if isinstance(v, str) and v}
    if not named:
        return Admitted(None)
    verdict = limits.check_and_count(kind, **named)
    if isinstance(verdict, LockedOut):
        raise LockedOutError(verdict.counter_visit, verdict.seconds_left())
    return Admitted(int(verdict.remaining))
