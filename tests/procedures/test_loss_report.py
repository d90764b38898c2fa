"""The online loss report (紛失届, finding S-17): the holder has no card — the card number, a face match with liveness
against the photo enrolled at issuance, then a security code to a registered contact. Both certificates are revoked
(keyCompromise), the card is locked out, every contact is told, every step audited. Attempts before the face matches
are counted per card under the loss report's own limits only: they never lock the holder's card procedures."""

from __future__ import annotations

from pathlib import Path

import pytest
from procedure_world import (
    PINS,
    World,
    capture_frames,
    card_photo,
    code_from_outbox,
    enrol_photo,
    make_world,
    run_agent,
)
from sqlalchemy import select

from jpki_remote.ca.models import CertificateState
from jpki_remote.procedures.engine import Engine
from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.procedures.models import Procedure
from jpki_remote.procedures.ports import ProofingFace
from jpki_remote.proofing.limits import DEFAULT_RULES, LOSS_REPORT_RULES, AttemptKind, Scope
from jpki_remote.proofing.models import HolderNotice
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import CardState
from jpki_remote.store import Database
from jpki_remote.terminal.agent import ScriptedPinPad

CARD_FACES = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.FACE and r.scope is Scope.CARD)
LOSS_FACES = next(r.limit for r in LOSS_REPORT_RULES if r.kind is AttemptKind.FACE)


def start_loss_report(engine: Engine, card_id: str, terminal_id: str = "t-app", address: str = "192.0.2.10") -> dict:
    return engine.start(
        kind="loss_report", target="card", channel="online", card_id=card_id, terminal_id=terminal_id, address=address
    )


@pytest.mark.slow
def test_online_loss_report_end_to_end(database: Database, tmp_path: Path, faces_dir: Path) -> None:
    world = make_world(database, tmp_path, faces_dir)
    world.ports.face = ProofingFace(world.settings)
    world.photo = card_photo(faces_dir / "obama" / "3.jpg")
    issued = world.issue_card()
    enrol_photo(world, issued.card_id, faces_dir / "obama" / "3.jpg")  # the camera sees obama/1.jpg
    with world.db.session() as s:
        registry.add_contact(s, issued.resident_id, "mobile", "09012345678", verified=True)
    engine = world.engine()

    reply = start_loss_report(engine, issued.card_id)
    assert reply["status"] == "active" and reply["steps"] == ["proofs", "revoke", "finish"]
    assert reply["waiting_for"] == "face_enrolled" and reply["face_ready"]
    steps = reply["face_challenge"]["steps"]
    pid = reply["id"]
    # nobody is identified yet: no code is sent, no entry is taken
    for call in (lambda: engine.request_code(pid, "t-app"), lambda: engine.verify_code(pid, "t-app", "123456")):
        with pytest.raises(ProcedureError) as refused:
            call()
        assert refused.value.code == "wrong_step"

    other = engine.submit_face(pid, "t-app", capture_frames(faces_dir / "biden" / "1.jpg", steps))
    assert other["status"] == "active" and other["face_result"]["reason"] != "match", other["face_result"]
    assert other["proofs_done"] == [] and other["message"]["code"] == "face_retry"

    reply = engine.submit_face(pid, "t-app", capture_frames(faces_dir / "obama" / "1.jpg", steps))
    assert reply["proofs_done"] == ["face_enrolled"], reply.get("face_result")
    assert reply["waiting_for"] == "security_code"
    reply = engine.request_code(pid, "t-app")
    assert reply["code_sent_to"]
    code = code_from_outbox(world)
    wrong = engine.verify_code(pid, "t-app", "000000" if code != "000000" else "111111")
    assert wrong["status"] == "active" and wrong["message"]["code"] == "code_wrong"
    reply = engine.verify_code(pid, "t-app", code)
    assert reply["status"] == "completed", reply

    for kind, serial in (("signature", issued.sign_serial), ("authentication", issued.auth_serial)):
        status = world.ca.status(kind, serial)
        assert status.state is CertificateState.REVOKED and status.reason_name == "keyCompromise"
    with world.db.session() as s:
        card = registry.get_card(s, issued.card_id)
        assert card.state is CardState.LOST and card.auth_cert_serial is None and card.sign_cert_serial is None
        assert s.get(Procedure, pid).active_card is None  # released at the end
        notices = s.scalars(select(HolderNotice).where(HolderNotice.procedure_id == pid)).all()
        assert {n.channel for n in notices} == {"email", "mobile"}  # every registered contact
    events = [e for e in world.audit.events(limit=500) if e.procedure_id == pid]
    assert [(e.event_type, e.outcome) for e in events] == [
        ("loss_report.start", "info"),
        ("loss_report.face_match", "failure"),
        ("loss_report.face_match", "success"),
        ("loss_report.code_sent", "success"),
        ("loss_report.code_verify", "failure"),
        ("loss_report.code_verify", "success"),
        ("loss_report.revoked", "success"),
        ("loss_report.completed", "success"),
    ]
    assert world.audit.verify().ok
    # the card, found by someone else, gets nowhere remotely
    again = engine.start(
        kind="pin_reset", target="auth_pin", channel="kiosk", card_id=issued.card_id, terminal_id="t-k"
    )
    again = run_agent(engine, again, issued.card, ScriptedPinPad(pins=dict(PINS)), "t-k")
    assert again["status"] == "failed" and again["error"]["code"] in ("card_unavailable", "certificate_invalid")


