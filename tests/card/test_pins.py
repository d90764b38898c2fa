"""PIN semantics for all five holder PIN references, the security state, and the signature schemes."""

from __future__ import annotations

import hashlib
import io

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from PIL import Image

from jpki_remote.card import layout
from jpki_remote.card.apdu import CommandApdu
from jpki_remote.card.client import CardClient, PinBlockedError, PinIncorrectError, SecurityStatusError
from jpki_remote.card.signing import sha256_digest_info

# (applet, fid, correct value, max tries, change CLA/INS/P1, a valid new value)
PINS = [
    ("jpki", layout.JPKI_AUTH_PIN, "1234", 3, (0x00, 0x24, 0x01), "9876"),
    ("jpki", layout.JPKI_SIGN_PIN, "ABC123", 5, (0x00, 0x24, 0x01), "NEWPASS9"),
    ("text", layout.TEXT_PIN, "2345", 3, (0x00, 0x24, 0x01), "8765"),
    ("juki", layout.JUKI_PIN, "3456", 3, (0x80, 0x32, 0x00), "7654"),
    ("common", layout.COMMON_PIN, "4567", 3, (0x80, 0x32, 0x00), "6543"),
]


def ids(p: tuple) -> str:  # type: ignore[type-arg]
    return f"{p[0]}-{p[1]:04X}"


@pytest.mark.parametrize("pin", PINS, ids=ids)
def test_retry_counter_and_blocking(made, pin) -> None:
    applet, fid, value, tries, _change, _new = pin
    created, store = made
    client = CardClient(created.card)
    client.select_ap(applet)
    client.select_ef(fid)
    assert client.send(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw == 0x63C0 | tries
    client.verify(fid, value)
    # an empty VERIFY answers 63Cx even after a successful VERIFY
    assert client.send(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw == 0x63C0 | tries
    for left in range(tries - 1, -1, -1):
        with pytest.raises(PinIncorrectError) as err:
            client.verify(fid, "0000" if fid != layout.JPKI_SIGN_PIN else "WRONG00")
        assert err.value.tries_left == left  # 63C0 on the exhausting attempt
    assert client.send(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw == 0x63C0
    with pytest.raises(PinBlockedError):
        client.verify(fid, value)  # 6984 afterwards, even with the right value
    # blocked state survives a restart
    reopened = CardClient(store.open(created.card_id))
    reopened.select_ap(applet)
    assert reopened.pin_tries(fid) == 0


@pytest.mark.parametrize("pin", PINS, ids=ids)
def test_correct_pin_resets_counter(made, pin) -> None:
    applet, fid, value, tries, _change, _new = pin
    client = CardClient(made[0].card)
    client.select_ap(applet)
    with pytest.raises(PinIncorrectError):
        client.verify(fid, "1111" if fid != layout.JPKI_SIGN_PIN else "BADBAD")
    assert client.pin_tries(fid) == tries - 1
    client.verify(fid, value)
    assert client.pin_tries(fid) == tries


@pytest.mark.parametrize("pin", PINS, ids=ids)
def test_change_pin(made, pin) -> None:
    applet, fid, value, _tries, (cla, ins, p1), new = pin
    client = CardClient(made[0].card)
    client.select_ap(applet)
    client.select_ef(fid)
    assert client.send(CommandApdu(cla, ins, p1, 0x80, new.encode())).sw == 0x6982  # not verified
    client.verify(fid, value)
    assert client.send(CommandApdu(cla, ins, p1, 0x80, b"12")).sw == 0x6A80  # bad format
    assert client.send(CommandApdu(cla, ins, p1 ^ 0x01, 0x80, new.encode())).sw == 0x6A86
    assert client.send(CommandApdu(cla, ins, p1, 0x80, new.encode())).sw == 0x9000
    client.select_ap(applet)
    with pytest.raises(PinIncorrectError):
        client.verify(fid, value)
    client.verify(fid, new)


def test_sign_password_format(made) -> None:
    client = CardClient(made[0].card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_SIGN_PIN, "ABC123")
    for bad in ("abc123", "ABC12", "A" * 17, "ABC-123"):
        assert client.send(CommandApdu(0x00, 0x24, 0x01, 0x80, bad.encode())).sw == 0x6A80
    assert client.send(CommandApdu(0x00, 0x24, 0x01, 0x80, b"Z" * 16)).sw == 0x9000


def test_security_state_is_per_applet_and_lost_on_reselect_and_reset(made) -> None:
    card = made[0].card
    client = CardClient(card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_SIGN_PIN, "ABC123")
    assert client.read_ef(layout.JPKI_SIGN_CERT)[:2] == b"\x30\x82"
    client.select_ap("jpki")  # re-select: logged out
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.JPKI_SIGN_CERT)
    client.verify(layout.JPKI_SIGN_PIN, "ABC123")
    client.select_ap("text")
    client.select_ap("jpki")
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.JPKI_SIGN_CERT)
    client.verify(layout.JPKI_SIGN_PIN, "ABC123")
    card.reset()
    client.select_ap("jpki")
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.JPKI_SIGN_CERT)


