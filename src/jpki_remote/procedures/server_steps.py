"""Steps that run on the server: issuance request, CA issuance, revocation, and finishing (revoke old, notify)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm.exc import StaleDataError

from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.core import (
    StepFailed,
    audit_serial,
    hex_serial,
)
from jpki_remote.procedures.models import Procedure, ProcedureStatus, StepPhase
from jpki_remote.procedures.policy import ProcedureKind
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import CardState
from jpki_remote.store import database_unavailable

log = logging.getLogger(__name__)


class ServerSteps(AuditTrail):
    """Server-side steps."""

    def _server_step(self, procedure_id: str, step: str) -> None:
        try:
            getattr(self, f"_step_{step}")(procedure_id)
        except StepFailed as fail:
            self._fail(procedure_id, fail.code)
        except StaleDataError:
            log.info("procedure %s: concurrent update in %s, continuing from the stored state", procedure_id, step)

    def _step_issue(self, procedure_id: str) -> None:
        from jpki_remote.procedures.legal_flow import HolderFacts

        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.state != "issue":
                return
            data = dict(proc.data or {})
            card = self._card_row(session, proc)
            resident = registry.get_resident(session, card.resident_id)
            municipality = session.get(registry.Municipality, card.municipality_code)
            facts = HolderFacts(
                holder_ref=card.card_id,
                municipality_code=card.municipality_code,
                prefecture=municipality.prefecture if municipality else "",
                city=municipality.name if municipality else "",
                name=resident.full_name,
                address=resident.address,
                birth_date=resident.birth_date,
                sex=resident.sex,
            )
            card_expiry, facts_version = card.card_expiry, resident.facts_version
            self._journal(session, proc, "issue", StepPhase.INTENT, request_id=data["request_id"])
        auth_key = serialization.load_der_public_key(bytes.fromhex(data["new_auth_public_key"]))
        sign_hex = data.get("new_sign_public_key")
        sign_key = serialization.load_der_public_key(bytes.fromhex(sign_hex)) if sign_hex else None
        try:
            issued = self.ports.legal_flow.request_issuance(
                request_id=data["request_id"],
                facts=facts,
                auth_public_key=auth_key,
                sign_public_key=sign_key,
                card_expiry=card_expiry,
            )
        except Exception as exc:
            if database_unavailable(exc):
                # the database, not the issuance, failed: the step stays at "issue" and is tried again (503 to the
                # caller) with the same request id, which the CA answers with the same certificates
                raise
            log.warning("procedure %s: issuance failed: %s: %s", procedure_id, type(exc).__name__, exc)
            self._audit(proc, "issued", "error", reason=type(exc).__name__)
            raise StepFailed("issuance_failed") from None
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            # ended without completing (a completed one got this same pair from an earlier call: the CA's
            # issuance is idempotent per request id, and that pair is the card's now)
            ended = proc.status not in (ProcedureStatus.ACTIVE, ProcedureStatus.COMPLETED)
            lost = proc.error_code == "card_reported_lost"
            if (proc.state != "issue" and not ended) or proc.status is ProcedureStatus.COMPLETED:
                return
        if ended:
            # the procedure was ended while the CA was issuing (e.g. its card reported lost): nothing will ever use
            # this pair — revoked at once, never recorded as the procedure's
            serials = {"new_auth_serial": hex_serial(issued.auth_serial)}
            if issued.sign_serial is not None:
                serials["new_sign_serial"] = hex_serial(issued.sign_serial)
            self._revoke_uncommitted(procedure_id, serials, "keyCompromise" if lost else "cessationOfOperation")
            return
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.state != "issue" or proc.status is not ProcedureStatus.ACTIVE:
                return
            self._set_data(
                proc,
                new_auth_certificate=issued.auth_der.hex(),
                new_sign_certificate=issued.sign_der.hex() if issued.sign_der else None,
                new_auth_serial=hex_serial(issued.auth_serial),
                new_sign_serial=hex_serial(issued.sign_serial) if issued.sign_serial is not None else None,
                facts_version=facts_version,
            )
            self._journal(session, proc, "issue", StepPhase.DONE, request_id=data["request_id"])
            self._goto(session, proc, "write_certificates")
            self._audit(proc, "issued", "success", auth_serial=audit_serial(hex_serial(issued.auth_serial)))

    def _step_keys_request(self, procedure_id: str) -> None:
        """Persist the issuance request id before the first APDU of the card update."""
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.state != "keys_request":
                return
            request_id = f"{proc.id[:20]}-{secrets.token_hex(6)}"
            self._set_data(proc, request_id=request_id)
            self._journal(session, proc, "keys_request", StepPhase.INTENT, request_id=request_id)
            self._goto(session, proc, "generate_keys")

    def _step_revoke(self, procedure_id: str) -> None:
        """Revocation on request, on loss, or after a registry event (which certificates and why: see plans)."""
        from jpki_remote.procedures.plans import revocations_for

        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.state != "revoke":
                return
            card = registry.get_card(session, proc.card_id) if proc.card_id else None
            if card is None:
                raise StepFailed("card_unavailable")
            targets, reason, card_state = revocations_for(proc, card)
            proc.resident_id = card.resident_id
            self._journal(
                session,
                proc,
                "revoke",
                StepPhase.INTENT,
                reason=reason,
                serials={k: audit_serial(v) for k, v in targets.items()},
            )
            municipality_code = card.municipality_code
            lost_card = proc.card_id if proc.kind == ProcedureKind.LOSS_REPORT.value else None
        for kind, serial in targets.items():
            if serial:
                self.ports.ca.revoke(kind, int(serial, 16), reason)
        others = 0
        if lost_card is not None:
            # every other valid certificate of the lost card too: a pair issued by a procedure the loss report
            # ended (committed on the card or not), whatever the card row says now (already revoked ones keep
            # their reason; the ended procedure revoked its own pair keyCompromise)
            others = len(self.ports.ca.revoke_for_holder(lost_card, reason))
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            card = registry.get_card(session, proc.card_id or "", for_update=True)
            assert card is not None
            if "authentication" in targets:
                card.auth_cert_serial = None
            if "signature" in targets:
                card.sign_cert_serial = None
                card.sign_cert_facts_version = None
            if card_state is not None:
                registry.set_card_state(session, card.card_id, card_state, f"{proc.kind}:{reason}")
            self._journal(session, proc, "revoke", StepPhase.DONE, reason=reason)
            self._set_data(proc, revoked={k: v for k, v in targets.items() if v}, revocation_reason=reason)
            self._goto(session, proc, "finish")
        if self.ports.legal_flow is not None and targets:
            self.ports.legal_flow.notify_revocation(
                request_id=procedure_id,
                municipality_code=municipality_code,
                reason=reason,
                serials={k: v for k, v in targets.items() if v},
            )
        self._audit(
            proc,
            "revoked",
            "success",
            reason=reason,
            other_count=others or None,
            **{f"{k}_serial": audit_serial(v) for k, v in targets.items() if v},
        )

    def _step_finish(self, procedure_id: str) -> None:
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.state != "finish" or proc.status is not ProcedureStatus.ACTIVE:
                return
            data = dict(proc.data or {})
            kind = proc.kind
            self._journal(session, proc, "finish", StepPhase.INTENT)
        if kind in (ProcedureKind.RENEWAL.value, ProcedureKind.ISSUANCE.value):
            self._finish_renewal(procedure_id, data)
        if kind == ProcedureKind.ISSUANCE.value:
            self._finish_issuance(procedure_id, data)
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.status is not ProcedureStatus.ACTIVE:
                return
            contacts = registry.contacts_of(session, proc.resident_id) if proc.resident_id else []
            contact_values = [type("C", (), {"kind": c.kind.value, "address": c.address})() for c in contacts]
        sent = self._notify(proc, contact_values)
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.status is not ProcedureStatus.ACTIVE:
                return
            proc.status = ProcedureStatus.COMPLETED
            proc.active_card = None
            proc.finished_at = self.now()
            self._set_data(
                proc, card_photo=None, challenge=None, confirm_challenge=None, face_challenge=None, notice=None
            )
            self._journal(session, proc, "finish", StepPhase.DONE, notices=sent)
        self._audit(proc, "completed", "success", notice_count=sent)

    def _finish_renewal(self, procedure_id: str, data: dict[str, Any]) -> None:
        """Old certificates revoked (superseded) only now that the card has committed the new ones."""
        for kind, old, new in (
            ("authentication", data.get("old_auth_serial"), data.get("new_auth_serial")),
            ("signature", data.get("old_sign_serial"), data.get("new_sign_serial")),
        ):
            if old and old != new:
                self.ports.ca.revoke(kind, int(old, 16), "superseded")
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            registry.set_current_certificates(
                session,
                proc.card_id or "",
                auth_serial=data.get("new_auth_serial"),
                sign_serial=data.get("new_sign_serial"),
                facts_version=data.get("facts_version"),
            )
            self._journal(session, proc, "revoke_old", StepPhase.DONE, reason="superseded")

    def _finish_issuance(self, procedure_id: str, data: dict[str, Any]) -> None:
        """The card goes into service: enrolled face encoding kept (not the photo), remote procedures enabled."""
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            card = registry.get_card(session, proc.card_id or "", for_update=True)
            assert card is not None
            if data.get("enrolment") and self.ports.face is not None:
                registry.enrol_face(session, card.card_id, data["enrolment"], self.ports.face.model)
            card.state = CardState.ACTIVE
            card.state_reason = ""
            self._set_data(proc, enrolment=None)
            self._journal(session, proc, "card_in_service", StepPhase.DONE)

    def _notify(self, proc: Procedure, contacts: list[Any]) -> int:
        if self.ports.notices is None or not contacts:
            return 0
        # issuance too: the holder is at the counter, but a card issued in their name must reach their contacts
        event_kind = {
            "renewal": "renewal",
            "pin_reset": "pin_reset",
            "pin_change": "pin_change",
            ProcedureKind.ISSUANCE.value: "issuance",
            ProcedureKind.LOSS_REPORT.value: "loss_report",  # its own words: the card is lost, not just revoked
        }.get(proc.kind, "revocation")
        pin_kind = {"sign_password": "sign", "auth_pin": "auth", "residence_pin": "residence", "text_pin": "text"}.get(
            proc.target
        )
        try:
            return self.ports.notices.notify(
                contacts, {"kind": event_kind, "procedure_id": proc.id, "channel": proc.channel, "pin_kind": pin_kind}
            )
        except Exception as exc:
            if database_unavailable(exc):
                raise  # not completed without its notices: tried again with the step (queued once per contact)
            log.exception("notices for procedure %s failed", proc.id)
            return 0
