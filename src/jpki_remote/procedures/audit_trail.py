"""Audit of every step, failing closed: :class:`AuditTrail` gives the engine its transactions (``_tx``), in
which a step and its audit event commit together, and the backlog for events after irreversible effects
(see ``docs/procedures.md`` §3)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jpki_remote.procedures.core import (
    _AUDIT_BUFFER,
    AFTER_EFFECT_EVENTS,
    LATE_AUDIT_SECONDS,
    EngineCore,
    utc,
)
from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.procedures.models import AuditBacklog, Procedure
from jpki_remote.store.database import database_unavailable

log = logging.getLogger(__name__)


class AuditTrail(EngineCore):
    """Fail-closed transactions and the audit backlog."""

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A transaction whose audit events commit with it (fail closed, OWASP ASVS 16.5.3).

        Events raised inside it are appended at its end, in the same database transaction: a step and its event
        commit together or not at all, and when the audit log cannot take the event the step is not carried out
        (``audit_unavailable``, 503: "try again later"). Events that describe an effect that can no longer be
        undone (:data:`AFTER_EFFECT_EVENTS`, and every refusal) are instead written to the audit backlog in the
        same transaction and appended right after it commits — late, never lost, if the log is down then."""
        buffer: list[dict[str, Any]] = []
        token = _AUDIT_BUFFER.set(buffer)
        backlog = False
        try:
            with self.db.session() as session:
                yield session
                backlog = self._append_audit(session, buffer)
        finally:
            _AUDIT_BUFFER.reset(token)
        if backlog:
            self.flush_audit_backlog()

    @staticmethod
    def _after_effect(record: dict[str, Any]) -> bool:
        event = str(record["event_type"]).rsplit(".", 1)[-1]
        return event in AFTER_EFFECT_EVENTS or record["outcome"] in ("failure", "error")

    def _append_audit(self, session: Session, records: list[dict[str, Any]]) -> bool:
        """Append the gate events in ``session``; queue the after-effect ones. Returns whether any were queued."""
        port = self.ports.audit
        if port is None or not records:
            return False
        gate = [r for r in records if not self._after_effect(r)]
        queued = [r for r in records if self._after_effect(r)]
        if gate and hasattr(port, "record_batch"):
            try:
                port.record_batch(gate, session=session)
            except Exception as exc:
                if database_unavailable(exc):  # an outage: one line, the caller tries again (503)
                    log.warning(
                        "audit append failed, database unavailable: the step is not carried out (%s): %s",
                        gate[0]["event_type"],
                        type(exc).__name__,
                    )
                else:
                    log.exception("audit append failed: the step is not carried out (%s)", gate[0]["event_type"])
                raise ProcedureError("audit_unavailable", 503) from None
        elif gate:
            queued = gate + queued  # a port without transactions: through the backlog, right after the commit
        stamp = self.now()
        for record in queued:
            session.add(AuditBacklog(record=record, created_at=stamp))
        return bool(queued)

    def flush_audit_backlog(self, *, limit: int = 200) -> int:
        """Append queued audit events (oldest first) and delete them, in one transaction. Returns how many were
        appended; 0 when the audit log is still unavailable (they stay queued; :meth:`recover` tries again)."""
        port = self.ports.audit
        if port is None:
            return 0
        try:
            with self.db.session() as session:
                stmt = select(AuditBacklog.id).order_by(AuditBacklog.id).limit(limit)
                if self.db.is_postgresql:
                    stmt = stmt.with_for_update(skip_locked=True)
                ids = list(session.scalars(stmt))
                if not ids:
                    return 0
                # Claim the rows by deleting them, and append what the DELETE returns — never what an earlier read
                # saw. SQLite has no SKIP LOCKED: two workers may read the same ids; the second one's DELETE waits
                # for the first's commit and then finds them gone — or, the table emptied in between, finds a *new*
                # row under a reused id. Either way each event is appended once, by the worker that deleted it.
                claim = (
                    delete(AuditBacklog)
                    .where(AuditBacklog.id.in_(ids))
                    .returning(AuditBacklog.id, AuditBacklog.record, AuditBacklog.created_at)
                )
                rows = sorted(session.execute(claim, execution_options={"synchronize_session": False}).all())
                if not rows:
                    return 0
                now = self.now()
                records = []
                for _id, stored, created_at in rows:
                    record = dict(stored)
                    late = int((now - utc(created_at)).total_seconds())  # type: ignore[operator]
                    if late >= LATE_AUDIT_SECONDS:
                        record["detail"] = {**(record.get("detail") or {}), "delayed_seconds": late}
                    records.append(record)
                if hasattr(port, "record_batch"):
                    port.record_batch(records, session=session)
                else:
                    for record in records:
                        port.record(**record)
                return len(rows)
        except Exception as exc:
            log.error("audit log unavailable: queued events stay in the backlog (%s: %s)", type(exc).__name__, exc)
            return 0

    def _audit(self, proc: Procedure, event: str, outcome: str, **detail: Any) -> None:
        if self.ports.audit is None:
            return
        clean = {k: v for k, v in detail.items() if v is not None}
        self._queue_audit(
            {
                "actor": proc.actor,
                "event_type": f"{proc.kind}.{event}",
                "outcome": outcome,
                "terminal_id": proc.terminal_id,
                "procedure_id": proc.id,
                "detail": {"channel": proc.channel, "target": proc.target, **clean},
            }
        )

    def _queue_audit(self, record: dict[str, Any]) -> None:
        buffer = _AUDIT_BUFFER.get()
        if buffer is not None:
            buffer.append(record)
            return
        with self._tx():  # on its own: a transaction of its own
            buffer = _AUDIT_BUFFER.get()
            assert buffer is not None
            buffer.append(record)
