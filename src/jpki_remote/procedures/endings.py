"""Ending procedures: failure and rollback (uncommitted certificates revoked, never past a possible COMMIT),
cancellation, and recovery of idle procedures."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select

from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.core import audit_serial
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

    def _revoke_uncommitted(
        self, procedure_id: str, data: dict[str, Any], reason: str = "cessationOfOperation"
    ) -> dict[str, str]:
        """Revoke the certificates this procedure had issued (``reason``); returns kind -> serial (hex) revoked."""
        revoked: dict[str, str] = {}
        for kind, serial in (
            ("authentication", data.get("new_auth_serial")),
            ("signature", data.get("new_sign_serial")),
        ):
            if serial:
                self.ports.ca.revoke(kind, int(serial, 16), reason)
                revoked[kind] = serial
        if data.get("request_id") and not data.get("new_auth_serial"):
            # issuance may have happened without us recording it (crash between the CA's commit and ours)
            revoked.update(self._revoke_by_request(data["request_id"], reason))
        return revoked

    def _revoke_by_request(self, request_id: str, reason: str = "cessationOfOperation") -> dict[str, str]:
        from jpki_remote.ca.models import Certificate, CertificateState

        with self._tx() as session:
            rows = session.scalars(
                select(Certificate).where(
                    Certificate.request_id == request_id, Certificate.state == CertificateState.ISSUED
                )
            ).all()
            found = [(str(getattr(row.authority, "value", row.authority)), row.serial_hex) for row in rows]
        for authority, serial in found:
            self.ports.ca.revoke(authority, int(serial, 16), reason)
        return dict(found)

    def _end_for_lost_card(self, procedure_id: str, *, lost_by: str) -> None:
        """End the procedure holding a card that the loss report ``lost_by`` has just proved lost (all its proofs
        are in), so that the loss report can take the card and complete (a loss report wins over anything in
        progress — e.g. a thief renewing with the stolen card). The same clean path as a cancel, with two
        differences: it never stops at a (possible) COMMIT — the card is in someone else's hands, there is nothing
        to confirm — and the certificates the procedure had issued (committed on the card or not) are revoked
        ``keyCompromise``, not ``cessationOfOperation``. The card is released; the procedure ends
        ``card_reported_lost`` (rolled back when it had issued certificates), audited (``ended_by``; the loss report's
        id in its journal).
        Pending keys on the card cannot be discarded from here (the card is not at hand); no issuer session is ever
        opened for a lost card again, so they can never be committed. The loss report then revokes the card's
        current certificates and sweeps any other valid certificate of the card (``_step_revoke``)."""
        code = "card_reported_lost"
        issued = ("new_auth_serial", "new_sign_serial")
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.status is not ProcedureStatus.ACTIVE:
                proc.active_card = None  # ended but still holding the card (never expected): release it
                return
            data = dict(proc.data or {})
            self._journal(session, proc, "rollback", StepPhase.INTENT, error=code, lost_by=lost_by)
            # ended at once: from here on no step of this procedure runs, nothing more is sent to the card
            proc.status = ProcedureStatus.FAILED
            proc.error_code = code
            proc.active_card = None
            proc.conversation = None
            proc.finished_at = self.now()
        revoked = self._revoke_uncommitted(procedure_id, data, "keyCompromise")
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            # an issuance that was under way may have recorded its serials after our first read
            late = {k: v for k, v in (proc.data or {}).items() if k in issued and v and v not in revoked.values()}
            if late:
                revoked.update(self._revoke_uncommitted(procedure_id, late, "keyCompromise"))
            if revoked:
                proc.status = ProcedureStatus.ROLLED_BACK
            self._set_data(proc, card_photo=None, challenge=None, confirm_challenge=None, face_challenge=None)
            self._journal(session, proc, "rollback", StepPhase.DONE, error=code, lost_by=lost_by)
            if revoked:
                serials = {f"{kind}_serial": audit_serial(serial) for kind, serial in revoked.items()}
                self._audit(proc, "revoked", "success", reason="keyCompromise", **serials)
            self._audit(proc, "ended", "failure", reason=code, ended_by="loss_report")

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
