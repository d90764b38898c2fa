"""A completed loss report wins the card: a procedure holding it (a thief mid-renewal with the stolen card) is ended
with ``card_reported_lost`` — the certificates it had issued revoked keyCompromise like the card's own, the card
released — and the loss report takes the card and completes. SQLite and PostgreSQL, at every stage of a renewal."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from procedure_world import PINS, IssuedCard, World, code_from_outbox, make_world, run_agent
from sqlalchemy import select

from jpki_remote.ca.models import Certificate, CertificateState
from jpki_remote.procedures.models import Procedure, ProcedureStep
from jpki_remote.procedures.ports import FaceResult
from jpki_remote.proofing.models import HolderNotice
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import CardState
from jpki_remote.store import Database
from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad

HOLDER_FACE = b"the holder's face"


class StubFace:
    """A face port whose captures match when they are the holder's (the subject here is the card, not the face)."""

    model = "stub-face-v1"

    def new_challenge(self) -> dict[str, Any]:
        return {"steps": ["blink"]}

    def encode_reference(self, image: bytes) -> list[float] | None:
        return [0.1] * 128

    def verify(
        self,
        frames: Sequence[bytes],
        *,
        card_photo: list[float] | None,
        enrolled: list[float] | None,
        challenge: dict[str, Any],
        card_id: str | None,
    ) -> FaceResult:
        matched = list(frames) == [HOLDER_FACE] and enrolled == [0.1] * 128
        return FaceResult(matched, True, "match" if matched else "no_match", distance=0.2 if matched else 0.9)


@pytest.fixture
def lost_world(database: Database, tmp_path: Path, faces_dir: Path) -> World:
    world = make_world(database, tmp_path, faces_dir)
    world.ports.face = StubFace()
    return world


def _issue(world: World) -> IssuedCard:
    issued = world.issue_card()
    with world.db.session() as s:
        registry.enrol_face(s, issued.card_id, [0.1] * 128, StubFace.model)
    return issued


def _exchange(world: World, reply: dict[str, Any], body: dict[str, Any], terminal: str) -> dict[str, Any]:
    return world.engine().exchange(
        reply["id"],
        terminal,
        seq=body.get("seq"),
        responses=[bytes.fromhex(r) for r in body.get("responses", [])],
        new_pin=body.get("new_pin"),
        event=body.get("event"),
    )


def _renewal_until(world: World, issued: IssuedCard, stop: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """A counter renewal with the card (card proof, staff check) driven exchange by exchange until ``stop``."""
    engine = world.engine()
    reply = engine.start(
        kind="renewal", target="certificates", channel="counter", card_id=issued.card_id, terminal_id="t-thief"
    )
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins=dict(PINS)))
    for _ in range(200):
        if stop(reply) or reply["exchange"]["status"] != "card":
            return reply
        exchange = reply["exchange"]
        responses = [r.hex() for r in core.perform(exchange["requests"])]
        reply = _exchange(world, reply, {"seq": exchange["seq"], "responses": responses}, "t-thief")
        if reply["state"] == "proofs" and reply["status"] == "active" and not stop(reply):
            reply = world.engine().record_staff_check(reply["id"], "staff-1", ["passport"])
    raise AssertionError("no progress")


def _online_loss_report(world: World, card_id: str) -> dict[str, Any]:
    engine = world.engine()
    reply = engine.start(
        kind="loss_report", target="card", channel="online", card_id=card_id, terminal_id="t-app", address="192.0.2.7"
    )
    reply = engine.submit_face(reply["id"], "t-app", [HOLDER_FACE], address="192.0.2.7")
    assert reply["proofs_done"] == ["face_enrolled"], reply
    engine.request_code(reply["id"], "t-app", address="192.0.2.7")
    code = code_from_outbox(world)
    reply = engine.verify_code(reply["id"], "t-app", code, address="192.0.2.7")
    return {**reply, "entered_code": code}


def _counter_loss_report(world: World, card_id: str) -> dict[str, Any]:
    engine = world.engine()
    reply = engine.start(
        kind="loss_report", target="card", channel="counter", card_id=card_id, terminal_id="t-counter",
        actor="staff:s-9",
    )  # fmt: skip
    return engine.record_staff_check(reply["id"], "s-9", ["passport"])


def _certificates(world: World, card_id: str) -> list[Certificate]:
    with world.db.session() as s:
        return list(s.scalars(select(Certificate).where(Certificate.holder_ref == card_id)))


