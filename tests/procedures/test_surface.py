"""The card-surface signature: the card centre's key in the CA key store, verified before the photo is compared,
a foreign or altered card face refused (audited, counted as a face attempt), issuance signing only matching cards."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from procedure_world import PINS, World, run_agent

from jpki_remote.ca.keystore import open_keystore
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.card import factory, layout
from jpki_remote.card.client import CardClient, parse_card_face
from jpki_remote.card.factory import CardPins, create_card
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.card.signing import generate_key
from jpki_remote.procedures.surface import (
    SURFACE_KEY_LABEL,
    SurfaceSignatureError,
    resign_card_face,
    sign_card_surface,
    surface_key,
    verify_card_face,
)
from jpki_remote.proofing.limits import AttemptKind, Limits, Rule, Scope
from jpki_remote.registry import service as registry
from jpki_remote.terminal.agent import ScriptedPinPad


def _face_raw(world: World, card, code_b: str) -> bytes:
    raw = CardClient(card).read_card_face(code_b).raw
    card.reset()
    return raw


def test_key_in_the_store_created_once_and_signatures_bind_the_signed_part(world: World, tmp_path) -> None:
    keystore = open_keystore(world.settings)
    first, second = surface_key(keystore), surface_key(open_keystore(world.settings))
    assert SURFACE_KEY_LABEL in keystore.labels()
    assert first.public_key().public_numbers() == second.public_key().public_numbers()
    issued = world.issue_card()
    raw = _face_raw(world, issued.card, issued.code_b)
    face = parse_card_face(raw)
    assert verify_card_face(face, first.public_key())
    assert not verify_card_face(face, generate_key().public_key())
    photo_at = raw.index(face.photo)
    altered = bytearray(raw)
    altered[photo_at + len(face.photo) // 2] ^= 0x01  # one bit of the photo
    assert not verify_card_face(parse_card_face(bytes(altered)), first.public_key())
    other = surface_key(FileKeyStore(tmp_path / "other-keys"))
    assert verify_card_face(parse_card_face(resign_card_face(raw, other)), other.public_key())
    with pytest.raises(SurfaceSignatureError):
        resign_card_face(raw[:100], other)


def test_a_card_face_not_signed_by_the_card_centre_is_refused_and_counted(world: World, tmp_path) -> None:
    rules = (Rule(AttemptKind.FACE, Scope.CARD, 1, 3600, False, 3600, "card_face_attempts"),)
    world.ports.limits = Limits(world.ports.limits.store, secrets.token_bytes(32), rules, audit=world.audit)
    issued = world.issue_card()
    forger = surface_key(FileKeyStore(tmp_path / "forger-keys"))
    sign_card_surface(issued.card.transmit, world.master, issued.code_b, forger)  # e.g. a cloned card's face
    issued.card.reset()
    engine = world.engine()
    pinpad = ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"], "code_b": issued.code_b})
    outcomes, ids = [], []
    for _ in range(2):
        reply = engine.start(kind="renewal", target="certificates", channel="kiosk", card_id=issued.card_id,
                             terminal_id="t-k")  # fmt: skip
        reply = run_agent(engine, reply, issued.card, pinpad, "t-k")
        outcomes.append((reply["status"], reply["error"]["code"]))
        ids.append(reply["id"])
    assert outcomes == [("failed", "surface_invalid"), ("failed", "locked_out")]  # the refusal was counted
    assert "署名" in engine.view(ids[0])["error"]["ja"]
    refusals = [e for e in world.audit.events(limit=500) if e.event_type == "renewal.card_face"]
    assert refusals and all(e.outcome == "failure" for e in refusals)
    assert refusals[0].detail["reason"] == "surface_signature_invalid"
    assert world.audit.verify().ok


def test_issuance_signs_only_a_card_face_that_matches_the_resident(world: World, faces_dir) -> None:
    photo = (faces_dir / "obama" / "3.jpg").read_bytes()
    with world.db.session() as s:
        registry.create_municipality(s, "13101", "千代田区", "東京都")
        resident = registry.add_resident(s, "131016", family_name="交付", given_name="次郎", address="千代田区1-2",
                                         birth_date=date(1991, 7, 2), sex=1)  # fmt: skip
        resident_id = resident.id
    expiry = date.today() + timedelta(days=3650)
    # the delivered card carries another birth date than the registry's
    made = create_card(factory.test_holder(photo, birth_date=date(1991, 7, 3), sex="1", card_expiry=expiry),
                       card_id="".join(secrets.choice("0123456789") for _ in range(15)),
                       issuer_master_key=world.master, pins=CardPins(auth="0000", sign="CENTRE0", text="0000",
                                                                     juki="0000"))  # fmt: skip
    with IssuerSession(made.card, world.master) as issuer:
        key = issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
    made.card.reset()
    before = _face_raw(world, made.card, made.verification_code_b)
    engine = world.engine()
    reply = engine.start_issuance(
        resident_id=resident_id,
        card_id=made.card_id,
        diversification_data=made.card.state.kdd,
        card_public_key_der=key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        card_expiry=expiry,
        terminal_id="t-c",
        staff_id="staff-4",
        documents=["passport"],
    )
    reply = run_agent(engine, reply, made.card, ScriptedPinPad(pins={"code_b": made.verification_code_b}), "t-c")
    assert reply["status"] == "failed" and reply["error"]["code"] == "surface_mismatch"
    assert _face_raw(world, made.card, made.verification_code_b) == before  # nothing signed, nothing written
    event = next(e for e in world.audit.events(limit=500) if e.event_type == "issuance.card_surface")
    assert event.outcome == "failure" and event.detail["fields"] == "birth_date"
