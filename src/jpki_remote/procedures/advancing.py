"""Moving a procedure forward: the terminal agent's exchange, the advance loop over gate / card / server steps,
and the card conversations (scripts re-run over stored transcripts)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from jpki_remote.procedures import card_issuer, card_public
from jpki_remote.procedures.attempts import LockedOutError
from jpki_remote.procedures.audit_trail import AuditTrail
from jpki_remote.procedures.conversation import (
    ConversationError,
    RunOutcome,
    Transcript,
    record_responses,
    run_script,
)
from jpki_remote.procedures.core import (
    CARD_PROOF_SCRIPTS,
    ISSUER_SCRIPTS,
    MAX_ADVANCE,
    PREEMPTING_KINDS,
    SCRIPTS,
    StepFailed,
    der_hex,
)
from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.procedures.models import Procedure, ProcedureStatus, StepPhase
from jpki_remote.procedures.plans import CARD_STEPS, GATE_STEPS, next_step
from jpki_remote.procedures.policy import ProcedureKind
from jpki_remote.registry import service as registry

log = logging.getLogger(__name__)


class Advancing(AuditTrail):
    """The exchange and the advance loop."""

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
                held = proc.active_card is not None
                if step in GATE_STEPS:
                    if self._rule(proc).missing(proc.proofs or []):
                        return self._reply(proc, [], msg=msg)
                    try:
                        if proc.kind != ProcedureKind.PIN_CHANGE.value:
                            # no card proof in the plan (staff check, loss report): the card is taken once every
                            # proof is in, before the first effect. A PIN change never takes it: the card itself
                            # checked the old PIN and changed it; nothing on the server's side is at stake.
                            self._take_card(session, proc)
                    except StepFailed as fail:
                        holder = fail.detail.get("held_by")
                        if fail.code == "card_busy" and holder and proc.kind in PREEMPTING_KINDS:
                            # a completed loss report wins: the procedure holding the card is ended first (outside
                            # this transaction), then the gate is passed again and takes the card
                            server_step = "!preempt:" + holder
                        else:
                            server_step = "!fail:" + fail.code
                    else:
                        self._goto(session, proc, next_step(proc, step))
                elif step in CARD_STEPS:
                    data = proc.data or {}
                    if not data.get("card_present", True) or data.get("await_retry"):
                        return self._reply(proc, [], msg=msg or data.get("await_retry"))
                    if proc.conversation is None:
                        self._start_conversation(session, proc, step)
                    try:
                        outcome = self._run(proc, new_pin)
                    except StepFailed as fail:
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
                        except StepFailed as fail:
                            server_step = "!fail:" + fail.code
                            counted = bool(fail.detail.get("face_attempt"))
                else:
                    server_step = step
                took_card = server_step is None and not held and proc.active_card is not None
            if server_step is None:  # the step moved on
                if took_card:
                    # the card proved possession and is now held: this is when its own start is counted, outside
                    # the step's transaction (a card locked out ends the procedure here, audited)
                    with contextlib.suppress(LockedOutError):
                        self._limit(proc, "procedure_start", None, None, card_only=True)
                continue
            if server_step.startswith("!preempt:"):
                self._end_for_lost_card(server_step[9:], lost_by=procedure_id)
                continue
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
                params["auth_ca"] = der_hex(self.ports.ca.authority_certificate("authentication"))
                if data.get("new_sign_certificate"):
                    params["sign_ca"] = der_hex(self.ports.ca.authority_certificate("signature"))
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

    def _run(self, proc: Procedure, new_pin: str | None) -> RunOutcome:
        from jpki_remote.card.client import CardError
        from jpki_remote.card.issuer import IssuerLockedError

        conv = proc.conversation or {}
        params = dict(conv["params"])
        if conv["script"] in ISSUER_SCRIPTS:
            # only this card's static keys: with the PKCS#11 store they are derived inside the HSM and the master
            # key never enters this process
            params["_card_keys"] = self.ports.issuer_keys.card_keys(
                int(params.get("key_version", 0)), bytes.fromhex(params["kdd"])
            )
        if conv["script"] == "sign_surface":
            if self.ports.surface is None:
                raise StepFailed("surface_invalid")
            params["_surface_signer"] = self.ports.surface
        if conv["script"] != "set_pin":
            new_pin = None
        try:
            outcome = run_script(
                SCRIPTS[conv["script"]], params, Transcript.from_json(conv["transcript"]), new_pin=new_pin
            )
        except card_public.CardFailure as exc:
            log.info("procedure %s: card refused %s (SW %04X)", proc.id, exc.what, exc.sw)
            raise StepFailed("card_error", {"sw": f"{exc.sw:04X}"}) from None
        except card_issuer.CardMismatchError:
            raise StepFailed("card_mismatch") from None
        except IssuerLockedError:
            log.warning("procedure %s: the card's issuer domain is locked (6983)", proc.id)
            raise StepFailed("card_locked") from None
        except (CardError, ConversationError, ValueError, KeyError) as exc:
            log.info("procedure %s: card conversation failed: %s", proc.id, type(exc).__name__)
            raise StepFailed("card_error") from None
        return outcome

    def _on_result(self, session: Session, proc: Procedure, step: str, result: dict[str, Any]) -> str | None:
        """Apply a finished card script's result; returns a message code for the terminal (or None)."""
        handler = getattr(self, "_result_set_pin" if step.startswith("set_pin") else f"_result_{step}")
        return handler(session, proc, result)
