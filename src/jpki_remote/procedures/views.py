"""What callers see of a procedure: the view (steps, proofs done and missing) and the terminal agent's reply."""

from __future__ import annotations

import logging
from typing import Any

from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.core import (
    utc,
)
from jpki_remote.procedures.errors import message
from jpki_remote.procedures.models import Procedure, ProcedureStatus
from jpki_remote.procedures.plans import CARD_STEPS, GATE_STEPS
from jpki_remote.procedures.policy import Proof

log = logging.getLogger(__name__)


class Views(AuditTrail):
    """Views and agent replies."""

    def view(self, procedure_id: str, terminal_id: str | None = None) -> dict[str, Any]:
        with self._tx() as session:
            proc = self._load(session, procedure_id, lock=False)
            self._check_terminal(proc, terminal_id)
            return self._view(proc)

    def _view(self, proc: Procedure, *, msg: str | None = None) -> dict[str, Any]:
        data = proc.data or {}
        waiting: str | None = None
        missing: list[list[str]] = []
        if proc.status is ProcedureStatus.ACTIVE:
            rule = self._rule(proc)
            missing = [[p.value for p in g] for g in rule.missing(proc.proofs or [])]
            if proc.state in CARD_STEPS:
                waiting = "card"
            elif proc.state in GATE_STEPS and missing:
                waiting = missing[0][0]
        view: dict[str, Any] = {
            "id": proc.id,
            "kind": proc.kind,
            "target": proc.target,
            "channel": proc.channel,
            "status": proc.status.value,
            "state": proc.state,
            "steps": data.get("plan", []),
            "proofs_done": list(proc.proofs or []),
            "proofs_missing": missing,
            "waiting_for": waiting,
            "face_challenge": data.get("face_challenge"),
            "face_ready": "card_photo" in data or any(Proof.FACE_ENROLLED.value in group for group in missing),
            # face captures still allowed under the tightest limit, as the last capture's answer said (null before
            # the first capture, or without limits); repeated here so a polled view keeps showing it
            "face_attempts_left": data.get("face_attempts_left"),
            "code_sent_to": data.get("code_sent_to"),
            "error": message(proc.error_code) if proc.error_code else None,
            "message": message(msg) if msg else (message(data["notice"]) if data.get("notice") else None),
            "expires_at": utc(proc.expires_at).isoformat() if proc.expires_at else None,  # type: ignore[union-attr]
        }
        return view

    def _reply(
        self, proc: Procedure, requests: list[dict[str, Any]], *, new_pin: str | None = None, msg: str | None = None
    ) -> dict[str, Any]:
        view = self._view(proc, msg=msg)
        if proc.status is ProcedureStatus.COMPLETED:
            status = "done"
        elif proc.status is not ProcedureStatus.ACTIVE:
            status = "failed"
        elif (proc.data or {}).get("await_retry"):
            status = "retry"
        elif requests or new_pin:
            status = "card"
        elif proc.state in CARD_STEPS and not (proc.data or {}).get("card_present", True):
            status = "insert_card"
        else:
            status = "wait"
        view.update(
            {"exchange": {"status": status, "seq": proc.exchange_seq, "requests": requests, "new_pin": new_pin}}
        )
        return view
