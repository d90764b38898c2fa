"""Status-change hooks: who wants to know when a certificate is issued, revoked or released from hold.

The interface is deliberately tiny::

    from jpki_remote.ca.hooks import StatusChange, on_status_change

    def refresh(change: StatusChange) -> None:
        ...  # e.g. precompute the OCSP response for (change.kind, change.serial) in change.db

    unsubscribe = on_status_change(refresh)   # also usable as a decorator

:class:`~jpki_remote.ca.authority.CertificateAuthority` calls every listener once per changed certificate, in
registration order, AFTER the change is committed (so a listener reads the new state from ``change.db``). A
listener that raises is logged and skipped; it never undoes the issuance or revocation — listeners must therefore
be safe to miss (the OCSP refresher also runs periodically). Listeners run in the issuing thread: keep them short
or hand the work to a queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jpki_remote.ca.models import AuthorityKind, CertificateState
from jpki_remote.store import database_unavailable

if TYPE_CHECKING:
    from jpki_remote.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusChange:
    """One certificate's new status, as committed."""

    db: Database  # the database the change was committed to
    kind: AuthorityKind
    serial: int
    state: CertificateState  # ISSUED (new, or released from hold) or REVOKED
    not_after: datetime
    revoked_at: datetime | None = None
    reason: int | None = None  # RFC 5280 CRLReason code when REVOKED

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


StatusListener = Callable[[StatusChange], None]

_listeners: list[StatusListener] = []
_lock = threading.Lock()


def on_status_change(listener: StatusListener) -> StatusListener:
    """Register ``listener``; returns it (decorator use). Remove it with :func:`remove_status_listener`."""
    with _lock:
        _listeners.append(listener)
    return listener


def remove_status_listener(listener: StatusListener) -> None:
    """Unregister ``listener`` (no error if it was not registered)."""
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def notify(changes: list[StatusChange]) -> None:
    """Call every listener for every change. Used by the CA after commit; listeners' errors are logged."""
    with _lock:
        listeners = list(_listeners)
    for change in changes:
        for listener in listeners:
            try:
                listener(change)
            except Exception as exc:
                if database_unavailable(exc):  # the status service's periodic refresh catches up: one line
                    log.warning(
                        "status listener %r: database unavailable for %s serial %s; left to the periodic refresh",
                        listener,
                        change.kind,
                        change.serial_hex,
                    )
                    continue
                log.exception("status listener %r failed for %s serial %s", listener, change.kind, change.serial_hex)