def test_text_ap_access_rules(made) -> None:
    created = made[0]
    client = CardClient(created.card)
    client.select_ap("text")
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.TEXT_MY_NUMBER)
    client.verify(layout.TEXT_CODE_A, created.holder.my_number)
    assert client.read_ef(layout.TEXT_MY_NUMBER) == b"\xff\x10\x0c" + created.holder.my_number.encode()
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.TEXT_ATTRIBUTES)  # A opens 0001 only
    client.select_ap("text")
    client.verify(layout.TEXT_CODE_B, created.verification_code_b)
    attributes = client.read_ef(layout.TEXT_ATTRIBUTES)
    assert created.holder.name.encode() in attributes
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.TEXT_MY_NUMBER)  # B opens 0002 only
    client.select_ap("text")
    assert client.pin_tries(layout.TEXT_BLOCKED_0012) == 0
    with pytest.raises(PinBlockedError):
        client.verify(layout.TEXT_BLOCKED_0012, "1234")


def test_surface_ap_access_rules_and_signature(made) -> None:
    created = made[0]
    client = CardClient(created.card)
    client.select_ap("surface")
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.SURFACE_CARD_FACE)
    client.verify(layout.SURFACE_BIRTH_KEY, created.birth_date_key)
    assert client.read_ef(layout.SURFACE_AGE_RECORD)[:2] == b"\xff\x10"
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.SURFACE_CARD_FACE)
    face = client.read_card_face(created.verification_code_b)
    assert face.photo[4:8] == b"jP  " and face.birth_date == created.holder.birth_date
    photo = Image.open(io.BytesIO(face.photo))
    assert photo.mode == "L" and 300 <= photo.size[1] <= 480
    with pytest.raises(SecurityStatusError):
        client.read_ef(layout.SURFACE_MY_NUMBER_IMAGE)  # B does not open 0005
    # issuer signature over the three digest groups
    _verify_raw(created.surface_signer_public_key, face.signature, face.signed_digest_info)
    # the AP key proves presence without any PIN
    card_sig = CardClient(created.card).prove_presence(b"nonce-123")
    face.public_key.verify(card_sig, b"nonce-123", padding.PKCS1v15(), hashes.SHA256())


def _verify_raw(public, signature: bytes, payload: bytes) -> None:
    nums = public.public_numbers()
    em = pow(int.from_bytes(signature, "big"), nums.e, nums.n).to_bytes(256, "big")
    assert em == b"\x00\x01" + b"\xff" * (256 - 3 - len(payload)) + b"\x00" + payload


@pytest.mark.parametrize("scheme", [0, 1, 2, 3, 4, 5])
def test_signature_schemes(made, scheme: int) -> None:
    client = CardClient(made[0].card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_SIGN_PIN, "ABC123")
    public = x509.load_der_x509_certificate(client.read_ef(layout.JPKI_SIGN_CERT)).public_key()
    message = b"document to sign"
    digest = hashlib.sha256(message).digest()
    data = {0: sha256_digest_info(digest), 1: message, 2: digest, 3: message, 4: digest, 5: message}[scheme]
    sig = client.sign(layout.JPKI_SIGN_KEY, data, scheme=scheme)
    assert len(sig) == 256
    if scheme in (0, 2, 3):
        public.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    elif scheme == 1:
        _verify_raw(public, sig, digest)
    else:
        public.verify(sig, digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), utils.Prehashed(hashes.SHA256()))


def test_signature_input_rules(made) -> None:
    client = CardClient(made[0].card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_AUTH_PIN, "1234")
    sign = lambda p1, data, ne=256: client.send(CommandApdu(0x80, 0x2A, p1, 0x97, data, ne)).sw  # noqa: E731
    assert sign(0, b"\x01" * 246) == 0x6985
    assert sign(0, b"\x01" * 245) == 0x9000
    assert sign(2, b"\x01" * 31) == 0x6700
    assert sign(0, b"\x01", ne=None) == 0x6C00
    # selecting the key EF and using P2 = 80 gives the same signature (PKCS#1 v1.5 is deterministic)
    client.select_ef(layout.JPKI_AUTH_KEY)
    by_select = client.send(CommandApdu(0x80, 0x2A, 0x00, 0x80, b"abc", 256)).data
    assert by_select == client.send(CommandApdu(0x80, 0x2A, 0x00, 0x97, b"abc", 256)).data
