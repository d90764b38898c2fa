"""Renewal end to end: real virtual card in-process, real CA, legal-flow messages, audit log."""

from __future__ import annotations

from procedure_world import PINS, World, run_agent

from jpki_remote.ca.models import CertificateState
from jpki_remote.card.client import CardClient
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import Notification
from jpki_remote.terminal.agent import ScriptedPinPad


def _active_auth_serial(card) -> int:
    from cryptography import x509

    der = CardClient(card).read_auth_certificate()
    card.reset()
    return x509.load_der_x509_certificate(der).serial_number


def test_renewal_at_the_counter(world: World) -> None:
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(
        kind="renewal", target="certificates", channel="counter", card_id=issued.card_id, terminal_id="t-test"
    )
    assert reply["state"] == "card_proof" and reply["exchange"]["status"] == "card"
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)))
    assert reply["state"] == "proofs", reply
    assert reply["proofs_done"] == ["card_auth_key"] and reply["waiting_for"] == "staff_check"
    reply = world.engine().record_staff_check(reply["id"], "staff-1", ["driver_licence"])
    reply = run_agent(world.engine(), reply, issued.card, ScriptedPinPad(pins=dict(PINS)))
    assert reply["status"] == "completed", reply
    old_auth = world.ca.status("authentication", issued.auth_serial)
    assert old_auth.state is CertificateState.REVOKED and old_auth.reason_name == "superseded"
    with world.db.session() as s:
        card = registry.get_card(s, issued.card_id)
        new_serial = int(card.auth_cert_serial, 16)
        assert new_serial != issued.auth_serial
        notes = s.query(Notification).filter(Notification.request_id.like(f"{reply['id'][:20]}%")).all()
        assert {(n.kind.value, n.held_by) for n in notes} == {
            ("issuance_request", "municipality:131016"),
            ("issuance_request", "jlis"),
            ("issuance_result", "municipality:131016"),
            ("issuance_result", "jlis"),
        }
    assert world.ca.status("authentication", new_serial).state is CertificateState.ISSUED
    assert _active_auth_serial(issued.card) == new_serial
    assert world.audit.verify().ok
