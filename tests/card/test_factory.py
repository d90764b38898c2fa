"""The factory: a card as delivered to the counter (card-centre data, no JPKI keys, certificates or holder PINs) on
which issuance really generates the keys and sets the PINs; and a store that never keeps a half-made card."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki_remote.card import layout
from jpki_remote.card.client import CardClient, CardError
from jpki_remote.card.factory import CardPins, TestCertificateAuthority, create_card, deliver_card
from jpki_remote.card.factory import test_holder as holder_for
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.card.signing import sha256_digest_info
from jpki_remote.card.store import CardStore

from .conftest import MASTER_KEY

NOT_SET = 0x6A88  # VERIFY / SIGN on a key reference or key the card does not hold yet
HOLDER_PINS = list(layout.HOLDER_PINS.values())


def test_delivered_card_has_card_centre_data_but_no_jpki_keys_certificates_or_holder_pins(
    face_photo: bytes, pooled_keygen, tmp_path: Path
) -> None:
    holder = holder_for(face_photo)
    delivered = deliver_card(holder, issuer_master_key=MASTER_KEY, keygen=pooled_keygen,
                             store=CardStore(tmp_path), card_id="delivered")
    state = CardStore(tmp_path).load("delivered")
    assert state.lifecycle == "personalised"
    assert "jpki" not in state.keys and not state.pending_keys and not state.pending_certs
    assert set(state.keys) == {"surface", "text"}  # the AP keys from manufacture
    for applet, fid in HOLDER_PINS:
        assert state.pin(applet, fid) is None, (applet, fid)
    assert state.file("jpki", layout.JPKI_CERT_AVAILABILITY) == b"\x00\x00\x00"

    card = delivered.card
    client = CardClient(card)
    # the card face, 照合番号A/B and the common card info are there ...
    face = client.read_card_face(delivered.verification_code_b)
    assert face.birth_date == holder.birth_date
    client.select_ap("text")
    client.verify(layout.TEXT_CODE_A, holder.my_number)
    client.select_ap("common")
    assert delivered.serial.encode() in client.read_record(1, layout.COMMON_CARD_INFO)
    assert client.prove_presence(b"challenge")  # the surface AP key signs without a PIN
    # ... but no holder PIN, no certificate and no JPKI key
    client.select_ap("jpki")
    for fid in (layout.JPKI_AUTH_PIN, layout.JPKI_SIGN_PIN):
        assert card.transmit(bytes((0x00, 0x20, 0x00, 0x80 | fid)))[-2:] == NOT_SET.to_bytes(2, "big")
    assert client.read_ef(layout.JPKI_AUTH_CERT) == b""
    with pytest.raises(CardError) as err:
        client.sign(layout.JPKI_AUTH_KEY, sha256_digest_info(bytes(32)))
    assert err.value.sw == 0x6982  # the auth PIN cannot be verified: there is none
    client.select_ap("text")
    assert card.transmit(bytes((0x00, 0x20, 0x00, 0x80 | layout.TEXT_PIN)))[-2:] == NOT_SET.to_bytes(2, "big")
    assert delivered.kdd == state.kdd
    assert delivered.card_public_key.public_numbers() == card.private_key(
        "surface", layout.SURFACE_AP_KEY).public_key().public_numbers()


def test_issuance_on_a_delivered_card_generates_keys_and_sets_pins(face_photo: bytes, pooled_keygen) -> None:
    delivered = deliver_card(holder_for(face_photo), issuer_master_key=MASTER_KEY, keygen=pooled_keygen)
    card = delivered.card
    ca = TestCertificateAuthority(pooled_keygen)
    with IssuerSession(card, MASTER_KEY, expected_kdd=delivered.kdd) as issuer:
        before = issuer.status()
        assert before.active_jpki_keys == () and before.pin("jpki", layout.JPKI_AUTH_PIN) is None
        for which, value in (("auth", "2580"), ("sign", "MYPASS77"), ("juki", "1470"), ("common", "1470"),
                             ("text", "3690")):
            issuer.reset_holder_pin(which, value)
        auth = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
        sign = issuer.generate_key("jpki", layout.JPKI_SIGN_KEY)
        issued = ca.issue(auth, sign, delivered.holder)
        issuer.store_file("jpki", layout.JPKI_AUTH_CA_CERT, issued.auth_ca)
        issuer.put_certificate(layout.JPKI_AUTH_KEY, issued.auth)
        issuer.store_file("jpki", layout.JPKI_SIGN_CA_CERT, issued.sign_ca)  # type: ignore[arg-type]
        issuer.put_certificate(layout.JPKI_SIGN_KEY, issued.sign)  # type: ignore[arg-type]
        issuer.commit()
        after = issuer.status()
        assert after.active_jpki_keys == (layout.JPKI_AUTH_KEY, layout.JPKI_SIGN_KEY)
        assert all(after.pin(applet, fid) is not None for applet, fid in HOLDER_PINS)
    client = CardClient(card)
    certificate = x509.load_der_x509_certificate(client.read_auth_certificate())
    assert certificate.public_key().public_numbers() == auth.public_numbers()
    message = b"first use of the new card"
    signature = client.sign_with_auth_key("2580", sha256_digest_info(hashlib.sha256(message).digest()))
    certificate.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    assert client.read_sign_certificate("MYPASS77") == issued.sign
    client.select_ap("jpki")
    assert client.read_ef(layout.JPKI_CERT_AVAILABILITY, tlv=False)[:2] == b"\x8f\x8f"
    client.select_ap("text")
    client.verify(layout.TEXT_PIN, "3690")


def _entries(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name != ".storage-key")


def test_failed_creation_leaves_nothing_in_the_store(face_photo: bytes, pooled_keygen, tmp_path: Path) -> None:
    store = CardStore(tmp_path)
    calls = []

    def refusing_ca(auth, sign, holder):
        calls.append(auth)
        raise RuntimeError("the CA is down")

    with pytest.raises(RuntimeError, match="the CA is down"):
        create_card(holder_for(face_photo), issuer_master_key=MASTER_KEY, keygen=pooled_keygen, store=store,
                    pins=CardPins(auth="1234", sign="ABC123", text="2345", juki="3456"), certificates=refusing_ca,
                    card_id="half")
    assert calls, "the failure happened mid-issuance, after key generation"
    assert _entries(tmp_path) == [] and store.ids() == []


def test_creation_never_overwrites_an_existing_card(face_photo: bytes, pooled_keygen, tmp_path: Path) -> None:
    store = CardStore(tmp_path)
    first = deliver_card(holder_for(face_photo), issuer_master_key=MASTER_KEY, keygen=pooled_keygen, store=store,
                         card_id="taken")
    before = store.path("taken").read_bytes()
    with pytest.raises(FileExistsError):
        deliver_card(holder_for(face_photo), issuer_master_key=MASTER_KEY, keygen=pooled_keygen, store=store,
                     card_id="taken")
    # even when the id is taken between the check and the write (another process): add is exclusive
    with pytest.raises(FileExistsError):
        store.add(first.card.state)
    assert store.path("taken").read_bytes() == before
    assert _entries(tmp_path) == ["taken.card"]