STAGES: dict[str, tuple[Callable[[dict[str, Any]], bool], bool]] = {
    # stage: (where the renewal stops, whether it has issued its new pair by then)
    "card_held_waiting_for_staff": (lambda r: r["state"] == "proofs", False),
    "generating_keys_before_issue": (lambda r: r["state"] == "generate_keys", False),
    "issued_before_writing": (lambda r: r["state"] == "write_certificates", True),
    "written_before_commit": (lambda r: r["state"] == "commit", True),
    "committed_before_confirm": (lambda r: r["state"] == "confirm", True),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_online_loss_report_ends_a_renewal_in_progress(lost_world: World, stage: str) -> None:
    world = lost_world
    stop, issued_pair = STAGES[stage]
    issued = _issue(world)
    renewal = _renewal_until(world, issued, stop)
    assert renewal["status"] == "active" and stop(renewal), renewal
    with world.db.session() as s:
        assert s.get(Procedure, renewal["id"]).active_card == issued.card_id  # the renewal holds the card

    report = _online_loss_report(world, issued.card_id)
    assert report["status"] == "completed", report
    code = report["entered_code"]

    # the renewal ended with a clear code, released the card; the thief's terminal gets nothing more
    ended = world.engine().view(renewal["id"])
    assert ended["status"] == ("rolled_back" if issued_pair else "failed")
    assert ended["error"]["code"] == "card_reported_lost"
    after = _exchange(world, renewal, {"seq": renewal["exchange"]["seq"], "responses": []}, "t-thief")
    assert after["exchange"]["status"] == "failed" and after["exchange"]["requests"] == []
    with world.db.session() as s:
        assert s.get(Procedure, renewal["id"]).active_card is None
        assert s.get(Procedure, report["id"]).active_card is None
        journal = s.scalars(select(ProcedureStep.detail).where(ProcedureStep.procedure_id == renewal["id"])).all()
        assert {"error": "card_reported_lost", "lost_by": report["id"]} in journal
        assert registry.get_card(s, issued.card_id).state is CardState.LOST

    # every certificate of the card is revoked keyCompromise: the old pair, and the new pair if the renewal had one
    certificates = _certificates(world, issued.card_id)
    assert len(certificates) == (4 if issued_pair else 2)
    for certificate in certificates:
        status = world.ca.status(certificate.authority, int(certificate.serial_hex, 16))
        assert status.state is CertificateState.REVOKED and status.reason_name == "keyCompromise", certificate

    events = [(e.event_type, e.outcome, e.detail) for e in world.audit.events(limit=500)]
    renewal_events = [(t, o, d) for t, o, d in events if t.startswith("renewal.")]
    assert renewal_events[-1][:2] == ("renewal.ended", "failure")
    assert renewal_events[-1][2]["reason"] == "card_reported_lost"
    assert renewal_events[-1][2]["ended_by"] == "loss_report"
    revoked_by_renewal = [d for t, o, d in renewal_events if t == "renewal.revoked"]
    assert len(revoked_by_renewal) == (1 if issued_pair else 0)
    if issued_pair:
        assert revoked_by_renewal[0]["reason"] == "keyCompromise"
        assert {revoked_by_renewal[0]["authentication_serial"], revoked_by_renewal[0]["signature_serial"]} == {
            "0x" + c.serial_hex for c in certificates if not c.request_id.startswith("init-")
        }
    assert [t for t, _o, _d in events if t.startswith("loss_report.")][-2:] == [
        "loss_report.revoked",
        "loss_report.completed",
    ]
    assert world.audit.verify().ok

    # the holder is told of the loss report in its own words — on every contact, with no card number or code
    with world.db.session() as s:
        notices = s.scalars(select(HolderNotice).where(HolderNotice.procedure_id == report["id"])).all()
        assert [n.event_kind for n in notices] == ["loss_report"]
        assert "紛失の届出を受け付けました" in notices[0].body and "a loss report" in notices[0].body
        assert issued.card_id not in notices[0].body and code not in notices[0].body
        assert not s.scalars(select(HolderNotice).where(HolderNotice.procedure_id == renewal["id"])).all()


@pytest.mark.parametrize("stage", ["card_held_waiting_for_staff", "written_before_commit"])
def test_counter_loss_report_ends_a_renewal_in_progress(lost_world: World, stage: str) -> None:
    world = lost_world
    stop, issued_pair = STAGES[stage]
    issued = _issue(world)
    renewal = _renewal_until(world, issued, stop)
    report = _counter_loss_report(world, issued.card_id)
    assert report["status"] == "completed", report
    ended = world.engine().view(renewal["id"])
    assert ended["error"]["code"] == "card_reported_lost"
    certificates = _certificates(world, issued.card_id)
    assert len(certificates) == (4 if issued_pair else 2)
    assert all(c.state is CertificateState.REVOKED and c.revocation_reason == 1 for c in certificates)
    assert world.audit.verify().ok


def test_a_renewal_started_after_the_loss_report_gets_nowhere(lost_world: World) -> None:
    """The card, reported lost, cannot be used for a new renewal either (card proof refused)."""
    world = lost_world
    issued = _issue(world)
    assert _online_loss_report(world, issued.card_id)["status"] == "completed"
    again = world.engine().start(
        kind="renewal", target="certificates", channel="kiosk", card_id=issued.card_id, terminal_id="t-k"
    )
    again = run_agent(world.engine(), again, issued.card, ScriptedPinPad(pins=dict(PINS)), "t-k")
    assert again["status"] == "failed" and again["error"]["code"] in ("card_unavailable", "certificate_invalid")
