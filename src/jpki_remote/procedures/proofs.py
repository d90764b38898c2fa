"""Proofs posted by the browser or staff: security codes, face captures with liveness, staff checks — each
behind the rate limits."""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from jpki_remote.procedures.attempts import LockedOutError, check_attempt
from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.errors import ProcedureError, message
from jpki_remote.procedures.models import Procedure, ProcedureStatus
from jpki_remote.procedures.policy import ProcedureKind, Proof
from jpki_remote.procedures.ports import FaceResult
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import CardState, ResidentStatus

if TYPE_CHECKING:
    from jpki_remote.proofing.liveness.reasons import LivenessReason

log = logging.getLogger(__name__)
MAX_LIVENESS_REASONS = 16  # the audit allow-list's bound on a list of names


def _decoy_encoding(size: int = 128) -> list[float]:
    """A random face encoding of the size the face model produces (dlib ResNet: 128, norm about 1): the reference
    of a face check with no real reference, compared like a real one, never accepted."""
    rng = secrets.SystemRandom()
    values = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def liveness_reasons(detail: dict[str, Any]) -> list[LivenessReason]:
    """The liveness checker's reason codes of a refused capture (``FaceResult.detail["liveness_reasons"]``), as
    :class:`LivenessReason` members: codes only — anything else a face port might put there is dropped."""
    raw = detail.get("liveness_reasons") if isinstance(detail, dict) else None
    if not isinstance(raw, list | tuple):
        return []
    from jpki_remote.proofing.liveness.reasons import LivenessReason  # here: the liveness package loads numpy

    known = {r.value: r for r in LivenessReason}
    found: list[LivenessReason] = []
    for value in raw:
        reason = known.get(value) if isinstance(value, str) else None
        if reason is not None and reason not in found:
            found.append(reason)
    return found[:MAX_LIVENESS_REASONS]