def test_failed_loss_report_faces_do_not_lock_the_holders_renewal(world: World) -> None:
    """Someone who knows the card number tries loss reports with faces that do not match (here: unreadable captures,
    each one counted) until the loss report's own per-card limit ends them — the holder's card is not locked out: a
    renewal with the card proves possession and has every face attempt left."""
    world.ports.face = ProofingFace(world.settings)
    issued = world.issue_card()
    with world.db.session() as s:
        registry.enrol_face(s, issued.card_id, [0.01 * i for i in range(128)], world.ports.face.model)
    engine = world.engine()
    reply = start_loss_report(engine, issued.card_id, "t-x", "198.51.100.66")
    for _ in range(LOSS_FACES):
        reply = engine.submit_face(reply["id"], "t-x", [b"not an image"], address="198.51.100.66")
        assert reply["status"] == "active", reply["error"]
    reply = engine.submit_face(reply["id"], "t-x", [b"not an image"], address="198.51.100.66")
    assert reply["status"] == "failed" and reply["error"]["code"] == "locked_out"
    # a new loss report for the card is stopped at its first face (the counter takes loss reports without limits)
    again = start_loss_report(engine, issued.card_id, "t-y", "198.51.100.67")
    again = engine.submit_face(again["id"], "t-y", [b"not an image"], address="198.51.100.67")
    assert again["status"] == "failed" and again["error"]["code"] == "locked_out"

    assert world.ports.limits.status(card_id=issued.card_id) == []  # the card's own limits: untouched
    assert [lock.reason for lock in world.ports.limits.for_loss_reports().status(card_id=issued.card_id)] == [
        "loss_report_face_attempts"
    ]
    renewal = engine.start(
        kind="renewal", target="certificates", channel="kiosk", card_id=issued.card_id, terminal_id="t-k",
        address="203.0.113.5",
    )  # fmt: skip
    pinpad = ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"], "code_b": issued.code_b})
    renewal = run_agent(engine, renewal, issued.card, pinpad, "t-k")
    assert renewal["status"] == "active" and renewal["face_ready"], renewal["error"]
    renewal = engine.submit_face(renewal["id"], "t-k", [b"not an image"], address="203.0.113.5")
    assert renewal["status"] == "active" and renewal["face_result"]["attempts_left"] == CARD_FACES - 1


def test_unknown_card_id_answers_like_a_card_with_another_face(world: World) -> None:
    """Until the face matches, a loss report for an unknown card id, a card without an enrolled photo and a real
    card (another face in front of the camera) answer alike, step by step; none of them sends a code."""
    world.ports.face = ProofingFace(world.settings)
    enrolled, bare = world.issue_card(), world.issue_card()
    with world.db.session() as s:
        registry.enrol_face(s, enrolled.card_id, [0.01 * i for i in range(128)], world.ports.face.model)
    engine = world.engine()
    answers = []
    for n, card_id in enumerate((enrolled.card_id, bare.card_id, "9" * 15)):
        terminal = f"t-{n}"
        seen = []
        reply = start_loss_report(engine, card_id, terminal, f"198.51.100.{n}")
        seen.append(_stable(reply))
        for call in (engine.request_code, lambda p, t: engine.verify_code(p, t, "123456")):
            with pytest.raises(ProcedureError) as refused:
                call(reply["id"], terminal)
            seen.append((refused.value.code, refused.value.http_status))
        for _ in range(2):
            seen.append(_stable(engine.submit_face(reply["id"], terminal, [b"not an image"])))
        seen.append(_stable(engine.view(reply["id"], terminal)))
        answers.append(seen)
    assert answers[0] == answers[1] == answers[2]
    assert world.ports.limits.status(card_id=enrolled.card_id) == []


def _stable(reply: dict) -> dict:
    return {k: v for k, v in reply.items() if k not in ("id", "expires_at", "face_challenge")}
