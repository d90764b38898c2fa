"""The durable procedure engine: every procedure is a state machine whose whole state lives in its database row.

Nothing is kept in memory between calls. Each call loads the row (locked), moves it forward and commits; side
effects outside the database row — CA issuance, revocation, COMMIT on the card, notices — are preceded by an
``intent`` journal row committed *before* the effect and followed by a ``done`` row, so that after any crash the
recovery (:meth:`Engine.recover`) knows what may have happened. The rules:

* request ids (CA issuance) are persisted before the first APDU of the card update, so a retry re-uses them and the
  CA's per-request idempotency guarantees no second issuance;
* the old certificates stay active until the card's COMMIT; a certificate issued but never committed is revoked with
  reason **cessationOfOperation** — its key pair was discarded on the card before it was ever used, so the
  certificate ceased to be needed without any suspicion of compromise; ``superseded`` would tell relying parties to
  look for a successor that may not exist (the holder may never come back);
* a COMMIT whose answer was lost leaves the procedure active in ``confirm``: the next contact with the card (any
  terminal) reads the auth certificate actually active on it and continues from the truth;
* one active procedure per card is a UNIQUE constraint (``procedures.active_card``).

Starting a procedure never reveals whether the card exists: the start answer is the same for any well-formed card
id; eligibility (card state, resident status, renewal window, certificate validity) is checked only once the card
has proved possession (a signature with a key of that card).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from jpki_remote.procedures import card_issuer, card_public, card_surface
from jpki_remote.procedures.attempts import LockedOutError, check_attempt
from jpki_remote.procedures.conversation import (
    ConversationError,
    RunOutcome,
    Transcript,
    record_responses,
    run_script,
)
from jpki_remote.procedures.errors import ProcedureError, message
from jpki_remote.procedures.models import AuditBacklog, Procedure, ProcedureStatus, ProcedureStep, StepPhase
from jpki_remote.procedures.plans import CARD_STEPS, GATE_STEPS, build_plan, next_step
from jpki_remote.procedures.policy import Channel, Policy, ProcedureKind, Proof, default_policy
from jpki_remote.procedures.ports import Ports
from jpki_remote.procedures.surface import SURFACE_KEY_LABEL, verify_card_face
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import Card, CardState, ResidentStatus
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
CARD_PROOF_SCRIPTS = {
    Proof.CARD_AUTH_KEY.value: ("prove_with_jpki_key", "auth"),
    Proof.CARD_SIGN_KEY.value: ("prove_with_jpki_key", "sign"),
    Proof.CARD_KEY.value: ("prove_card_key", None),
}


def utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _der_hex(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.DER).hex()


def _hex_serial(value: int) -> str:
    return format(value, "x")


def _audit_serial(serial: str | None) -> str | None:
    return None if serial is None else "0x" + serial


class _Fail(Exception):
    def __init__(self, code: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail or {}


class Engine:
    """Drives procedures. One instance per process is fine; it holds no per-procedure state."""

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

    # ================================================================================================ helpers
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
            except Exception:
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
                stmt = select(AuditBacklog).order_by(AuditBacklog.id).limit(limit)
                if self.db.is_postgresql:
                    stmt = stmt.with_for_update(skip_locked=True)
                rows = list(session.scalars(stmt))
                if not rows:
                    return 0
                now = self.now()
                records = []
                for row in rows:
                    record = dict(row.record)
                    late = int((now - utc(row.created_at)).total_seconds())  # type: ignore[operator]
                    if late >= LATE_AUDIT_SECONDS:
                        record["detail"] = {**(record.get("detail") or {}), "delayed_seconds": late}
                    records.append(record)
                if hasattr(port, "record_batch"):
                    port.record_batch(records, session=session)
                else:
                    for record in records:
                        port.record(**record)
                for row in rows:
                    session.delete(row)
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

    # ================================================================================================ start
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
        """Open a procedure. Raises :class:`ProcedureError` (not_allowed, card_busy, invalid_request) or
        :class:`LockedOutError` (locked_out / rate_limited: the limits on starts per card, terminal, ``address``)."""
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
                card_id=card_id,
                terminal_id=terminal_id,
                address=address,
            )
        except LockedOutError as exc:
            self._audit_refused_start(rule, card_id, terminal_id, exc.code)
            raise
        card_proof = self._choose_card_proof(rule, options.get("known_pin"))
        plan = build_plan(rule, card_proof)
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
            },
            conversation=None,
            exchange_seq=1,
            active_card=card_id,
            created_at=stamp,
            updated_at=stamp,
            expires_at=stamp + self.idle_timeout,
        )
        if card_id is not None:
            resumed = self._free_card(card_id, terminal_id)
            if resumed is not None:
                return resumed
        try:
            with self._tx() as session:
                session.add(proc)
                session.flush()
                self._journal(session, proc, "start", StepPhase.INFO, plan=plan)
                self._audit(proc, "start", "info", card_proof=card_proof)
        except IntegrityError:
            raise ProcedureError("card_busy", 409) from None
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
            active_card=card_id,
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
        """Before a new start: settle an expired procedure on this card. A procedure that cannot know whether the
        card committed (its card went away after the COMMIT was sent) is *resumed* on this terminal — the card is
        here now — instead of blocking the card forever."""
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

    # ================================================================================================ views
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
            "code_sent_to": data.get("code_sent_to"),
            "error": message(proc.error_code) if proc.error_code else None,
            "message": message(msg) if msg else (message(data["notice"]) if data.get("notice") else None),
            "expires_at": utc(proc.expires_at).isoformat() if proc.expires_at else None,  # type: ignore[union-attr]
        }
        return view

    # ================================================================================================ exchange
    def exchange(
        self,
        procedure_id: str,
        terminal_id: str | None,
        *,
        seq: int | None,
        responses: Sequence[bytes],
        new_pin: str | None = None,
        event: str | None = None,
    ) -> dict[str, Any]:
        """The terminal agent's call: answers to the last batch in, the next batch (or wait/done/failed) out."""
        if event not in (None, "card_removed", "card_inserted", "retry"):
            raise ProcedureError("invalid_request", 422)
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            self._check_terminal(proc, terminal_id)
            if proc.status is not ProcedureStatus.ACTIVE:
                return self._reply(proc, [])
            self._touch(proc)
            if event == "card_removed":
                self._card_removed(session, proc)
                return self._reply(proc, [], msg="card_removed")
            if event == "card_inserted":
                self._set_data(proc, card_present=True)
                proc.conversation = None
            if event == "retry":
                self._set_data(proc, await_retry=None)
            if responses:
                digest = hashlib.sha256(b"".join(len(r).to_bytes(3, "big") + r for r in responses)).hexdigest()
                last = (proc.data or {}).get("last_exchange") or {}
                if seq == last.get("seq") and digest == last.get("hash"):
                    pass  # a retry of a request we already took in: answer it again from the current state
                elif seq != proc.exchange_seq or proc.conversation is None:
                    raise ProcedureError("out_of_sequence", 409)
                else:
                    conv = dict(proc.conversation)
                    transcript = Transcript.from_json(conv["transcript"])
                    try:
                        record_responses(transcript, conv.get("pending", []), responses)
                    except ConversationError:
                        raise ProcedureError("invalid_request", 422) from None
                    conv["transcript"] = transcript.to_json()
                    conv["pending"] = []
                    proc.conversation = conv
                    self._set_data(proc, last_exchange={"seq": proc.exchange_seq, "hash": digest})
                    proc.exchange_seq += 1
        return self._advance(procedure_id, new_pin=new_pin)

    def _card_removed(self, session: Session, proc: Procedure) -> None:
        self._set_data(proc, card_present=False)
        proc.conversation = None
        if proc.state == "commit" and (proc.data or {}).get("commit_started"):
            proc.state = "confirm"  # the COMMIT may or may not have reached the card: ask the card next time
            self._set_data(proc, confirm_challenge=secrets.token_bytes(32).hex())
        self._journal(session, proc, proc.state, StepPhase.INFO, event="card_removed")

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

    # ================================================================================================ advancing
    def _advance(self, procedure_id: str, *, new_pin: str | None = None) -> dict[str, Any]:
        """Move the procedure forward until it needs the card, a proof, or ends. Returns the reply/view."""
        msg: str | None = None
        for _ in range(MAX_ADVANCE):
            server_step: str | None = None
            counted = False
            with self._tx() as session:
                proc = self._load(session, procedure_id)
                if proc.status is not ProcedureStatus.ACTIVE:
                    return self._reply(proc, [], msg=msg)
                step = proc.state
                if step in GATE_STEPS:
                    if self._rule(proc).missing(proc.proofs or []):
                        return self._reply(proc, [], msg=msg)
                    self._goto(session, proc, next_step(proc, step))
                    continue
                if step in CARD_STEPS:
                    data = proc.data or {}
                    if not data.get("card_present", True) or data.get("await_retry"):
                        return self._reply(proc, [], msg=msg or data.get("await_retry"))
                    if proc.conversation is None:
                        self._start_conversation(session, proc, step)
                    try:
                        outcome = self._run(proc, new_pin)
                    except _Fail as fail:
                        server_step = "!fail:" + fail.code
                        outcome = None
                    if outcome is not None and "commit_sent" in outcome.checkpoints and not data.get("commit_started"):
                        # durably recorded before the COMMIT leaves the server (the reply is sent after our commit)
                        self._journal(session, proc, "commit", StepPhase.INTENT)
                        self._set_data(proc, commit_started=True)
                    if outcome is not None and not outcome.finished:
                        conv = dict(proc.conversation or {})
                        conv["pending"] = [r.digest for r in outcome.requests]
                        proc.conversation = conv
                        return self._reply(
                            proc, [r.wire for r in outcome.requests], new_pin=outcome.needs_new_pin, msg=msg
                        )
                    if outcome is not None:
                        proc.conversation = None
                        new_pin = None  # a new PIN serves the one conversation it was sent for
                        try:
                            msg = self._on_result(session, proc, step, outcome.result or {})
                        except _Fail as fail:
                            server_step = "!fail:" + fail.code
                            counted = bool(fail.detail.get("face_attempt"))
                        if server_step is None:
                            continue
                else:
                    server_step = step
            if server_step.startswith("!fail:"):
                code = server_step[6:]
                if counted:  # a refusal the limits count as a face attempt (outside the step's transaction)
                    try:
                        self._limit(proc, "face_attempt", None, None)
                    except LockedOutError:
                        continue  # the lockout ended the procedure
                self._fail(procedure_id, code)
                continue
            self._server_step(procedure_id, server_step)
        raise ProcedureError("internal", 500)

    def _goto(self, session: Session, proc: Procedure, step: str) -> None:
        self._journal(session, proc, proc.state, StepPhase.DONE)
        proc.state = step
        proc.conversation = None
        self._touch(proc)

    # ---- card conversations ---------------------------------------------------------------------------------
    def _card_row(self, session: Session, proc: Procedure) -> Card:
        card = registry.get_card(session, proc.card_id or "")
        if card is None:
            raise _Fail("card_unavailable")
        return card

    def _start_conversation(self, session: Session, proc: Procedure, step: str) -> None:
        data = proc.data or {}
        params: dict[str, Any]
        if step == "card_proof":
            script, key = CARD_PROOF_SCRIPTS[data["card_proof"]]
            params = {"challenge": self._challenge_message(proc, data["challenge"]).hex()}
            if key:
                params["key"] = key
        elif step == "read_face":
            script, params = "read_card_face", {}
        elif step == "confirm":
            script = "confirm_new_keys"
            params = {
                "expected_certificate": data["new_auth_certificate"],
                "challenge": self._challenge_message(proc, data["confirm_challenge"]).hex(),
            }
        elif step == "change_pin":
            script, params = "change_pin", {"pin_kind": proc.target}
        else:
            card = self._card_row(session, proc)
            script = step
            params = {"key_version": card.issuer_key_version, "kdd": card.diversification_data.hex()}
            if step == "generate_keys":
                params["with_sign"] = bool(data.get("with_sign", True))
            elif step == "write_certificates":
                params["auth_certificate"] = data["new_auth_certificate"]
                params["sign_certificate"] = data.get("new_sign_certificate")
                params["auth_ca"] = _der_hex(self.ports.ca.authority_certificate("authentication"))
                if data.get("new_sign_certificate"):
                    params["sign_ca"] = _der_hex(self.ports.ca.authority_certificate("signature"))
            elif step == "sign_surface":
                resident = registry.get_resident(session, card.resident_id)
                params.update(
                    birth_date=resident.birth_date.isoformat(),
                    sex=str(resident.sex),
                    card_expiry=card.card_expiry.isoformat(),
                    card_key=card.card_public_key_der.hex() if card.card_public_key_der else None,
                )
            elif step.startswith("set_pin"):
                script = "set_pin"
                params["pin_kind"] = step.removeprefix("set_pin_") if step != "set_pin" else proc.target
        proc.conversation = {
            "step": step,
            "script": script,
            "params": params,
            "transcript": Transcript(secrets.token_bytes(32)).to_json(),
            "pending": [],
        }

    def _challenge_message(self, proc: Procedure, challenge_hex: str) -> bytes:
        return CHALLENGE_CONTEXT + proc.id.encode() + b"\x00" + bytes.fromhex(challenge_hex)

    def _run(self, proc: Procedure, new_pin: str | None) -> RunOutcome:
        from jpki_remote.card.client import CardError

        conv = proc.conversation or {}
        params = dict(conv["params"])
        if conv["script"] in ISSUER_SCRIPTS:
            params["_master_key"] = self.ports.issuer_keys.master_key(int(params.get("key_version", 0)))
        if conv["script"] == "sign_surface":
            if self.ports.surface is None:
                raise _Fail("surface_invalid")
            params["_surface_signer"] = self.ports.surface
        if conv["script"] != "set_pin":
            new_pin = None
        try:
            outcome = run_script(
                SCRIPTS[conv["script"]], params, Transcript.from_json(conv["transcript"]), new_pin=new_pin
            )
        except card_public.CardFailure as exc:
            log.info("procedure %s: card refused %s (SW %04X)", proc.id, exc.what, exc.sw)
            raise _Fail("card_error", {"sw": f"{exc.sw:04X}"}) from None
        except card_issuer.CardMismatchError:
            raise _Fail("card_mismatch") from None
        except (CardError, ConversationError, ValueError, KeyError) as exc:
            log.info("procedure %s: card conversation failed: %s", proc.id, type(exc).__name__)
            raise _Fail("card_error") from None
        return outcome

    # ---- results of card steps -------------------------------------------------------------------------------
    def _on_result(self, session: Session, proc: Procedure, step: str, result: dict[str, Any]) -> str | None:
        """Apply a finished card script's result; returns a message code for the terminal (or None)."""
        handler = getattr(self, "_result_set_pin" if step.startswith("set_pin") else f"_result_{step}")
        return handler(session, proc, result)

    def _pin_outcome(self, session: Session, proc: Procedure, sw: int, pin_kind: str) -> str:
        """A refused VERIFY: retry (the card counts), or fail when blocked. Never retried automatically."""
        tries = (sw & 0x0F) if (sw & 0xFFF0) == 0x63C0 else None
        self._journal(session, proc, proc.state, StepPhase.FAILED, pin_kind=pin_kind, tries_left=tries)
        self._audit(proc, "pin_verify", "failure", pin_kind=pin_kind, tries_left=tries)
        if sw in SW_BLOCKED:
            raise _Fail("pin_blocked")
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
                raise _Fail("card_unavailable")
            public_key = serialization.load_der_public_key(card.card_public_key_der)
            cert_info: dict[str, Any] = {}
        else:
            kind = "authentication" if proof == Proof.CARD_AUTH_KEY.value else "signature"
            expected_serial = card.auth_cert_serial if kind == "authentication" else card.sign_cert_serial
            certificate_der = bytes.fromhex(result["certificate"])
            cert_info = self._check_current_certificate(kind, certificate_der, expected_serial, card)
            if kind == "signature" and card.sign_cert_facts_version != resident.facts_version:
                raise _Fail("certificate_invalid")  # the basic four facts changed since issuance
            public_key = x509.load_der_x509_certificate(certificate_der).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise _Fail("card_unavailable")
        try:
            public_key.verify(signature, message_bytes, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            self._audit(proc, "card_proof", "failure", reason="bad_signature")
            raise _Fail("card_unavailable") from None
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
            raise _Fail("card_unavailable") from None
        serial = _hex_serial(certificate.serial_number)
        if expected_serial is None or serial != expected_serial:
            raise _Fail("card_unavailable")
        status = self.ports.ca.status(kind, certificate.serial_number)
        if status is None or status.state is not CertificateState.ISSUED:
            raise _Fail("certificate_invalid")
        stored = self.ports.ca.certificate(kind, certificate.serial_number)
        if stored.der != der:
            raise _Fail("card_unavailable")
        not_after = utc(status.not_after)
        return {"not_after": not_after, "expired": not_after is not None and not_after < self.now()}

    def _check_eligibility(
        self, session: Session, proc: Procedure, card: Card, resident: Any, cert_info: dict[str, Any]
    ) -> None:
        remote = proc.channel in (Channel.KIOSK.value, Channel.ONLINE.value)
        usable = {CardState.ACTIVE} if remote else {CardState.ACTIVE, CardState.REMOTE_LOCKED}
        if card.state not in usable or resident.status is not ResidentStatus.ACTIVE or card.card_expiry < self.today():
            raise _Fail("card_unavailable")
        if proc.kind == ProcedureKind.RENEWAL.value:
            not_after = cert_info.get("not_after")
            if not_after is None or not self.policy.renewal_open(not_after.date(), card.card_expiry, self.today()):
                raise _Fail("not_in_renewal_window")
            age = registry.age_on(resident.birth_date, self.today())
            self._set_data(proc, with_sign=age >= self.policy.signature_min_age)
        elif cert_info.get("expired"):
            raise _Fail("certificate_invalid")
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

    def _add_proof(self, session: Session, proc: Procedure, proof: str) -> None:
        proofs = list(proc.proofs or [])
        if proof not in proofs:
            proofs.append(proof)
        proc.proofs = proofs
        self._journal(session, proc, f"proof:{proof}", StepPhase.DONE)

    def _result_read_face(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        from jpki_remote.card.client import ProtocolError, parse_card_face

        if result.get("code_sw") != 0x9000:
            sw = int(result.get("code_sw", 0))
            self._audit(proc, "card_face", "failure", reason="code_b_refused")
            if sw in SW_BLOCKED:
                raise _Fail("card_unavailable")
            self._set_data(proc, await_retry="code_b_incorrect")
            return "code_b_incorrect"
        try:
            face = parse_card_face(bytes.fromhex(result["card_face"]))
        except ProtocolError:
            raise _Fail("card_error") from None
        card = self._card_row(session, proc)
        if card.card_public_key_der is not None:
            ours = serialization.load_der_public_key(card.card_public_key_der)
            if ours.public_numbers() != face.public_key.public_numbers():  # type: ignore[union-attr]
                raise _Fail("card_mismatch")
        if self.ports.surface is None or not verify_card_face(face, self.ports.surface.public_key()):
            # a copied or altered card face: refused, audited, and counted like a failed face attempt
            self._audit(proc, "card_face", "failure", reason="surface_signature_invalid")
            raise _Fail("surface_invalid", {"face_attempt": True})
        if self.ports.face is None:
            raise _Fail("face_refused")
        encoding = self.ports.face.encode_reference(face.photo)
        if encoding is None:
            self._audit(proc, "card_face", "failure", reason="card_photo_unusable")
            raise _Fail("face_refused")
        self._set_data(proc, card_photo=encoding)  # the encoding only; the image is dropped here
        self._audit(proc, "card_face", "success")
        self._goto(session, proc, next_step(proc, "read_face"))
        return None

    def _result_sign_surface(self, session: Session, proc: Procedure, result: dict[str, Any]) -> str | None:
        """Issuance: the delivered card's face matched the registry and the card, and is now signed by us."""
        if result.get("code_sw") != 0x9000:
            self._audit(proc, "card_surface", "failure", reason="code_b_refused")
            if int(result.get("code_sw", 0)) in SW_BLOCKED:
                raise _Fail("card_unavailable")
            self._set_data(proc, await_retry="code_b_incorrect")
            return "code_b_incorrect"
        if result.get("mismatch"):
            self._audit(proc, "card_surface", "failure", reason="mismatch", fields=",".join(result["mismatch"]))
            raise _Fail("surface_mismatch")
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
        self._audit(proc, "committed", "success", new_auth_serial=_audit_serial(proc.data.get("new_auth_serial")))
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
            raise _Fail("card_error") from None
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

    # ================================================================================================ server steps
    def _server_step(self, procedure_id: str, step: str) -> None:
        try:
            getattr(self, f"_step_{step}")(procedure_id)
        except _Fail as fail:
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
            log.warning("procedure %s: issuance failed: %s: %s", procedure_id, type(exc).__name__, exc)
            self._audit(proc, "issued", "error", reason=type(exc).__name__)
            raise _Fail("issuance_failed") from None
        with self._tx() as session:
            proc = self._load(session, procedure_id)
            if proc.state != "issue":
                return
            self._set_data(
                proc,
                new_auth_certificate=issued.auth_der.hex(),
                new_sign_certificate=issued.sign_der.hex() if issued.sign_der else None,
                new_auth_serial=_hex_serial(issued.auth_serial),
                new_sign_serial=_hex_serial(issued.sign_serial) if issued.sign_serial is not None else None,
                facts_version=facts_version,
            )
            self._journal(session, proc, "issue", StepPhase.DONE, request_id=data["request_id"])
            self._goto(session, proc, "write_certificates")
            self._audit(proc, "issued", "success", auth_serial=_audit_serial(_hex_serial(issued.auth_serial)))

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
                raise _Fail("card_unavailable")
            targets, reason, card_state = revocations_for(proc, card)
            proc.resident_id = card.resident_id
            self._journal(
                session,
                proc,
                "revoke",
                StepPhase.INTENT,
                reason=reason,
                serials={k: _audit_serial(v) for k, v in targets.items()},
            )
            municipality_code = card.municipality_code
        for kind, serial in targets.items():
            if serial:
                self.ports.ca.revoke(kind, int(serial, 16), reason)
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
            **{f"{k}_serial": _audit_serial(v) for k, v in targets.items() if v},
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
        if self.ports.notices is None or not contacts or proc.kind == ProcedureKind.ISSUANCE.value:
            return 0  # issuance: the holder is at the counter (and the notices have no issuance text yet)
        event_kind = {"renewal": "renewal", "pin_reset": "pin_reset", "pin_change": "pin_change"}.get(
            proc.kind, "revocation"
        )
        pin_kind = {"sign_password": "sign", "auth_pin": "auth", "residence_pin": "residence", "text_pin": "text"}.get(
            proc.target
        )
        try:
            return self.ports.notices.notify(
                contacts, {"kind": event_kind, "procedure_id": proc.id, "channel": proc.channel, "pin_kind": pin_kind}
            )
        except Exception:
            log.exception("notices for procedure %s failed", proc.id)
            return 0

    # ================================================================================================ failure
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

    # ================================================================================================ recovery
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

    # ====================================================================== proofs from the browser / staff
    def _proof_target(self, session: Session, procedure_id: str, terminal_id: str | None, proof: str) -> Procedure:
        proc = self._load(session, procedure_id)
        self._check_terminal(proc, terminal_id)
        if proc.status is not ProcedureStatus.ACTIVE:
            raise ProcedureError("not_active", 409)
        if not self._rule(proc).accepts(proof):
            raise ProcedureError("proof_not_required", 409)
        return proc

    def _limit(self, proc: Procedure, kind: str, terminal_id: str | None, address: str | None) -> int | None:
        """Count one attempt; a lockout ends the procedure (audited) and raises :class:`LockedOutError`."""
        try:
            return check_attempt(
                self.ports.limits,
                kind,
                channel=proc.channel,
                card_id=proc.card_id,
                terminal_id=terminal_id or proc.terminal_id,
                address=address,
            ).remaining
        except LockedOutError as exc:
            self._audit(proc, "limits", "failure", attempt_kind=kind, reason=exc.code)
            self._fail(proc.id, exc.code)
            raise

    def request_code(self, procedure_id: str, terminal_id: str | None, *, address: str | None = None) -> dict[str, Any]:
        with self._tx() as session:
            proc = self._proof_target(session, procedure_id, terminal_id, Proof.SECURITY_CODE.value)
            if proc.resident_id is None:
                raise ProcedureError("wrong_step", 409)  # the card has not proved possession yet
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
                "code_refused", 429 if exc.reason in ("cooldown", "too_many_codes") else 503, {"reason": exc.reason}
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
            enrolled = registry.enrolled_encoding(session, proc.card_id or "") if proc.card_id else None
            if proof == Proof.FACE_ENROLLED.value and enrolled is None:
                raise ProcedureError("wrong_step", 409)
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
        result = self.ports.face.verify(
            frames,
            card_photo=data.get("card_photo"),
            enrolled=enrolled[1] if enrolled and enrolled[0] == self.ports.face.model else None,
            challenge=data.get("face_challenge") or {},
            card_id=proc.card_id,
        )
        outcome = {"result": result.reason, "score": result.distance, "attempt_count": attempts}
        if result.matched:
            with self._tx() as session:
                proc = self._load(session, procedure_id)
                self._add_proof(session, proc, proof)
                self._audit(proc, "face_match", "success", **outcome)
            return self._advance(procedure_id)
        self._audit(proc, "face_match", "failure", **outcome)
        if not result.retry_allowed:
            self._fail(procedure_id, "face_refused")
        view = self.view(procedure_id)
        view["face_result"] = {"reason": result.reason, "attempts_left": remaining}
        if view["status"] == "active":
            view["message"] = message("face_retry")
        return view

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