class Proofs(AuditTrail):
    """Proofs from the browser or staff."""

    def _proof_target(self, session: Session, procedure_id: str, terminal_id: str | None, proof: str) -> Procedure:
        proc = self._load(session, procedure_id)
        self._check_terminal(proc, terminal_id)
        if proc.status is not ProcedureStatus.ACTIVE:
            raise ProcedureError("not_active", 409)
        if not self._rule(proc).accepts(proof):
            raise ProcedureError("proof_not_required", 409)
        return proc

    def _limit(
        self, proc: Procedure, kind: str, terminal_id: str | None, address: str | None, *, card_only: bool = False
    ) -> int | None:
        """Count one attempt; a lockout ends the procedure (audited) and raises :class:`LockedOutError`.
        ``card_only``: count the card alone (its start, once it proved possession: the terminal and the address
        were counted when the procedure started). An online loss report's card is counted under its own limits
        (:meth:`Limits.for_loss_reports`, finding S-17): its attempts come before any proof, so they must not lock
        the holder's card out of other procedures; its terminal and address are counted as usual."""
        terminal = None if card_only else terminal_id or proc.terminal_id
        address = None if card_only else address
        try:
            if proc.kind != ProcedureKind.LOSS_REPORT.value or self.ports.limits is None:
                return check_attempt(
                    self.ports.limits,
                    kind,
                    channel=proc.channel,
                    card_id=proc.card_id,
                    terminal_id=terminal,
                    address=address,
                ).remaining
            left = [
                check_attempt(limits, kind, channel=proc.channel, card_id=card, terminal_id=at, address=addr).remaining
                for limits, card, at, addr in (
                    (self.ports.limits, None, terminal, address),  # first: a grinding client is stopped here
                    (self.ports.limits.for_loss_reports(), proc.card_id, None, None),
                )
            ]
        except LockedOutError as exc:
            self._audit(proc, "limits", "failure", attempt_kind=kind, reason=exc.code)
            self._fail(proc.id, exc.code)
            raise
        counted = [n for n in left if n is not None]
        return min(counted) if counted else None

    def request_code(self, procedure_id: str, terminal_id: str | None, *, address: str | None = None) -> dict[str, Any]:
        with self._tx() as session:
            proc = self._proof_target(session, procedure_id, terminal_id, Proof.SECURITY_CODE.value)
            if proc.resident_id is None:
                # nobody is identified yet: the card has not proved possession — or, in an online loss report (no
                # card), the face has not matched the card's enrolled photo. A code goes to the holder's contact only
                # after that, and an unknown card id gets this same answer (finding S-17)
                raise ProcedureError("wrong_step", 409)
            contacts = registry.contacts_of(session, proc.resident_id, verified_only=True)
            kind = proc.kind
        if not contacts or self.ports.codes is None:
            raise ProcedureError("no_contact", 409)
        try:
            self._limit(proc, "code_attempt", terminal_id, address)
        except LockedOutError:
            return self.view(procedure_id)
        contact = sorted(contacts, key=lambda c: 0 if c.kind.value == "mobile" else 1)[0]
        from jpki_remote.proofing.codes import CodeIssueRefused

        try:
            issued = self.ports.codes.issue(procedure_id, kind, contact)
        except CodeIssueRefused as exc:
            if exc.reason == "locked":
                self._fail(procedure_id, "code_locked")
                return self.view(procedure_id)
            raise ProcedureError(
                "code_refused",
                429 if exc.reason in ("cooldown", "too_many_codes") else 503,
                {"reason": exc.reason},
                retry_after=exc.seconds_left(),  # a cooldown: when the next code may be sent
            ) from None
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            self._set_data(proc, code_sent_to=issued.contact_masked)
            self._touch(proc)
            self._audit(proc, "code_sent", "success", contact_kind=contact.kind.value)
        return self.view(procedure_id)

    def verify_code(
        self, procedure_id: str, terminal_id: str | None, entered: object, *, address: str | None = None
    ) -> dict[str, Any]:
        with self._tx() as session:
            proc = self._proof_target(session, procedure_id, terminal_id, Proof.SECURITY_CODE.value)
            if not (proc.data or {}).get("code_sent_to"):
                # no code was sent (one is sent only after the card proved possession): nothing to check, and no
                # attempt is counted against the card — else anyone could lock a card out with guesses (S-5)
                raise ProcedureError("wrong_step", 409)
            kind = proc.kind
            attempts = int((proc.data or {}).get("code_attempts", 0)) + 1
            self._set_data(proc, code_attempts=attempts)
        if self.ports.codes is None:
            raise ProcedureError("no_contact", 409)
        try:
            self._limit(proc, "code_attempt", terminal_id, address)
        except LockedOutError:
            return self.view(procedure_id)
        outcome = self.ports.codes.verify(procedure_id, kind, entered)
        status = str(getattr(outcome.status, "value", outcome.status))
        if outcome.accepted:
            with self._tx() as session:
                proc = self._load(session, procedure_id)
                self._add_proof(session, proc, Proof.SECURITY_CODE.value)
                self._touch(proc)
                self._audit(proc, "code_verify", "success", result=status, tries_left=outcome.tries_left)
            return self._advance(procedure_id)
        self._audit(proc, "code_verify", "failure", result=status, tries_left=outcome.tries_left)
        if status == "locked":
            self._fail(procedure_id, "code_locked")
            return self.view(procedure_id)
        view = self.view(procedure_id)
        view["message"] = message("code_wrong" if status in ("wrong", "malformed") else "code_expired")
        view["code_tries_left"] = outcome.tries_left
        return view

    def submit_face(
        self, procedure_id: str, terminal_id: str | None, frames: Sequence[bytes], *, address: str | None = None
    ) -> dict[str, Any]:
        """Frames of a live capture (JPEG/PNG bytes, in order, covering the liveness challenge). Every capture is
        one ``face_attempt`` under the limits, counted before the comparison; a lockout ends the procedure."""
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            self._check_terminal(proc, terminal_id)
            if proc.status is not ProcedureStatus.ACTIVE:
                raise ProcedureError("not_active", 409)
            rule = self._rule(proc)
            proof = Proof.FACE_LIVENESS.value if rule.accepts(Proof.FACE_LIVENESS.value) else Proof.FACE_ENROLLED.value
            if not rule.accepts(proof):
                raise ProcedureError("proof_not_required", 409)
            data = dict(proc.data or {})
            if proof == Proof.FACE_LIVENESS.value and "card_photo" not in data:
                raise ProcedureError("wrong_step", 409)
            enrolled: list[float] | None = None
            if proof == Proof.FACE_ENROLLED.value and self.ports.face is not None:
                # no card (loss report): the presented card id's enrolled photo — or, for an unknown id, a card that
                # cannot be reported or has no usable photo, a decoy compared all the same, so that every answer
                # until the face matches is the same as for a real card and another face (finding S-17)
                enrolled = self._enrolled_reference(session, proc)
            attempts = int(data.get("face_attempts", 0)) + 1
            self._set_data(proc, face_attempts=attempts)
            self._touch(proc)
        if self.ports.face is None:
            raise ProcedureError("face_refused", 503)
        try:
            remaining = self._limit(proc, "face_attempt", terminal_id, address)
        except LockedOutError as exc:
            view = self.view(procedure_id)
            view["face_result"] = {"reason": exc.code, "attempts_left": 0}
            return view
        decoy = proof == Proof.FACE_ENROLLED.value and enrolled is None
        result = self.ports.face.verify(
            frames,
            card_photo=data.get("card_photo"),
            enrolled=_decoy_encoding() if decoy else enrolled,
            challenge=data.get("face_challenge") or {},
            card_id=proc.card_id,
        )
        if decoy and result.matched:  # nothing to match: a decoy is never a match (and practically never close)
            result = FaceResult(False, True, "no_match", distance=result.distance)
        outcome = {"result": result.reason, "score": result.distance, "attempt_count": attempts}
        if result.matched:
            with self._tx() as session:
                proc = self._load(session, procedure_id)
                if proof == Proof.FACE_ENROLLED.value:
                    card = registry.get_card(session, proc.card_id or "")
                    proc.resident_id = card.resident_id if card else None  # identified: a code may now be sent
                self._add_proof(session, proc, proof)
                self._set_data(proc, face_attempts_left=remaining)
                self._audit(proc, "face_match", "success", **outcome)
            return self._advance(procedure_id)
        reasons = liveness_reasons(result.detail)
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            self._set_data(proc, face_attempts_left=remaining)  # the polled view shows it until the next capture
            self._audit(proc, "face_match", "failure", **outcome, liveness_reasons=reasons or None)
        if not result.retry_allowed:
            self._fail(procedure_id, "face_refused")
        view = self.view(procedure_id)
        view["face_result"] = {
            "reason": result.reason,
            "attempts_left": remaining,
            "liveness_reasons": [{"code": r.value, "ja": r.message_ja, "en": r.message_en} for r in reasons],
        }
        if view["status"] == "active":
            view["message"] = message("face_retry")
        return view

    def _enrolled_reference(self, session: Session, proc: Procedure) -> list[float] | None:
        """The encoding of the photo enrolled for the procedure's card, if the card may be reported lost online (in
        use or locked out of remote procedures, its resident registered) and has one of the face port's model;
        else None (the caller compares a decoy)."""
        card = registry.get_card(session, proc.card_id) if proc.card_id else None
        if card is None or card.state not in (CardState.ACTIVE, CardState.REMOTE_LOCKED):
            return None
        resident = registry.get_resident(session, card.resident_id)
        if resident.status is not ResidentStatus.ACTIVE:
            return None
        enrolled = registry.enrolled_encoding(session, card.card_id)
        if enrolled is None or self.ports.face is None or enrolled[0] != self.ports.face.model:
            return None
        return enrolled[1]

    def record_staff_check(self, procedure_id: str, staff_id: str, documents: Sequence[str]) -> dict[str, Any]:
        """Counter staff confirm they checked the holder's ID documents (types only, never numbers)."""
        docs = [str(d)[:40] for d in documents][:5]
        if not staff_id or not docs:
            raise ProcedureError("invalid_request", 422)
        with self._tx() as session:
            proc = self._proof_target(session, procedure_id, None, Proof.STAFF_CHECK.value)
            self._add_proof(session, proc, Proof.STAFF_CHECK.value)
            self._set_data(proc, staff_id=staff_id, documents=docs)
            if proc.card_id and proc.resident_id is None:
                card = registry.get_card(session, proc.card_id)
                proc.resident_id = card.resident_id if card else None
            self._touch(proc)
            self._audit(proc, "staff_check", "success", staff_id=staff_id, document_types=docs)
        return self._advance(procedure_id)
