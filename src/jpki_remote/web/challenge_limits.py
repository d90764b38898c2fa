"""The rate limits of ``POST /terminals/challenge`` (finding S-16).

Anyone may ask for a terminal sign-in challenge, and each one is a row in the database. Every request is counted
per client address and per *claimed* terminal id under :data:`jpki_remote.proofing.limits.TERMINAL_CHALLENGE_RULES`
(Redis when ``JPKI_REDIS_URL`` is set, else the database) before anything is written; over a limit the answer is
429 ``rate_limited`` with ``Retry-After`` (seconds until the lockout ends) and nothing is inserted. The terminal id
is never looked up, so an unknown id is counted, refused and answered exactly like a registered one. The counts
have their own pseudonyms: a challenge lockout does not touch the limits of procedures from that address or
terminal. (The rows that are written are purged as they expire or are used: ``terminal.service.purge_challenges``.)
"""

from __future__ import annotations

import threading
from datetime import datetime

from jpki_remote.config import Settings
from jpki_remote.procedures.errors import MESSAGES
from jpki_remote.proofing.limits import AttemptKind, Limits, LockedOut
from jpki_remote.store import Database
from jpki_remote.web.errors import ApiError


class ChallengeLimits:
    """``admit(terminal_id, address)`` before a challenge is issued; raises the 429 :class:`ApiError` over a limit.
    The :class:`Limits` are built on first use (the server secret is read then, not when the app is created)."""

    def __init__(self, settings: Settings, database: Database, limits: Limits | None = None) -> None:
        self._settings = settings
        self._database = database
        self._limits = limits
        self._lock = threading.Lock()

    @property
    def limits(self) -> Limits:
        with self._lock:
            if self._limits is None:
                self._limits = Limits.for_terminal_challenges(self._settings, self._database)
            return self._limits

    def admit(self, terminal_id: str, address: str | None) -> None:
        named = {"terminal_id": terminal_id[:256]}
        if address:
            named["address"] = address[:256]
        verdict = self.limits.check_and_count(AttemptKind.TERMINAL_CHALLENGE, **named)
        if isinstance(verdict, LockedOut):
            raise refused(verdict)


def refused(verdict: LockedOut, now: datetime | None = None) -> ApiError:
    """429 ``rate_limited``, the API's usual body, and ``Retry-After``: whole seconds until the lockout ends."""
    ja, en = MESSAGES["rate_limited"]
    return ApiError(429, "rate_limited", ja, en, headers={"Retry-After": str(verdict.seconds_left(now))})
