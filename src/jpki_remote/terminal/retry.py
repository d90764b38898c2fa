"""The terminal agent's retry budget for a server that is briefly away — restarting (connection refused) or answering
5xx (a 503 ``unavailable`` while its database is down) — shared by the page relay (:mod:`.relay`) and the console
agent (:func:`jpki_remote.terminal.agent.run_loop`).

One call is tried again with the *same* request (the server recognises a retried exchange) after 0.5, 1, 2 and 4 s,
then every 5 s, until ``seconds`` have passed since its first failure (``JPKI_TERMINAL_RETRY_SECONDS``, 2 minutes by
default: a server restart or a database fail-over, not more); then the last failure is raised for the caller to
report. A refusal (4xx) is never retried. Only states and failure kinds are logged, never a request body.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from jpki_remote.terminal.agent import AgentError
from jpki_remote.terminal.client import ServerError

log = logging.getLogger(__name__)

RETRY_SECONDS = 120.0  # how long one server call is retried before the agent gives up (the page shows the error)
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # back-off between tries, then every RETRY_MAX_DELAY seconds
RETRY_MAX_DELAY = 5.0

T = TypeVar("T")


def transient(exc: BaseException) -> bool:
    """A failure worth waiting out: the server unreachable, or its 5xx answer (not a refusal)."""
    if isinstance(exc, ServerError):
        return exc.status >= 500
    return isinstance(exc, httpx.TransportError)


@dataclass(frozen=True)
class RetryBudget:
    seconds: float = RETRY_SECONDS
    delays: tuple[float, ...] = RETRY_DELAYS

    def call(
        self,
        attempt: Callable[[], T],
        *,
        stop: threading.Event,
        label: str,
        on_retry: Callable[[], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ) -> T:
        """``attempt()`` until it succeeds, fails for good (a refusal, or the budget spent: that failure is raised)
        or ``stop`` is set (:class:`AgentError` ``stopped``). ``on_retry`` runs before each wait (the relay shows
        ``reconnecting``), ``on_recovered`` once the server answers again after a failure."""
        deadline: float | None = None
        tries = 0
        while True:
            try:
                result = attempt()
            except (ServerError, httpx.TransportError) as exc:
                if not transient(exc):
                    raise
                failure: Exception = exc
            else:
                if tries:
                    log.info("%s: server reachable again after %d retries", label, tries)
                    if on_recovered is not None:
                        on_recovered()
                return result
            now = time.monotonic()
            deadline = now + self.seconds if deadline is None else deadline
            delay = self.delays[tries] if tries < len(self.delays) else RETRY_MAX_DELAY
            if now + delay >= deadline:
                log.warning("%s: server unavailable for %.0f s, giving up", label, self.seconds)
                raise failure
            tries += 1
            log.info("%s: server unavailable (%s), retrying in %.1f s", label, _why(failure), delay)
            if on_retry is not None:
                on_retry()
            if stop.wait(delay):
                raise AgentError("stopped")


def _why(failure: Exception) -> str:
    return f"HTTP {failure.status}" if isinstance(failure, ServerError) else type(failure).__name__
