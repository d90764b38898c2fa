"""Kiosk renewal with every remote proof: card + auth PIN, card photo via 照合番号B, face match with liveness
(frame sequences built from real photos), security code from the development outbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from procedure_world import PINS, World, capture_frames, card_photo, code_from_outbox, run_agent

from jpki_remote.ca.models import CertificateState
from jpki_remote.procedures.ports import ProofingFace
from jpki_remote.terminal.agent import ScriptedPinPad

pytestmark = pytest.mark.slow


def test_kiosk_renewal_with_face_and_code(world: World, faces_dir: Path) -> None:
    world.ports.face = ProofingFace(world.settings)
    world.photo = card_photo(faces_dir / "obama" / "3.jpg")  # the camera sees obama/1.jpg
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(
        kind="renewal", target="certificates", channel="kiosk", card_id=issued.card_id, terminal_id="t-test"
    )
    pinpad = ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"], "code_b": issued.code_b})
    reply = run_agent(engine, reply, issued.card, pinpad)
    assert reply["state"] == "proofs" and reply["face_ready"], (reply["error"], reply["message"])
    steps = reply["face_challenge"]["steps"]

    # another person in front of the camera: refused, may retry
    other = faces_dir / "biden" / "1.jpg"
    refused = engine.submit_face(reply["id"], "t-test", capture_frames(other, steps))
    assert "face_liveness" not in refused["proofs_done"] and refused["status"] == "active"
    assert refused["face_result"]["attempts_left"] == 9  # the per-card face limit (10 a day) counts this one

    reply = engine.submit_face(reply["id"], "t-test", capture_frames(faces_dir / "obama" / "1.jpg", steps))
    assert "face_liveness" in reply["proofs_done"], reply.get("face_result")

    reply = engine.request_code(reply["id"], "t-test")
    assert reply["code_sent_to"]
    code = code_from_outbox(world)
    wrong = engine.verify_code(reply["id"], "t-test", "000000" if code != "000000" else "111111")
    assert wrong["message"]["code"] == "code_wrong" and "security_code" not in wrong["proofs_done"]
    reply = engine.verify_code(reply["id"], "t-test", code)
    assert reply["exchange"]["status"] == "card" and reply["state"] == "generate_keys"
    reply = run_agent(engine, reply, issued.card, pinpad)
    assert reply["status"] == "completed", reply
    assert world.ca.status("authentication", issued.auth_serial).state is CertificateState.REVOKED
    assert "code" not in str(reply.get("message"))
    assert world.audit.verify().ok


def test_a_liveness_refusal_keeps_its_reason_codes(world: World, faces_dir: Path) -> None:
    """The holder does the actions in another order: the capture is refused as liveness_failed, and the checker's
    reason codes (codes only) reach the audit event and the holder's answer, with their texts; every view then
    shows the face attempts left."""
    from jpki_remote.proofing.liveness import LivenessReason

    world.ports.face = ProofingFace(world.settings)
    world.photo = card_photo(faces_dir / "obama" / "3.jpg")
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(
        kind="renewal", target="certificates", channel="kiosk", card_id=issued.card_id, terminal_id="t-test"
    )
    assert reply["face_attempts_left"] is None  # nothing counted yet
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"],
                                                                       "code_b": issued.code_b}))  # fmt: skip
    steps = reply["face_challenge"]["steps"]
    refused = engine.submit_face(reply["id"], "t-test", capture_frames(faces_dir / "obama" / "1.jpg", steps[::-1]))
    assert refused["status"] == "active" and refused["face_result"]["reason"] == "liveness_failed", refused
    reasons = refused["face_result"]["liveness_reasons"]
    codes = [r["code"] for r in reasons]
    assert codes and set(codes) <= {r.value for r in LivenessReason}, reasons
    assert all(r["ja"] == LivenessReason(r["code"]).message_ja and r["en"] for r in reasons)
    assert refused["face_result"]["attempts_left"] == 9
    assert engine.view(reply["id"], "t-test")["face_attempts_left"] == 9  # polled views keep it
    [event] = [e for e in world.audit.events(limit=500) if e.event_type == "renewal.face_match"]
    assert event.outcome == "failure" and event.detail["result"] == "liveness_failed"
    assert event.detail["liveness_reasons"] == codes
