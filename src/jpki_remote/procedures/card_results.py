"""Applying the results of finished card scripts: card proof and eligibility, card face (surface signature),
key generation, certificates written, COMMIT and its confirmation, PIN set and changed."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.orm import Session

from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.core import (
    SW_BLOCKED,
    StepFailed,
    audit_serial,
    hex_serial,
    utc,
)
from jpki_remote.procedures.models import Procedure, StepPhase
from jpki_remote.procedures.plans import next_step
from jpki_remote.procedures.policy import Channel, ProcedureKind, Proof
from jpki_remote.procedures.surface import SURFACE_KEY_LABEL, verify_card_face
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import Card, CardState, ResidentStatus

log = logging.getLogger(__name__)


class CardResults(AuditTrail):
    """Results of card scripts."""

    def _pin_outcome(self, session: Session, proc: Procedure, sw: int, pin_kind: str) -> str:
        """A refused VERIFY: retry (the card counts), or fail when blocked. Never retried automatically."""
        tries = (sw & 0x0F) if (sw & 0xFFF0) == 0x63C0 else None
        self._journal(session, proc, proc.state, StepPhase.FAILED, pin_kind=pin_kind, tries_left=tries)
        self._audit(proc, "pin_verify", "failure", pin_kind=pin_kind, tries_left=tries)
        if sw in SW_BLOCKED:
            raise StepFailed("pin_blocked")
        self._set_data(proc, notice="pin_incorrect", pin_tries_left=tries, await_retry="pin_incorrect")
        return "pin_incorrect"

    def _result_card_proof(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        data = proc.data or {}
        proof = data["card_proof"]
        if "pin_sw" in result and result["pin_sw"] != 0x9000:
            return self._pin_outcome(
                session, proc, result["pin_sw"], "auth_pin" if proof == Proof.CARD_AUTH_KEY.value else "sign_password"
            )
        card = self._card_row(session, proc)
        resident = registry.get_resident(session, card.resident_id)
        message_bytes = self._challenge_message(proc, data["challenge"])
        signature = bytes.fromhex(result["signature"])
        if proof == Proof.CARD_KEY.value:
            if card.card_public_key_der is None:
                raise StepFailed("card_unavailable")
            public_key = serialization.load_der_public_key(card.card_public_key_der)
            cert_info: dict[str, Any] = {}
        else:
            kind = "authentication" if proof == Proof.CARD_AUTH_KEY.value else "signature"
            expected_serial = card.auth_cert_serial if kind == "authentication" else card.sign_cert_serial
            certificate_der = bytes.fromhex(result["certificate"])
            cert_info = self._check_current_certificate(kind, certificate_der, expected_serial, card)
            if kind == "signature" and card.sign_cert_facts_version != resident.facts_version:
                raise StepFailed("certificate_invalid")  # the basic four facts changed since issuance
            public_key = x509.load_der_x509_certificate(certificate_der).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise StepFailed("card_unavailable")
        try:
            public_key.verify(signature, message_bytes, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            self._audit(proc, "card_proof", "failure", reason="bad_signature")
            raise StepFailed("card_unavailable") from None
        self._take_card(session, proc)  # possession proved: only now may the card be held (S-5); busy → card_busy
        self._check_eligibility(session, proc, card, resident, cert_info)
        self._add_proof(session, proc, proof)
        self._set_data(proc, notice=None, pin_tries_left=None, challenge=secrets.token_bytes(32).hex())
        self._audit(proc, "card_proof", "success", proof_kind=proof)
        self._goto(session, proc, next_step(proc, "card_proof"))
        return None

    def _check_current_certificate(
        self, kind: str, der: bytes, expected_serial: str | None, card: Card
    ) -> dict[str, Any]:
        """The certificate read from the card must be the one our CA issued for this card, and not revoked."""
        from jpki_remote.ca.models import CertificateState

        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            raise StepFailed("card_unavailable") from None
        serial = hex_serial(certificate.serial_number)
        if expected_serial is None or serial != expected_serial:
            raise StepFailed("card_unavailable")
        status = self.ports.ca.status(kind, certificate.serial_number)
        if status is None or status.state is not CertificateState.ISSUED:
            raise StepFailed("certificate_invalid")
        stored = self.ports.ca.certificate(kind, certificate.serial_number)
        if stored.der != der:
            raise StepFailed("card_unavailable")
        not_after = utc(status.not_after)
        return {"not_after": not_after, "expired": not_after is not None and not_after < self.now()}

    def _check_eligibility(
        self, session: Session, proc: Procedure, card: Card, resident: Any, cert_info: dict[str, Any]
    ) -> None:
        remote = proc.channel in (Channel.KIOSK.value, Channel.ONLINE.value)
        usable = {CardState.ACTIVE} if remote else {CardState.ACTIVE, CardState.REMOTE_LOCKED}
        if card.state not in usable or resident.status is not ResidentStatus.ACTIVE or card.card_expiry < self.today():
            raise StepFailed("card_unavailable")
        if proc.kind == ProcedureKind.RENEWAL.value:
            not_after = cert_info.get("not_after")
            if not_after is None or not self.policy.renewal_open(not_after.date(), card.card_expiry, self.today()):
                raise StepFailed("not_in_renewal_window")
            age = registry.age_on(resident.birth_date, self.today())
            self._set_data(proc, with_sign=age >= self.policy.signature_min_age)
        elif cert_info.get("expired"):
            raise StepFailed("certificate_invalid")
        proc.resident_id = resident.id
        self._set_data(
            proc,
            old_auth_serial=card.auth_cert_serial,
            old_sign_serial=card.sign_cert_serial,
            face_challenge=self.ports.face.new_challenge() if self._needs_face(proc) and self.ports.face else None,
        )

    def _needs_face(self, proc: Procedure) -> bool:
        rule = self._rule(proc)
        return rule.accepts(Proof.FACE_LIVENESS.value) or rule.accepts(Proof.FACE_ENROLLED.value)

    def _result_read_face(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        from jpki_remote.card.client import ProtocolError, parse_card_face

        if result.get("code_sw") != 0x9000:
            sw = int(result.get("code_sw", 0))
            self._audit(proc, "card_face", "failure", reason="code_b_refused")
            if sw in SW_BLOCKED:
                raise StepFailed("card_unavailable")
            self._set_data(proc, await_retry="code_b_incorrect")
            return "code_b_incorrect"
        try:
            face = parse_card_face(bytes.fromhex(result["card_face"]))
        except ProtocolError:
            raise StepFailed("card_error") from None
        card = self._card_row(session, proc)
        if card.card_public_key_der is not None:
            ours = serialization.load_der_public_key(card.card_public_key_der)
            if ours.public_numbers() != face.public_key.public_numbers():  # type: ignore[union-attr]
                raise StepFailed("card_mismatch")
        if self.ports.surface is None or not verify_card_face(face, self.ports.surface.public_key()):
            # a copied or altered card face: refused, audited, and counted like a failed face attempt
            self._audit(proc, "card_face", "failure", reason="surface_signature_invalid")
            raise StepFailed("surface_invalid", {"face_attempt": True})
        if self.ports.face is None:
            raise StepFailed("face_refused")
        encoding = self.ports.face.encode_reference(face.photo)
        if encoding is None:
            self._audit(proc, "card_face", "failure", reason="card_photo_unusable")
            raise StepFailed("face_refused")
        self._set_data(proc, card_photo=encoding)  # the encoding only; the image is dropped here
        self._audit(proc, "card_face", "success")
        self._goto(session, proc, next_step(proc, "read_face"))
        return None

    def _result_sign_surface(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        """Issuance: the delivered card's face matched the registry and the card, and is now signed by us."""
        if result.get("code_sw") != 0x9000:
            self._audit(proc, "card_surface", "failure", reason="code_b_refused")
            if int(result.get("code_sw", 0)) in SW_BLOCKED:
                raise StepFailed("card_unavailable")
            self._set_data(proc, await_retry="code_b_incorrect")
            return "code_b_incorrect"
        if result.get("mismatch"):
            self._audit(proc, "card_surface", "failure", reason="mismatch", fields=",".join(result["mismatch"]))
            raise StepFailed("surface_mismatch")
        self._audit(proc, "card_surface", "success", key_label=SURFACE_KEY_LABEL)
        self._set_data(proc, notice=None)
        self._goto(session, proc, next_step(proc, "sign_surface"))
        return None

    def _result_generate_keys(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        self._set_data(
            proc, new_auth_public_key=result["auth_public_key"], new_sign_public_key=result.get("sign_public_key")
        )
        self._journal(session, proc, "generate_keys", StepPhase.DONE, request_id=(proc.data or {})["request_id"])
        self._audit(proc, "keys_generated", "success")
        self._goto(session, proc, "issue")
        return None

    def _result_write_certificates(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        self._audit(proc, "certificates_written", "success")
        self._goto(session, proc, "commit")
        return None

    def _result_commit(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        self._set_data(proc, committed=True, confirm_challenge=secrets.token_bytes(32).hex())
        self._journal(session, proc, "commit", StepPhase.DONE)
        self._audit(proc, "committed", "success", new_auth_serial=audit_serial(proc.data.get("new_auth_serial")))
        self._goto(session, proc, "confirm")
        return None

    def _result_confirm(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        data = proc.data or {}
        if not result.get("committed"):
            # the card still holds the old certificate: the COMMIT never took effect; write and commit again
            self._set_data(proc, commit_started=None, committed=None)
            self._journal(session, proc, "commit", StepPhase.FAILED, reason="not_committed_on_card")
            self._goto(session, proc, "write_certificates")
            return None
        self._set_data(proc, committed=True)
        if result.get("pin_sw") != 0x9000:
            return self._pin_outcome(session, proc, int(result.get("pin_sw", 0)), "auth_pin")
        certificate = x509.load_der_x509_certificate(bytes.fromhex(result["certificate"]))
        public_key = certificate.public_key()
        try:
            assert isinstance(public_key, rsa.RSAPublicKey)
            public_key.verify(
                bytes.fromhex(result["signature"]),
                self._challenge_message(proc, data["confirm_challenge"]),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, AssertionError):
            self._audit(proc, "new_keys_proven", "failure")
            raise StepFailed("card_error") from None
        self._set_data(proc, new_keys_proven=True, notice=None)
        self._audit(proc, "new_keys_proven", "success")
        self._goto(session, proc, "finish")
        return None

    def _result_set_pin(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        if not result.get("new_pin_valid"):
            self._set_data(proc, await_retry="new_pin_invalid")  # the holder chooses again, then the step restarts
            return "new_pin_invalid"
        kind = proc.state.removeprefix("set_pin_") if proc.state != "set_pin" else proc.target
        self._audit(proc, "pin_set", "success", pin_kind=kind)
        self._set_data(proc, notice=None)
        self._goto(session, proc, next_step(proc, proc.state))
        return None

    def _result_change_pin(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        verify_sw, change_sw = int(result["verify_sw"]), int(result["change_sw"])
        if verify_sw != 0x9000:
            return self._pin_outcome(session, proc, verify_sw, proc.target)
        if change_sw != 0x9000:
            self._audit(proc, "pin_changed", "failure", reason="new_pin_refused")
            self._set_data(proc, await_retry="new_pin_invalid")
            return "new_pin_invalid"
        self._add_proof(session, proc, Proof.CARD_OLD_PIN.value)
        self._audit(proc, "pin_changed", "success", pin_kind=proc.target)
        card = registry.get_card(session, proc.card_id or "")
        proc.resident_id = card.resident_id if card else None
        self._goto(session, proc, "finish")
        return None
