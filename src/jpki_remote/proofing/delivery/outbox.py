"""DEVELOPMENT OUTBOX — not a delivery channel for production.

Messages are stored in ``proofing_dev_outbox`` (clear text, security codes included) so the demo can show them on
screen and scripted runs can read the code. It is the default (``JPKI_DELIVERY=outbox``) because the embedded setup
has no mail server or SMS gateway; a production deployment sets ``JPKI_DELIVERY=smtp,sms``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from jpki_remote.proofing.delivery.base import Contact, Message
from jpki_remote.proofing.models import DevOutboxMessage
from jpki_remote.store import Database

log = logging.getLogger(__name__)
_warned = False


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    channel: str
    address: str
    subject: str
    body: str
    created_at: datetime


class DevOutboxDeliverer:
    """Stores messages in the database instead of sending them. FOR DEVELOPMENT AND THE DEMO ONLY."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def send(self, contact: Contact, message: Message) -> None:
        global _warned
        if not _warned:
            log.warning("development outbox in use: messages are stored, not sent (set JPKI_DELIVERY for production)")
            _warned = True
        with self.db.session() as session:
            session.add(
                DevOutboxMessage(
                    channel=contact.kind,
                    address=contact.address,
                    subject=message.subject,
                    body=message.text_for(contact.kind),
                    created_at=datetime.now(UTC),
                )
            )


def dev_outbox(db: Database, *, address: str | None = None, limit: int = 20) -> list[OutboxEntry]:
    """Newest first; ``address`` in any accepted spelling narrows to one contact. For the demo screen and tests."""
    query = select(DevOutboxMessage).order_by(DevOutboxMessage.id.desc()).limit(limit)
    if address is not None:
        kind = "email" if "@" in address else "mobile"
        query = query.where(DevOutboxMessage.address == Contact.of(kind, address).address)
    with db.session() as session:
        return [
            OutboxEntry(r.id, r.channel, r.address, r.subject, r.body, r.created_at) for r in session.scalars(query)
        ]
