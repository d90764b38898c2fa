"""Opening procedures: remote and counter starts (limits first, no card lookup) and new issuance at the counter.

A start never takes the card: the procedure is inserted with ``active_card`` NULL (its card id is kept in
``card_id``), so the answer does not depend on whether the card exists or is in use elsewhere, and only the
terminal and the client address are counted here. The card is taken — and its per-card start counted — once it
has proved possession (``CardResults._take_card``; finding S-5 in docs/security.md)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jpki_remote.procedures.attempts import LockedOutError, check_attempt
from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.core import (
    CARD_PROOF_SCRIPTS,
    TERMINAL_CHANNELS,
    utc,
)
from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.procedures.models import Procedure, ProcedureStatus, StepPhase
from jpki_remote.procedures.plans import build_plan
from jpki_remote.procedures.policy import Channel, ProcedureKind, Proof
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import CardState

log = logging.getLogger(__name__)


class Starting(AuditTrail):
    """Opening procedures."""

    def start(
        self,
        *,
        kind: str,
        target: str,
        channel: str,
        card_id: str | None,
        terminal_id: str | None,
        terminal_kind: str | None = None,
        actor: str | None = None,
        options: dict[str, Any] | None = None,
        address: str | None = None,
    ) -> dict[str, Any]:
        """Open a procedure. Raises :class:`ProcedureError` (not_allowed, invalid_request) or
        :class:`LockedOutError` (rate_limited: the limits on starts per terminal and ``address``; a card's own
        limits apply when it proves possession, so an unproven start can neither probe nor lock out a card)."""
        options = dict(options or {})
        try:
            rule = self.policy.rule(kind, target, channel)
        except ValueError:
            raise ProcedureError("invalid_request", 422) from None
        if not rule.allowed:
            raise ProcedureError("not_allowed", 403)
        if terminal_kind is not None and TERMINAL_CHANNELS.get(terminal_kind) != rule.channel:
            raise ProcedureError("not_allowed", 403)
        if card_id is not None:
            try:
                registry.validate_card_id(card_id)
            except registry.RegistryError:
                raise ProcedureError("invalid_request", 422) from None
        elif rule.procedure not in (ProcedureKind.REGISTRY_EVENT,):
            raise ProcedureError("invalid_request", 422)
        try:
            check_attempt(
                self.ports.limits,
                "procedure_start",
                channel=rule.channel.value,
                card_id=None,  # counted when the card proves possession (CardResults._take_card)
                terminal_id=terminal_id,
                address=address,
            )
        except LockedOutError as exc:
            self._audit_refused_start(rule, card_id, terminal_id, exc.code)
            raise
        card_proof = self._choose_card_proof(rule, options.get("known_pin"))
        plan = build_plan(rule, card_proof)
        enrolled_face_first = (
            card_proof is None and rule.accepts(Proof.FACE_ENROLLED.value) and self.ports.face is not None
        )
        stamp = self.now()
        proc = Procedure(
            id=secrets.token_hex(16),
            kind=rule.procedure.value,
            target=target,
            channel=rule.channel.value,
            card_id=card_id,
            resident_id=None,
            terminal_id=terminal_id,
            actor=actor or (f"holder:{card_id}" if card_id else "system"),
            status=ProcedureStatus.ACTIVE,
            state=plan[0],
            proofs=[],
            data={
                "plan": plan,
                "card_proof": card_proof,
                "challenge": secrets.token_bytes(32).hex(),
                "card_present": True,
                **{k: v for k, v in options.items() if k in {"event_id", "event_kind", "documents", "staff_id"}},
                # no card to prove first (online loss report): the liveness challenge is set now, for any card id
                **({"face_challenge": self.ports.face.new_challenge()} if enrolled_face_first else {}),
            },
            conversation=None,
            exchange_seq=1,
            active_card=None,  # taken only once the card has proved possession
            created_at=stamp,
            updated_at=stamp,
            expires_at=stamp + self.idle_timeout,
        )
        if card_id is not None:
            resumed = self._free_card(card_id, terminal_id)
            if resumed is not None:
                return resumed
        with self._tx() as session:
            session.add(proc)
            session.flush()
            self._journal(session, proc, "start", StepPhase.INFO, plan=plan)
            self._audit(proc, "start", "info", card_proof=card_proof)
        return self._advance(proc.id)

    def start_issuance(
        self,
        *,
        resident_id: str,
        card_id: str,
        diversification_data: bytes,
        card_public_key_der: bytes | None,
        card_expiry: date,
        terminal_id: str | None,
        staff_id: str,
        documents: Sequence[str],
        photo: bytes | None = None,
        contacts: Sequence[tuple[str, str]] = (),
        issuer_key_version: int = 0,
    ) -> dict[str, Any]:
        """New issuance at the counter (交付): the card arrives personalised by the card centre (surface and text
        APs) without JPKI keys; staff have checked the ID documents; the holder sets the PINs at the counter
        terminal; keys are generated on the card and the certificates issued through the legal flow."""
        rule = self.policy.rule(ProcedureKind.ISSUANCE, "card", Channel.COUNTER)
        if not rule.allowed:
            raise ProcedureError("not_allowed", 403)
        encoding = None
        if photo is not None:
            if not _is_image(photo):
                raise ProcedureError("photo_unreadable", 422)  # the photo is not kept, so nothing to clean up
            if self.ports.face is None:
                raise ProcedureError("face_refused", 503)
            encoding = self.ports.face.encode_reference(photo)  # the photo itself is not kept
            if encoding is None:
                raise ProcedureError("face_refused", 422)
        try:
            with self._tx() as session:
                resident = registry.get_resident(session, resident_id)
                with_sign = registry.age_on(resident.birth_date, self.today()) >= self.policy.signature_min_age
                registry.register_card(
                    session,
                    card_id=card_id,
                    resident_id=resident_id,
                    card_expiry=card_expiry,
                    diversification_data=diversification_data,
                    issuer_key_version=issuer_key_version,
                    card_public_key_der=card_public_key_der,
                )
                registry.set_card_state(session, card_id, CardState.REMOTE_LOCKED, "issuing")
                for kind, address in contacts:
                    registry.add_contact(session, resident_id, kind, address, verified=True)
        except registry.RegistryError as exc:
            raise ProcedureError("invalid_request", 422, {"reason": exc.code}) from None
        plan = build_plan(rule, None, with_sign=with_sign)
        stamp = self.now()
        proc = Procedure(
            id=secrets.token_hex(16),
            kind=ProcedureKind.ISSUANCE.value,
            target="card",
            channel="counter",
            card_id=card_id,
            resident_id=resident_id,
            terminal_id=terminal_id,
            actor=f"staff:{staff_id}",
            status=ProcedureStatus.ACTIVE,
            state=plan[0],
            proofs=[],
            data={
                "plan": plan,
                "card_proof": None,
                "card_present": True,
                "with_sign": with_sign,
                "enrolment": encoding,
                "old_auth_serial": None,
                "old_sign_serial": None,
            },
            conversation=None,
            exchange_seq=1,
            active_card=card_id,  # staff registered this card just now, in this call, after checking documents
            created_at=stamp,
            updated_at=stamp,
            expires_at=stamp + self.idle_timeout,
        )
        try:
            with self._tx() as session:
                session.add(proc)
                session.flush()
                self._journal(session, proc, "start", StepPhase.INFO, plan=plan)
                self._audit(proc, "start", "info")
        except IntegrityError:
            raise ProcedureError("card_busy", 409) from None
        return self.record_staff_check(proc.id, staff_id, documents)

    def _audit_refused_start(self, rule: Any, card_id: str | None, terminal_id: str | None, reason: str) -> None:
        if self.ports.audit is None:
            return
        self._queue_audit(
            {
                "actor": f"holder:{card_id}" if card_id else "system",
                "event_type": f"{rule.procedure.value}.start",
                "outcome": "failure",
                "terminal_id": terminal_id,
                "procedure_id": None,
                "detail": {"channel": rule.channel.value, "target": rule.target, "reason": reason},
            }
        )

    def _choose_card_proof(self, rule: Any, known_pin: object) -> str | None:
        """Which card proof this run uses: the one the policy asks for, or the holder's choice among alternatives."""
        card_groups = [g for g in rule.proofs if any(p.value in CARD_PROOF_SCRIPTS for p in g)]
        if not card_groups:
            return None
        group = [p.value for p in card_groups[0]]
        wanted = {"auth_pin": Proof.CARD_AUTH_KEY.value, "sign_password": Proof.CARD_SIGN_KEY.value}.get(
            str(known_pin) if known_pin is not None else ""
        )
        if wanted in group:
            return wanted
        if known_pin is not None and wanted is None:
            raise ProcedureError("invalid_request", 422)
        if known_pin is not None and wanted not in group:
            raise ProcedureError("not_allowed", 403)
        return group[0]

    def _free_card(self, card_id: str, terminal_id: str | None) -> dict[str, Any] | None:
        """Before a new start: settle an expired procedure holding this card. A procedure that cannot know whether
        the card committed (its card went away after the COMMIT was sent) is *resumed* on this terminal — the card is
        here now — instead of blocking the card forever; that is the one start answer that depends on the card
        (docs/procedures.md §7). Any other procedure holding the card stops the new one only at its card proof."""
        with self._tx() as session:
            blocking = session.scalars(select(Procedure).where(Procedure.active_card == card_id)).first()
            if blocking is None:
                return None
            blocking_id = blocking.id
            data = blocking.data or {}
            expired = utc(blocking.expires_at) <= self.now()  # type: ignore[operator]
            unresolved = bool(data.get("commit_started")) and not data.get("card_present", True)
        if expired and not unresolved:
            unresolved = self._recover_one(blocking_id) == "awaiting_card"
        if not unresolved:
            return None
        with self._tx() as session:
            proc = self._load(session, blocking_id)
            proc.terminal_id = terminal_id
            self._set_data(proc, card_present=True)
            proc.conversation = None
            self._touch(proc)
            self._journal(session, proc, "resume", StepPhase.INFO, reason="commit_unresolved")
        reply = self._advance(blocking_id)
        reply["resumed"] = True
        return reply


def _is_image(data: bytes) -> bool:
    """Whether ``data`` decodes as an image Pillow knows (JPEG, PNG, JPEG 2000 …): header and structure checked
    without decoding the pixels. A decompression bomb or any other malformed file counts as unreadable."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
    except Exception:  # Pillow raises many kinds of errors for garbage: all mean "not an image"
        return False
    return True
