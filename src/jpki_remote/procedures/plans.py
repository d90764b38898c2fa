"""The step sequence of each procedure kind, derived from its policy rule (stored in the row at start).

Step kinds: *card* steps run a card script through the terminal (:data:`CARD_STEPS`), the *gate* waits until every
proof the policy rule asks for is present, every other step runs on the server.

=============== ==================================================================================================
renewal         card_proof → read_face → proofs → keys_request → generate_keys → issue → write_certificates →
                commit → confirm → finish
pin_reset       card_proof → read_face → proofs → set_pin → finish
pin_change      change_pin → proofs → finish
revocation      card_proof → proofs → revoke → finish
loss_report     proofs → revoke → finish
registry_event  proofs → revoke → finish
issuance        proofs → sign_surface → set_pin_auth_pin → set_pin_sign_password → set_pin_residence_pin →
                set_pin_text_pin → keys_request → generate_keys → issue → write_certificates → commit → confirm →
                finish
=============== ==================================================================================================

``card_proof`` is left out when the rule needs no card proof (e.g. counter staff check only); ``read_face`` only
when the rule needs a face match against the card photo.
"""

from __future__ import annotations

from typing import Any

from jpki_remote.procedures.policy import ProcedureKind, Proof, Rule
from jpki_remote.registry.models import Card, CardState

ISSUANCE_PIN_STEPS = ("set_pin_auth_pin", "set_pin_sign_password", "set_pin_residence_pin", "set_pin_text_pin")
CARD_STEPS = frozenset(
    {
        "card_proof",
        "read_face",
        "generate_keys",
        "write_certificates",
        "commit",
        "confirm",
        "set_pin",
        "change_pin",
        "sign_surface",
        *ISSUANCE_PIN_STEPS,
    }
)
GATE_STEPS = frozenset({"proofs"})
SERVER_STEPS = frozenset({"keys_request", "issue", "revoke", "finish"})


def build_plan(rule: Rule, card_proof: str | None, *, with_sign: bool = True) -> list[str]:
    kind = rule.procedure
    if kind is ProcedureKind.ISSUANCE:
        pins = [s for s in ISSUANCE_PIN_STEPS if with_sign or s != "set_pin_sign_password"]
        return [
            "proofs",
            "sign_surface",
            *pins,
            "keys_request",
            "generate_keys",
            "issue",
            "write_certificates",
            "commit",
            "confirm",
            "finish",
        ]
    head = ["card_proof"] if card_proof else []
    if rule.accepts(Proof.FACE_LIVENESS.value) and card_proof:
        head.append("read_face")
    if kind is ProcedureKind.RENEWAL:
        return [
            *head,
            "proofs",
            "keys_request",
            "generate_keys",
            "issue",
            "write_certificates",
            "commit",
            "confirm",
            "finish",
        ]
    if kind is ProcedureKind.PIN_RESET:
        return [*head, "proofs", "set_pin", "finish"]
    if kind is ProcedureKind.PIN_CHANGE:
        return ["change_pin", "proofs", "finish"]
    if kind in (ProcedureKind.REVOCATION, ProcedureKind.LOSS_REPORT, ProcedureKind.REGISTRY_EVENT):
        return [*head, "proofs", "revoke", "finish"]
    raise ValueError(f"no plan for {kind.value}")


def next_step(proc: Any, step: str) -> str:
    plan: list[str] = (proc.data or {})["plan"]
    return plan[plan.index(step) + 1]


def revocations_for(proc: Any, card: Card) -> tuple[dict[str, str | None], str, CardState | None]:
    """(kind -> serial to revoke, RFC 5280 reason, new card state) for the revoking procedures.

    * revocation on request: the chosen certificates, ``cessationOfOperation`` (no longer needed, no compromise);
    * loss: both, ``keyCompromise`` (someone else may hold the card), card LOST — locked out of every procedure;
    * registry event: address or name change → the signature certificate only, ``affiliationChanged`` (the auth
      certificate carries no personal data and survives); death → both, ``cessationOfOperation``, card REVOKED;
      moving out → the signature certificate, ``affiliationChanged``, and the card is locked out of remote
      procedures until the new municipality takes it over (転入).
    """
    auth, sign = card.auth_cert_serial, card.sign_cert_serial
    if proc.kind == ProcedureKind.REVOCATION.value:
        if proc.target == "signature":
            return {"signature": sign}, "cessationOfOperation", None
        return {"authentication": auth, "signature": sign}, "cessationOfOperation", None
    if proc.kind == ProcedureKind.LOSS_REPORT.value:
        return {"authentication": auth, "signature": sign}, "keyCompromise", CardState.LOST
    event_kind = (proc.data or {}).get("event_kind")
    if event_kind == "deceased":
        return {"authentication": auth, "signature": sign}, "cessationOfOperation", CardState.REVOKED
    if event_kind == "moved_out":
        return {"signature": sign}, "affiliationChanged", CardState.REMOTE_LOCKED
    return {"signature": sign}, "affiliationChanged", None
