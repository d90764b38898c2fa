"""The status service: one object per process wiring the OCSP responder, the CRL cache, the background publisher
and the CA's status-change hook.

Typical use (what ``jpki-remote serve`` / ``ca serve-status`` do)::

    service = StatusService(settings, db, open_keystore(settings))
    service.subscribe()                    # refresh OCSP responses as soon as the CA issues or revokes
    worker = service.start_background()    # CRL shards and OCSP refresh, off the request path
    ...
    worker.stop(); service.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

from sqlalchemy import select

from jpki_remote.ca.keystore import KeyStore
from jpki_remote.ca.models import AuthorityKind, CrlShard
from jpki_remote.ca.status import crl, precompute
from jpki_remote.ca.status.responder import OcspResponder, epoch
from jpki_remote.config import Settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredCrl:
    der: bytes
    crl_number: int
    this_update: float  # epoch seconds
    next_update: float
    etag: str


class CrlCache:
    """Shard CRLs in memory; each entry re-checked against the database (CRL number only) after ``ttl`` seconds."""

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._entries: dict[tuple[AuthorityKind, int], tuple[float, StoredCrl | None]] = {}
        self._lock = threading.Lock()

    def peek(self, kind: AuthorityKind, shard: int) -> tuple[bool, StoredCrl | None]:
        """``(fresh, crl)`` from memory only; ``fresh`` False means call :meth:`get` (off the event loop)."""
        found = self._entries.get((kind, shard))
        if found is None or found[0] < time.monotonic():
            return False, None
        return True, found[1]

    def get(self, kind: AuthorityKind, shard: int) -> StoredCrl | None:
        """The current CRL of the shard (None if never published). Blocking: may read the database."""
        fresh, stored = self.peek(kind, shard)
        if fresh:
            return stored
        previous = self._entries.get((kind, shard))
        previous_crl = previous[1] if previous else None
        with self.db.session() as session:
            number = session.execute(
                select(CrlShard.crl_number).where(CrlShard.authority == kind, CrlShard.shard == shard)
            ).scalar()
            if number is None:
                stored = None
            elif previous_crl is not None and previous_crl.crl_number == number:
                stored = previous_crl
            else:
                row = session.execute(
                    select(CrlShard.der, CrlShard.crl_number, CrlShard.this_update, CrlShard.next_update).where(
                        CrlShard.authority == kind, CrlShard.shard == shard
                    )
                ).one()
                stored = StoredCrl(
                    row.der,
                    row.crl_number,
                    epoch(row.this_update),
                    epoch(row.next_update),
                    f'"{kind.value}-{shard}-{row.crl_number}-{sha256(row.der).hexdigest()[:16]}"',
                )
        with self._lock:
            self._entries[(kind, shard)] = (time.monotonic() + self.ttl, stored)
        return stored


class BackgroundWorker:
    """A daemon thread that publishes changed CRL shards and refreshes due OCSP responses every ``interval`` s."""

    def __init__(self, service: StatusService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jpki-status-publisher", daemon=True)
        self.runs = 0

    def start(self) -> BackgroundWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Run soon (after a revocation: its shard CRL is rebuilt without waiting a whole period)."""
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.service.run_background_once()
            except Exception:
                log.exception("status background run failed; retrying next period")
            self.runs += 1
            self._wake.wait(self.interval)
            self._wake.clear()


class StatusService:
    def __init__(self, settings: Settings, db: Database, keys: KeyStore, *, cache_ttl: float | None = None) -> None:
        ttl = settings.ocsp_cache_seconds if cache_ttl is None else cache_ttl
        self.settings = settings
        self.db = db
        self.keys = keys
        self.responder = OcspResponder(db, keys, settings, cache_ttl=ttl)
        self.crls = CrlCache(db, ttl)
        self.worker: BackgroundWorker | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # --- work ------------------------------------------------------------------------------------------------------

    def publish_crls(self, *, force: bool = False) -> list[crl.PublishedShard]:
        return crl.publish_all(self.db, self.keys, self.settings, force=force)

    def refresh(self, kind: AuthorityKind | str, serials: list[int]) -> int:
        """Re-sign the precomputed OCSP responses of ``serials`` now and drop them from the in-memory cache."""
        kind = AuthorityKind(kind)
        done = precompute.refresh(self.db, self.keys, self.settings, kind, serials)
        for serial in serials:
            self.responder.cache.discard(kind, serial)
        return done

    def refresh_due(self) -> int:
        return precompute.refresh_due(self.db, self.keys, self.settings)

    def run_background_once(self) -> tuple[int, int]:
        """One publisher pass: ``(CRL shards published, OCSP certificates refreshed)``. It also picks up an OCSP
        signer renewed by ``ca setup`` (the responder then signs with it) before re-signing what is due — first of all
        the precomputed responses still made by the old signer."""
        self.responder.check_signers(force=True)
        published = self.publish_crls()
        refreshed = self.refresh_due()
        if published or refreshed:
            log.info("status: %d CRL shards published, %d OCSP responses refreshed", len(published), refreshed)
        return len(published), refreshed

    def start_background(self, interval: float | None = None) -> BackgroundWorker:
        self.worker = BackgroundWorker(self, interval or self.settings.status_poll_seconds).start()
        return self.worker

    # --- the CA's status-change hook -----------------------------------------------------------------------------

    def subscribe(self) -> Callable[[], None]:
        """Refresh OCSP responses when the CA (in this process) issues or revokes; returns the unsubscribe call."""
        from jpki_remote.ca.hooks import StatusChange, on_status_change, remove_status_listener

        def listener(change: StatusChange) -> None:
            if change.db.url != self.db.url:
                return
            self.refresh(change.kind, [change.serial])
            if self.worker is not None:
                self.worker.wake()

        on_status_change(listener)
        self._unsubscribe = lambda: remove_status_listener(listener)
        return self._unsubscribe

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
