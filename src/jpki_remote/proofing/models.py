"""Proofing tables: security codes and their per-procedure failure budget, the development outbox, the holder
notification outbox, and the database backend of the rate-limit counters and lockouts.

What is kept and why:

* ``proofing_security_codes`` — one row per code sent: the HMAC-SHA-256 of the code (never the code), the
  procedure and purpose it is bound to, the masked contact (for the screen), and when it expires / was used.
* ``proofing_code_budgets`` — one row per (procedure, purpose): the wrong entries so far, shared by every code
  of that procedure (a resend does not reset it), how many codes were sent and when the last one was.
* ``proofing_dev_outbox`` — DEVELOPMENT ONLY: messages "sent" by the outbox deliverer, clear text included (so the
  demo can show the code on screen). Production sets ``JPKI_DELIVERY=smtp,sms`` and this table stays empty.
* ``proofing_notifications`` — holder notices waiting for (or done with) delivery; the address is replaced by its
  masked form once delivered or abandoned. Notices never contain a code or a PIN.
* ``proofing_rate_counters`` / ``proofing_lockouts`` — rate-limit windows and lockouts when Redis is not used.
  Subjects are HMACs of the card id / terminal id / client address, never the values themselves.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, Enum, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jpki_remote.store.database import Base


class SecurityCode(Base):
    __tablename__ = "proofing_security_codes"
    __table_args__ = (Index("ix_proofing_security_codes_procedure", "procedure_id", "purpose", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    procedure_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    channel: Mapped[str] = mapped_column(String(16))  # email / mobile
    contact_masked: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    superseded: Mapped[bool] = mapped_column(default=False)  # a newer code was sent, or delivery failed


class CodeBudget(Base):
    __tablename__ = "proofing_code_budgets"

    procedure_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    last_issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DevOutboxMessage(Base):
    """DEVELOPMENT ONLY — see the module docstring."""

    __tablename__ = "proofing_dev_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NoticeState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after Settings.notification_max_attempts, or the address was refused


class HolderNotice(Base):
    __tablename__ = "proofing_notifications"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_proofing_notifications_dedupe"),
        Index("ix_proofing_notifications_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(64))  # one notice per event and contact, however often asked
    procedure_id: Mapped[str | None] = mapped_column(String(64), index=True)
    event_kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))  # masked once the notice is sent or failed
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[NoticeState] = mapped_column(Enum(NoticeState, native_enum=False, length=16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateCounter(Base):
    __tablename__ = "proofing_rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Lockout(Base):
    __tablename__ = "proofing_lockouts"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
