"""The common machinery of the procedure engine: constants, the row helpers (load, journal, data, transitions)
and :class:`EngineCore`, the base every part of :class:`jpki_remote.procedures.engine.Engine` builds on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jpki_remote.procedures import card_issuer, card_public, card_surface
from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.procedures.models import Procedure, ProcedureStep, StepPhase
from jpki_remote.procedures.policy import Channel, Policy, Proof, default_policy
from jpki_remote.procedures.ports import Ports
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import Card
from jpki_remote.store import Database

log = logging.getLogger(__name__)

_AUDIT_BUFFER: ContextVar[list[dict[str, Any]] | None] = ContextVar("procedure_audit_buffer", default=None)
# Events after an effect that cannot be undone: never blocked by the audit log, queued and appended late if need be.
AFTER_EFFECT_EVENTS = frozenset(
    {"committed", "new_keys_proven", "pin_set", "pin_changed", "revoked", "completed", "ended", "pin_verify"}
)
LATE_AUDIT_SECONDS = 60
ISSUER_SCRIPTS: dict[str, Callable[..., dict[str, Any]]] = {**card_issuer.SCRIPTS, **card_surface.SCRIPTS}
SCRIPTS: dict[str, Callable[..., dict[str, Any]]] = {**card_public.SCRIPTS, **ISSUER_SCRIPTS}
CHALLENGE_CONTEXT = b"jpki-remote card challenge v1\x00"
IDLE_TIMEOUT = timedelta(minutes=15)
MAX_ADVANCE = 32
SW_BLOCKED = {0x63C0, 0x6984, 0x6983}
TERMINAL_CHANNELS = {"kiosk": Channel.KIOSK, "app": Channel.ONLINE, "counter": Channel.COUNTER}
# A completed loss report wins the card: a procedure holding it (a thief mid-renewal with the stolen card) is ended
# with ``card_reported_lost`` instead of the loss report failing with ``card_busy`` (Endings._end_for_lost_card).
PREEMPTING_KINDS = frozenset({"loss_report"})
CARD_PROOF_SCRIPTS = {
    Proof.CARD_AUTH_KEY.value: ("prove_with_jpki_key", "auth"),
    Proof.CARD_SIGN_KEY.value: ("prove_with_jpki_key", "sign"),
    Proof.CARD_KEY.value: ("prove_card_key", None),
}


def utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def der_hex(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.DER).hex()


def hex_serial(value: int) -> str:
    return format(value, "x")


def audit_serial(serial: str | None) -> str | None:
    return None if serial is None else "0x" + serial


class StepFailed(Exception):
    """A step ends the procedure with ``code`` (the engine rolls back what must be undone)."""

    def __init__(self, code: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail or {}


class EngineCore:
    """State shared by the engine's parts; one instance per process is fine (no per-procedure state)."""

    def __init__(
        self,
        db: Database,
        ports: Ports,
        *,
        policy: Policy | None = None,
        clock: Callable[[], datetime] | None = None,
        idle_timeout: timedelta = IDLE_TIMEOUT,
    ) -> None:
        self.db = db
        self.ports = ports
        self.policy = policy or default_policy()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.idle_timeout = idle_timeout

    def now(self) -> datetime:
        return self._clock()

    def today(self) -> date:
        return self.now().date()

    def _load(self, session: Session, procedure_id: str, *, lock: bool = True) -> Procedure:
        if not isinstance(procedure_id, str) or not 1 <= len(procedure_id) <= 32:
            raise ProcedureError("not_found", 404)
        stmt = select(Procedure).where(Procedure.id == procedure_id)
        if lock:
            stmt = stmt.with_for_update()
        proc = session.scalars(stmt).first()
        if proc is None:
            raise ProcedureError("not_found", 404)
        return proc

    @staticmethod
    def _check_terminal(proc: Procedure, terminal_id: str | None) -> None:
        if terminal_id is not None and proc.terminal_id is not None and proc.terminal_id != terminal_id:
            raise ProcedureError("not_found", 404)  # another terminal's procedure does not exist for this one

    def _journal(self, session: Session, proc: Procedure, name: str, phase: StepPhase, **detail: Any) -> None:
        count = session.scalar(
            select(ProcedureStep.seq).where(ProcedureStep.procedure_id == proc.id).order_by(ProcedureStep.seq.desc())
        )
        session.add(
            ProcedureStep(
                procedure_id=proc.id, seq=(count or 0) + 1, name=name, phase=phase, detail=detail, at=self.now()
            )
        )

    def _set_data(self, proc: Procedure, **values: Any) -> None:
        data = dict(proc.data or {})
        for key, value in values.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        proc.data = data

    def _touch(self, proc: Procedure) -> None:
        proc.updated_at = self.now()
        proc.expires_at = self.now() + self.idle_timeout

    def _rule(self, proc: Procedure):
        return self.policy.rule(proc.kind, proc.target, proc.channel)

    def _goto(self, session: Session, proc: Procedure, step: str) -> None:
        self._journal(session, proc, proc.state, StepPhase.DONE)
        proc.state = step
        proc.conversation = None
        self._touch(proc)

    def _add_proof(self, session: Session, proc: Procedure, proof: str) -> None:
        proofs = list(proc.proofs or [])
        if proof not in proofs:
            proofs.append(proof)
        proc.proofs = proofs
        self._journal(session, proc, f"proof:{proof}", StepPhase.DONE)

    def _take_card(self, session: Session, proc: Procedure) -> bool:
        """Make this procedure the one holding its card (``active_card``, UNIQUE): called once the card has proved
        possession — or, for a procedure without a card proof (counter staff check, loss report), once every proof
        is in — never at start (finding S-5). The UPDATE runs in a SAVEPOINT: when another procedure holds the card
        (two terminals racing, the loser's UPDATE hits the constraint) only the SAVEPOINT is rolled back, nothing
        else of the step is lost, and the step fails with ``card_busy`` — by then the terminal has shown it holds
        the card, so saying it is busy reveals nothing (``detail["held_by"]``: the holding procedure, for a loss
        report, which ends it: :data:`PREEMPTING_KINDS`). Returns whether the card was taken now."""
        if proc.card_id is None or proc.active_card == proc.card_id:
            return False
        session.flush()  # the step's own changes first: the SAVEPOINT holds the UPDATE of active_card alone
        try:
            with session.begin_nested():
                proc.active_card = proc.card_id
                session.flush()
        except IntegrityError:
            with session.no_autoflush:
                holder = session.scalar(select(Procedure.id).where(Procedure.active_card == proc.card_id))
            raise StepFailed("card_busy", {"held_by": holder} if holder else None) from None
        return True

    def _card_row(self, session: Session, proc: Procedure) -> Card:
        card = registry.get_card(session, proc.card_id or "")
        if card is None:
            raise StepFailed("card_unavailable")
        return card

    def _challenge_message(self, proc: Procedure, challenge_hex: str) -> bytes:
        return CHALLENGE_CONTEXT + proc.id.encode() + b"\x00" + bytes.fromhex(challenge_hex)
