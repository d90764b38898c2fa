"""New issuance at the counter: staff check, photo enrolled (encoding only), contacts, PINs set by the holder, keys
generated on the card, certificates issued through the sealed municipality<->CA flow."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from procedure_world import World, run_agent
from sqlalchemy import select

from jpki_remote.ca.models import CertificateState
from jpki_remote.card import factory, layout
from jpki_remote.card.client import CardClient
from jpki_remote.card.factory import CardPins, create_card
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.procedures.ports import ProofingFace
from jpki_remote.procedures.surface import verify_card_face
from jpki_remote.proofing.models import HolderNotice
from jpki_remote.registry import service as registry
from jpki_remote.registry.models import CardState, Notification
from jpki_remote.terminal.agent import ScriptedPinPad

NEW_PINS = {"auth_pin": "2580", "sign_password": "MYPASS77", "residence_pin": "1470", "text_pin": "3690"}


def test_issuance_at_the_counter(world: World, faces_dir: Path) -> None:
    world.ports.face = ProofingFace(world.settings)
    photo = (faces_dir / "obama" / "3.jpg").read_bytes()
    with world.db.session() as s:
        registry.create_municipality(s, "13101", "千代田区", "東京都")
        resident = registry.add_resident(
            s,
            "131016",
            family_name="交付",
            given_name="太郎",
            address="東京都千代田区1-1",
            birth_date=date(1990, 6, 1),
            sex=1,
        )
        resident_id = resident.id
    # the card as delivered by the card centre (surface and text APs personalised; it does not yet hold our keys)
    card_id = "".join(secrets.choice("0123456789") for _ in range(15))
    card_expiry = date.today() + timedelta(days=3650)
    made = create_card(
        factory.test_holder(photo, birth_date=date(1990, 6, 1), sex="1", card_expiry=card_expiry),
        issuer_master_key=world.master,
        card_id=card_id,
        pins=CardPins(auth="0000", sign="CENTRE0", text="0000", juki="0000"),
    )
    with IssuerSession(made.card, world.master) as issuer:
        surface = issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
    made.card.reset()

    engine = world.engine()
    reply = engine.start_issuance(
        resident_id=resident_id,
        card_id=card_id,
        diversification_data=made.card.state.kdd,
        card_public_key_der=surface.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        card_expiry=card_expiry,
        terminal_id="t-test",
        staff_id="staff-3",
        documents=["notice_of_issuance", "driver_licence"],
        photo=photo,
        contacts=[("email", "taro@example.jp"), ("mobile", "090-1111-2222")],
    )
    assert reply["state"] == "sign_surface" and reply["exchange"]["status"] == "card"
    pinpad = ScriptedPinPad(
        pins={"auth_pin": NEW_PINS["auth_pin"], "code_b": made.verification_code_b}, new_pins=dict(NEW_PINS)
    )
    reply = run_agent(engine, reply, made.card, pinpad)
    assert reply["status"] == "completed", (reply["error"], reply["state"])
    assert [a for a in pinpad.asked if a.startswith("new:")] == [f"new:{k}" for k in NEW_PINS]
    # the card face now carries the card centre's signature from the CA key store
    face = CardClient(made.card).read_card_face(made.verification_code_b)
    made.card.reset()
    assert verify_card_face(face, world.ports.surface.public_key())
    assert not verify_card_face(face, made.surface_signer_public_key)

    with world.db.session() as s:
        card = registry.get_card(s, card_id)
        assert card.state is CardState.ACTIVE and card.auth_cert_serial and card.sign_cert_serial
        _model, encoding = registry.enrolled_encoding(s, card_id)
        assert len(encoding) == 128
        assert len(registry.contacts_of(s, resident_id, verified_only=True)) == 2
        kinds = sorted(
            (n.kind.value, n.held_by)
            for n in s.scalars(select(Notification).where(Notification.request_id.like(f"{reply['id'][:20]}%")))
        )
        assert kinds == [
            ("issuance_request", "jlis"),
            ("issuance_request", "municipality:131016"),
            ("issuance_result", "jlis"),
            ("issuance_result", "municipality:131016"),
        ]
        # the holder's registered contacts are told that certificates were issued in their name (one notice each)
        notices = s.scalars(select(HolderNotice).where(HolderNotice.procedure_id == reply["id"])).all()
        assert sorted(n.channel for n in notices) == ["email", "mobile"], [(n.channel, n.address) for n in notices]
        for notice in notices:
            assert notice.event_kind == "issuance"
            assert "マイナンバーカードの電子証明書が発行されました" in notice.body
            if notice.channel == "email":  # (the SMS text is Japanese only)
                assert "certificates on your My Number Card were issued" in notice.body
            assert "市区町村窓口" in notice.body and reply["id"] in notice.body
    client = CardClient(made.card)
    certificate = x509.load_der_x509_certificate(client.read_auth_certificate())
    made.card.reset()
    assert format(certificate.serial_number, "x") == card.auth_cert_serial
    assert world.ca.status("authentication", certificate.serial_number).state is CertificateState.ISSUED
    client.sign_with_sign_key(
        NEW_PINS["sign_password"], bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)
    )
    made.card.reset()
    # and the new card works for a remote procedure straight away
    reply = engine.start(kind="pin_change", target="text_pin", channel="online", card_id=card_id, terminal_id="t")
    reply = run_agent(
        engine,
        reply,
        made.card,
        ScriptedPinPad(pins={"text_pin": NEW_PINS["text_pin"]}, new_pins={"text_pin": "1234"}),
        terminal_id="t",
    )
    assert reply["status"] == "completed"
