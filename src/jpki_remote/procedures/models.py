"""Procedure tables: one row per procedure (its durable state machine) and its step journal.

* ``active_card`` equals ``card_id`` while the procedure *holds* the card — from the card's proof of possession
  (or, without a card proof, from the moment every proof is in; a PIN change never holds it) to the end — and is
  NULL otherwise; its UNIQUE constraint is what makes "one procedure per card" true across every server process (two
  terminals racing on one card: the second UPDATE fails, exactly one wins). A start never sets it (finding S-5).
* ``version`` is SQLAlchemy's optimistic lock: a worker that loaded an older version cannot overwrite a newer one.
* ``data`` holds the procedure's non-secret working state (challenges, request ids, public keys, serials,
  proofs' outcomes); ``conversation`` the card transcript (digests + card responses) of the running card script.
  Neither ever holds a PIN, a security code or an image.
* ``procedure_steps`` is the journal: an ``intent`` row is committed before each side effect (CA issuance, COMMIT on
  the card, revocation), a ``done``/``failed`` row after it, so recovery knows what may have happened.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jpki_remote.store.database import Base


class ProcedureStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"  # ended without effect on the card; see error_code (e.g. sent to the counter)
    ROLLED_BACK = "rolled_back"  # interrupted and undone: uncommitted certificates revoked, pending discarded
    CANCELLED = "cancelled"


class StepPhase(enum.StrEnum):
    INTENT = "intent"
    DONE = "done"
    FAILED = "failed"
    INFO = "info"


class Procedure(Base):
    __tablename__ = "procedures"
    __table_args__ = (UniqueConstraint("active_card", name="uq_procedures_active_card"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    card_id: Mapped[str | None] = mapped_column(String(32), index=True)
    resident_id: Mapped[str | None] = mapped_column(String(32), index=True)
    terminal_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(64))  # holder:<card> or staff:<id>
    status: Mapped[ProcedureStatus] = mapped_column(
        Enum(ProcedureStatus, native_enum=False, length=16, values_callable=lambda m: [x.value for x in m]),
        index=True,
    )
    state: Mapped[str] = mapped_column(String(48))
    proofs: Mapped[list[str]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    conversation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    exchange_seq: Mapped[int] = mapped_column(Integer, default=0)
    active_card: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ProcedureStep(Base):
    __tablename__ = "procedure_steps"
    __table_args__ = (UniqueConstraint("procedure_id", "seq", name="uq_procedure_steps_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    procedure_id: Mapped[str] = mapped_column(ForeignKey("procedures.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(48))
    phase: Mapped[StepPhase] = mapped_column(
        Enum(StepPhase, native_enum=False, length=16, values_callable=lambda m: [x.value for x in m])
    )
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditBacklog(Base):
    """Audit events of steps whose effect can no longer be undone (a COMMIT or a new PIN on the card, a revocation,
    the end of a procedure), written in the same transaction as the step and appended to the audit log right after
    it commits. A row that is still here means the audit log was unavailable: recovery appends it later
    (``Engine.flush_audit_backlog``), so such an event is late but never lost. Same detail rules as the log."""

    __tablename__ = "procedure_audit_backlog"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
