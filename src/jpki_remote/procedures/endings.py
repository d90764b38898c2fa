"""Ending procedures: failure and rollback (uncommitted certificates revoked, never past a possible COMMIT),
cancellation, and recovery of idle procedures."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select

from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.models import Procedure, ProcedureStatus, StepPhase

log = logging.getLogger(__name__)


class Endings(AuditTrail):
    """Failure, rollback, cancel, recovery."""

    def _fail(self, procedure_id: str, code: str) -> None:
        """End the procedure: undo what must be undone (uncommitted certificates), release the card."""
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.status is not ProcedureStatus.ACTIVE:
                return
            data = dict(proc.data or {})
            if data.get("commit_started") or data.get("committed"):
                # never roll back past a (possible) COMMIT: stay resumable; the card tells the truth next time
                proc.state = "confirm" if not data.get("committed") else proc.state
                proc.conversation = None
                self._set_data(
                    proc, notice=code, confirm_challenge=data.get("confirm_challenge") or secrets.token_bytes(32).hex()
                )
                self._journal(session, proc, proc.state, StepPhase.FAILED, error=code)
                return
            self._journal(session, proc, "rollback", StepPhase.INTENT, error=code)
        self._revoke_uncommitted(procedure_id, data)
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            proc.status = ProcedureStatus.ROLLED_BACK if data.get("new_auth_serial") else ProcedureStatus.FAILED
            proc.error_code = code
            proc.active_card = None
            proc.conversation = None
            proc.finished_at = self.now()
            self._set_data(proc, card_photo=None)
            self._journal(session, proc, "rollback", StepPhase.DONE, error=code)
        self._audit(proc, "ended", "failure" if code not in ("expired",) else "error", reason=code)

    def _revoke_uncommitted(self, procedure_id: str, data: dict[str, Any]) -> None:
        for kind, serial in (
            ("authentication", data.get("new_auth_serial")),
            ("signature", data.get("new_sign_serial")),
        ):
            if serial:
                self.ports.ca.revoke(kind, int(serial, 16), "cessationOfOperation")
        if data.get("request_id") and not data.get("new_auth_serial"):
            # issuance may have happened without us recording it (crash between the CA's commit and ours)
            self._revoke_by_request(data["request_id"])

    def _revoke_by_request(self, request_id: str) -> None:
        from jpki_remote.ca.models import Certificate, CertificateState

        with self._tx() as session:
            rows = session.scalars(
                select(Certificate).where(
                    Certificate.request_id == request_id, Certificate.state == CertificateState.ISSUED
                )
            ).all()
            found = [(row.authority, row.serial_hex) for row in rows]
        for authority, serial in found:
            self.ports.ca.revoke(authority, int(serial, 16), "cessationOfOperation")

    def cancel(self, procedure_id: str, terminal_id: str | None) -> dict[str, Any]:
        with self._tx() as session:
            proc = self._load(session, procedure_id, lock=False)
            self._check_terminal(proc, terminal_id)
        self._fail(procedure_id, "cancelled")
        with self._tx() as session:
            proc = self._load(session, procedure_id, lock=False)
            if proc.status is ProcedureStatus.FAILED and proc.error_code == "cancelled":
                proc.status = ProcedureStatus.CANCELLED
            return self._view(proc)

    def recover(self, *, now: datetime | None = None) -> list[tuple[str, str]]:
        """Finish or roll back every active procedure idle past its deadline (after appending any audit events
        that waited for the audit log). Returns (id, outcome) pairs."""
        self.flush_audit_backlog()
        moment = now or self.now()
        with self._tx() as session:
            ids = list(
                session.scalars(
                    select(Procedure.id).where(
                        Procedure.status == ProcedureStatus.ACTIVE, Procedure.expires_at < moment
                    )
                )
            )
        return [(pid, self._recover_one(pid)) for pid in ids]

    def _recover_one(self, procedure_id: str) -> str:
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.status is not ProcedureStatus.ACTIVE:
                return proc.status.value
            data = dict(proc.data or {})
            state = proc.state
            if data.get("committed") and state in ("confirm", "finish"):
                proc.state = "finish"
                proc.conversation = None
                self._journal(session, proc, "recover", StepPhase.INFO, action="finish")
                finish = True
            elif data.get("commit_started"):
                proc.state = "confirm"
                proc.conversation = None
                self._set_data(proc, card_present=False)
                self._journal(session, proc, "recover", StepPhase.INFO, action="awaiting_card")
                return "awaiting_card"
            elif state == "finish":
                finish = True
            else:
                finish = False
        if finish:
            self._step_finish(procedure_id)
            return "completed"
        self._fail(procedure_id, "expired")
        return "rolled_back" if data.get("new_auth_serial") or data.get("request_id") else "failed"
