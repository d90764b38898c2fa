"""Revocation on request, loss reports and registry events (move / name change / death)."""

from __future__ import annotations

import pytest
from procedure_world import PINS, World, code_from_outbox, run_agent

from jpki_remote.ca.models import CertificateState
from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import CardState, Notification, NotificationKind
from jpki_remote.terminal.agent import ScriptedPinPad


def _status(world: World, kind: str, serial: int | None):
    return world.ca.status(kind, serial)


def _registry_event(world: World, issued, kind: str, changes: dict) -> dict:
    with world.db.session() as s:
        registry.record_event(s, issued.resident_id, kind, changes)
    engine = world.engine()
    reply = engine.start(
        kind="registry_event",
        target="certificates",
        channel="counter",
        card_id=issued.card_id,
        terminal_id="t-test",
        actor="staff:s1",
        options={"event_kind": kind},
    )
    return engine.record_staff_check(reply["id"], "s1", ["resident_record"])


def test_address_change_revokes_only_the_signature_certificate(world: World) -> None:
    issued = world.issue_card()
    reply = _registry_event(world, issued, "address_changed", {"address": "東京都千代田区永田町1-7-1"})
    assert reply["status"] == "completed", reply
    sign = _status(world, "signature", issued.sign_serial)
    assert sign.state is CertificateState.REVOKED and sign.reason_name == "affiliationChanged"
    assert _status(world, "authentication", issued.auth_serial).state is CertificateState.ISSUED
    with world.db.session() as s:
        card = registry.get_card(s, issued.card_id)
        assert card.sign_cert_serial is None and card.auth_cert_serial is not None
        assert card.state is CardState.ACTIVE
        notices = s.query(Notification).filter(Notification.request_id == reply["id"]).all()
        assert {(n.kind, n.held_by) for n in notices} == {
            (NotificationKind.REVOCATION_NOTICE, "municipality:131016"),
            (NotificationKind.REVOCATION_NOTICE, "jlis"),
        }


def test_death_revokes_both_and_withdraws_the_card(world: World) -> None:
    issued = world.issue_card()
    reply = _registry_event(world, issued, "deceased", {})
    assert reply["status"] == "completed"
    for kind, serial in (("signature", issued.sign_serial), ("authentication", issued.auth_serial)):
        status = _status(world, kind, serial)
        assert status.state is CertificateState.REVOKED and status.reason_name == "cessationOfOperation"
    with world.db.session() as s:
        assert registry.get_card(s, issued.card_id).state is CardState.REVOKED


def test_revocation_on_request_online(world: World) -> None:
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(
        kind="revocation", target="signature", channel="online", card_id=issued.card_id, terminal_id="t-test"
    )
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)))
    assert reply["waiting_for"] == "security_code"
    reply = engine.request_code(reply["id"], "t-test")
    reply = engine.verify_code(reply["id"], "t-test", code_from_outbox(world))
    assert reply["status"] == "completed", reply
    assert _status(world, "signature", issued.sign_serial).reason_name == "cessationOfOperation"
    assert _status(world, "authentication", issued.auth_serial).state is CertificateState.ISSUED


def test_loss_at_the_counter_locks_the_card_out(world: World) -> None:
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(
        kind="loss_report",
        target="card",
        channel="counter",
        card_id=issued.card_id,
        terminal_id="t-test",
        actor="staff:s1",
    )
    reply = engine.record_staff_check(reply["id"], "s1", ["passport"])
    assert reply["status"] == "completed"
    for kind, serial in (("signature", issued.sign_serial), ("authentication", issued.auth_serial)):
        assert _status(world, kind, serial).reason_name == "keyCompromise"
    with world.db.session() as s:
        assert registry.get_card(s, issued.card_id).state is CardState.LOST
    # the card (found again by someone) gets nowhere remotely; the answer is the generic one
    reply = engine.start(
        kind="pin_reset", target="sign_password", channel="kiosk", card_id=issued.card_id, terminal_id="t-test"
    )
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)))
    assert reply["status"] == "failed" and reply["error"]["code"] in ("card_unavailable", "certificate_invalid")


def test_kiosk_cannot_report_loss_or_issue(world: World) -> None:
    engine = world.engine()
    for kind, target in (("loss_report", "card"), ("issuance", "card")):
        with pytest.raises(ProcedureError) as err:
            engine.start(kind=kind, target=target, channel="kiosk", card_id="123456789012345", terminal_id="t")
        assert err.value.code == "not_allowed"
