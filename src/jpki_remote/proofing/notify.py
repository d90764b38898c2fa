"""Holder notices after every completed renewal or PIN reset (and PIN change / revocation), with retries.

Public interface::

    from jpki_remote.proofing.notify import notify_holder, deliver_pending, HolderEvent, EventKind
    result = notify_holder(contacts, HolderEvent(EventKind.RENEWAL, procedure_id, channel="kiosk"),
                           db=db, settings=settings)
    report = deliver_pending(db=db, settings=settings)     # run periodically by a worker (or after start-up)

``notify_holder`` writes one ``proofing_notifications`` row per contact **first** (so nothing is lost if the
process dies), then tries to deliver them at once. A notice that fails with a retryable error stays ``pending``
with exponential backoff (30 s, 1 min, 2 min … capped at 1 h) until ``Settings.notification_max_attempts``; a
non-retryable error (address refused, no channel) marks it ``failed`` for an operator. Calling ``notify_holder``
again for the same procedure, event and contact does not send twice (``dedupe_key``).

Several workers may run ``deliver_pending`` at once: each notice is claimed with a short lease by a conditional
``UPDATE`` before it is sent. Delivery is at-least-once: a worker that dies between sending and recording may
cause one duplicate notice, never a lost one. Once a notice is sent or abandoned its address is replaced by the
masked form.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jpki_remote.config import Settings
from jpki_remote.proofing.delivery.base import Contact, ContactError, Deliverer, DeliveryError, Message
from jpki_remote.proofing.messages import EventKind, HolderEvent, notice_message
from jpki_remote.proofing.models import HolderNotice, NoticeState
from jpki_remote.store import Database

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)

__all__ = ["DeliveryReport", "EventKind", "HolderEvent", "Notifier", "NotifyResult", "deliver_pending", "notify_holder"]


@dataclass
class NotifyResult:
    notice_ids: list[int] = field(default_factory=list)  # one per distinct valid contact
    sent: int = 0
    pending: int = 0  # will be retried by deliver_pending
    failed: int = 0
    invalid_contacts: int = 0  # malformed contacts skipped (logged masked)


@dataclass
class DeliveryReport:
    sent: int = 0
    retry_later: int = 0
    failed: int = 0


def _insert_ignore(session: Session, values: dict[str, object]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(HolderNotice).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))


class Notifier:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        deliverer: Deliverer | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if deliverer is None:
            from jpki_remote.proofing.delivery.routing import deliverer_from_settings

            deliverer = deliverer_from_settings(settings, db)
        self.db = db
        self.deliverer = deliverer
        self.max_attempts = max(1, settings.notification_max_attempts)
        self._clock = clock or (lambda: datetime.now(UTC))

    @staticmethod
    def dedupe_key(event: HolderEvent, contact: Contact) -> str:
        raw = f"{event.procedure_id}|{event.kind}|{event.pin_kind or ''}|{contact.kind}|{contact.address}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def notify_holder(
        self, contacts: Iterable[object], event: HolderEvent, *, deliver_now: bool = True
    ) -> NotifyResult:
        """Queue one notice per registered contact (registry rows or :class:`Contact`), then try to send them."""
        result = NotifyResult()
        message = notice_message(event)
        targets: dict[str, Contact] = {}
        for raw in contacts:
            try:
                contact = Contact.of(raw)
            except ContactError:
                result.invalid_contacts += 1
                log.warning("notice for procedure %s: skipped a malformed contact", event.procedure_id)
                continue
            targets[self.dedupe_key(event, contact)] = contact
        if not targets:
            log.warning("procedure %s completed but the holder has no usable contact to notify", event.procedure_id)
            return result
        now = self._clock()
        with self.db.session() as session:
            for key, contact in targets.items():
                _insert_ignore(
                    session,
                    {
                        "dedupe_key": key,
                        "procedure_id": event.procedure_id,
                        "event_kind": str(event.kind),
                        "channel": contact.kind,
                        "address": contact.address,
                        "subject": message.subject,
                        "body": message.text_for(contact.kind),
                        "state": NoticeState.PENDING,
                        "attempts": 0,
                        "created_at": now,
                        "next_attempt_at": now,
                    },
                )
            rows = session.execute(
                select(HolderNotice.id, HolderNotice.state).where(HolderNotice.dedupe_key.in_(list(targets)))
            ).all()
        result.notice_ids = sorted(r.id for r in rows)
        if deliver_now:
            self._deliver([r.id for r in rows if r.state == NoticeState.PENDING])
        with self.db.session() as session:
            states = session.scalars(select(HolderNotice.state).where(HolderNotice.id.in_(result.notice_ids))).all()
        result.sent = sum(s == NoticeState.SENT for s in states)
        result.failed = sum(s == NoticeState.FAILED for s in states)
        result.pending = sum(s == NoticeState.PENDING for s in states)
        return result

    def deliver_pending(self, *, limit: int = 100) -> DeliveryReport:
        """Send the notices that are due (pending and past their next attempt time), at most ``limit``."""
        now = self._clock()
        with self.db.session() as session:
            due = session.scalars(
                select(HolderNotice.id)
                .where(HolderNotice.state == NoticeState.PENDING, HolderNotice.next_attempt_at <= now)
                .order_by(HolderNotice.next_attempt_at)
                .limit(limit)
            ).all()
        return self._deliver(list(due))

    def _claim(self, notice_id: int, now: datetime) -> HolderNotice | None:
        with self.db.session() as session:
            claimed = session.execute(
                update(HolderNotice)
                .where(
                    HolderNotice.id == notice_id,
                    HolderNotice.state == NoticeState.PENDING,
                    HolderNotice.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + LEASE)
            )
            if claimed.rowcount != 1:
                return None  # another worker has it, or it is not due
            return session.get(HolderNotice, notice_id)

    def _deliver(self, ids: list[int]) -> DeliveryReport:
        report = DeliveryReport()
        for notice_id in ids:
            now = self._clock()
            notice = self._claim(notice_id, now)
            if notice is None:
                continue
            contact = Contact(notice.channel, notice.address)
            try:
                self.deliverer.send(contact, Message(subject=notice.subject, body=notice.body))
            except DeliveryError as exc:
                attempts = notice.attempts + 1
                give_up = not exc.retryable or attempts >= self.max_attempts
                delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempts - 1))
                values: dict[str, object] = {
                    "attempts": attempts,
                    "last_error": str(exc)[:300],
                    "next_attempt_at": now + delay,
                }
                if give_up:
                    values.update(state=NoticeState.FAILED, address=contact.masked)
                    report.failed += 1
                    log.error("notice %d to %s abandoned after %d tries: %s", notice_id, contact.masked, attempts, exc)
                else:
                    report.retry_later += 1
                    log.warning("notice %d to %s failed (try %d), retry in %s: %s", notice_id, contact.masked,
                                attempts, delay, exc)  # fmt: skip
                with self.db.session() as session:
                    session.execute(update(HolderNotice).where(HolderNotice.id == notice_id).values(**values))
                continue
            with self.db.session() as session:
                session.execute(
                    update(HolderNotice)
                    .where(HolderNotice.id == notice_id)
                    .values(
                        state=NoticeState.SENT,
                        attempts=notice.attempts + 1,
                        sent_at=self._clock(),
                        address=contact.masked,
                        last_error=None,
                    )
                )
            report.sent += 1
        return report

    def notices(self, procedure_id: str) -> list[HolderNotice]:
        """The notices of one procedure (for the counter/admin screens)."""
        with self.db.session() as session:
            return list(session.scalars(select(HolderNotice).where(HolderNotice.procedure_id == procedure_id)))


def notify_holder(
    contacts: Iterable[object],
    event: HolderEvent,
    *,
    db: Database,
    settings: Settings,
    deliverer: Deliverer | None = None,
) -> NotifyResult:
    """Notify every registered contact of a completed procedure; see :class:`Notifier`."""
    return Notifier(db, settings, deliverer).notify_holder(contacts, event)


def deliver_pending(
    *, db: Database, settings: Settings, deliverer: Deliverer | None = None, limit: int = 100
) -> DeliveryReport:
    """One pass of the retry worker; returns what it did."""
    return Notifier(db, settings, deliverer).deliver_pending(limit=limit)
