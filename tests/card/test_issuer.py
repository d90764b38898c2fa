"""The issuer flow over secure messaging: renewal (pending keys, certificates, commit / discard), PIN resets,
tampering, replay and missing sessions."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki_remote.card import layout, scp03
from jpki_remote.card.apdu import CommandApdu
from jpki_remote.card.client import CardClient, PinBlockedError, PinIncorrectError
from jpki_remote.card.factory import TestCertificateAuthority
from jpki_remote.card.issuer import IssuerSession, SecureChannelError
from jpki_remote.card.signing import sha256_digest_info

from .conftest import MASTER_KEY


def auth_signature_verifies(client: CardClient, message: bytes) -> bool:
    cert = x509.load_der_x509_certificate(client.read_auth_certificate())
    sig = client.sign_with_auth_key("1234", sha256_digest_info(hashlib.sha256(message).digest()))
    try:
        cert.public_key().verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def test_renewal_pending_then_commit(made, pooled_keygen) -> None:
    created, store = made
    card = created.card
    client = CardClient(card)
    old_cert = client.read_auth_certificate()
    ca = TestCertificateAuthority(pooled_keygen)
    with IssuerSession(card, MASTER_KEY) as issuer:
        new_auth = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
        new_sign = issuer.generate_key("jpki", layout.JPKI_SIGN_KEY)
        assert issuer.status().pending_keys == (layout.JPKI_AUTH_KEY, layout.JPKI_SIGN_KEY)
        issued = ca.issue(new_auth, new_sign, created.holder)
        # a certificate for another key is refused
        with pytest.raises(Exception) as err:
            issuer.put_certificate(layout.JPKI_AUTH_KEY, issued.sign)  # type: ignore[arg-type]
        assert getattr(err.value, "sw", None) == 0x6A80
        issuer.put_certificate(layout.JPKI_AUTH_KEY, issued.auth)
        # commit needs every pending key certified
        with pytest.raises(Exception) as err:
            issuer.commit()
        assert getattr(err.value, "sw", None) == 0x6985
        issuer.put_certificate(layout.JPKI_SIGN_KEY, issued.sign)  # type: ignore[arg-type]
    # until commit, the old keys and certificates keep working — also after a restart
    card = store.open(created.card_id)
    client = CardClient(card)
    assert client.read_auth_certificate() == old_cert
    assert auth_signature_verifies(client, b"old key still signs")
    with IssuerSession(card, MASTER_KEY) as issuer:
        assert issuer.status().pending_certificates == (layout.JPKI_AUTH_KEY, layout.JPKI_SIGN_KEY)
        issuer.commit()
        assert issuer.status().pending_keys == ()
    card = store.open(created.card_id)
    client = CardClient(card)
    assert client.read_auth_certificate() == issued.auth
    assert client.read_sign_certificate("ABC123") == issued.sign
    assert auth_signature_verifies(client, b"new key signs")


def test_discard_pending(made) -> None:
    created, _store = made
    client = CardClient(created.card)
    old = client.read_auth_certificate()
    with IssuerSession(created.card, MASTER_KEY) as issuer:
        issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
        issuer.discard()
        status = issuer.status()
        assert status.pending_keys == () and status.active_jpki_keys == (layout.JPKI_AUTH_KEY, layout.JPKI_SIGN_KEY)
        with pytest.raises(Exception) as err:
            issuer.commit()
        assert getattr(err.value, "sw", None) == 0x6985
    assert client.read_auth_certificate() == old
    assert auth_signature_verifies(client, b"unchanged")


@pytest.mark.parametrize("which", ["sign", "auth", "juki", "text", "common"])
def test_pin_reset_of_a_blocked_pin(made, which: str) -> None:
    created, _ = made
    applet, fid = layout.HOLDER_PINS[which]
    client = CardClient(created.card)
    client.select_ap(applet)
    wrong = "WRONG00" if which == "sign" else "0000"
    for _ in range(layout.BY_NAME[applet].pins[fid].max_tries):
        with pytest.raises(PinIncorrectError):
            client.verify(fid, wrong)
    with pytest.raises(PinBlockedError):
        client.verify(fid, wrong)
    new = "RESET2024" if which == "sign" else "5555"
    with IssuerSession(created.card, MASTER_KEY) as issuer:
        issuer.reset_holder_pin(which, new)
        status = issuer.status().pin(applet, fid)
        assert status is not None and not status.blocked
    client.select_ap(applet)
    assert client.pin_tries(fid) == layout.BY_NAME[applet].pins[fid].max_tries
    client.verify(fid, new)


def test_new_pin_travels_encrypted_and_bad_format_refused(made) -> None:
    created, _ = made
    seen: list[bytes] = []

    def spy(apdu: bytes) -> bytes:
        seen.append(apdu)
        return created.card.transmit(apdu)

    with IssuerSession(spy, MASTER_KEY) as issuer:
        issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "8642")
        with pytest.raises(Exception) as err:
            issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "86")
        assert getattr(err.value, "sw", None) == 0x6A80
    assert not any(b"8642" in apdu for apdu in seen)


def test_issuer_commands_without_session_are_refused(made) -> None:
    card = made[0].card
    assert card.transmit(bytes.fromhex("00A4040C08") + layout.AID_ISSUER)[-2:] == b"\x90\x00"
    for ins in (0xE2, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7):
        assert card.transmit(bytes((0x80, ins, 0x01, 0x18, 0x04)) + b"1234")[-2:] == b"\x69\x82"
        assert card.transmit(bytes((0x84, ins, 0x01, 0x18, 0x0C)) + b"1234" + bytes(8))[-2:] == b"\x69\x82"
    # issuer commands are unknown to the holder applets
    card.transmit(bytes.fromhex("00A4040C0A") + layout.AID_JPKI)
    assert card.transmit(bytes.fromhex("84F30000"))[-2:] == b"\x6d\x00"


def test_wrong_master_key_fails_mutual_authentication(made) -> None:
    with pytest.raises(SecureChannelError):
        IssuerSession(made[0].card, bytes(32)).open()


class Relay:
    """A malicious terminal: records, replays or tampers with what it relays."""

    def __init__(self, card) -> None:
        self.card = card
        self.log: list[bytes] = []
        self.tamper = False

    def __call__(self, apdu: bytes) -> bytes:
        if self.tamper and apdu[0] == 0x84 and len(apdu) > 6:
            apdu = apdu[:5] + bytes((apdu[5] ^ 0x01,)) + apdu[6:]
        self.log.append(apdu)
        return self.card.transmit(apdu)


def test_replayed_command_is_refused_and_ends_session(made) -> None:
    created, _ = made
    relay = Relay(created.card)
    with IssuerSession(relay, MASTER_KEY) as issuer:
        issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "1111")
        set_pin_apdu = relay.log[-1]
        assert set_pin_apdu[:2] == b"\x84\xf5"
        issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "2222")
        assert created.card.transmit(set_pin_apdu)[-2:] == b"\x69\x82"  # replay
        with pytest.raises(SecureChannelError):
            issuer.status()  # the session is over
    client = CardClient(created.card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_AUTH_PIN, "2222")  # the replay did not set 1111


def test_tampered_command_is_refused_and_ends_session(made) -> None:
    created, _ = made
    relay = Relay(created.card)
    with IssuerSession(relay, MASTER_KEY) as issuer:
        relay.tamper = True
        with pytest.raises(SecureChannelError):
            issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "1111")
        relay.tamper = False
        with pytest.raises(SecureChannelError):
            issuer.status()
    client = CardClient(created.card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_AUTH_PIN, "1234")


def test_tampered_response_is_detected(made) -> None:
    created, _ = made

    def flip_response(apdu: bytes) -> bytes:
        resp = created.card.transmit(apdu)
        if apdu[0] == 0x84 and apdu[1] == 0xF7 and len(resp) > 2:
            resp = bytes((resp[0] ^ 0x01,)) + resp[1:]
        return resp

    with IssuerSession(flip_response, MASTER_KEY) as issuer, pytest.raises(SecureChannelError):
        issuer.status()


@pytest.mark.parametrize("key_size", [16, 32])
@pytest.mark.parametrize("level", [0x13, 0x33])
def test_aes128_and_aes256_and_levels(pooled_keygen, key_size: int, level: int) -> None:
    from jpki_remote.card.manufacture import manufacture
    from jpki_remote.card.virtual import VirtualCard

    master = bytes(range(key_size))
    card = VirtualCard(manufacture(master, keygen=pooled_keygen), keygen=pooled_keygen)
    with IssuerSession(card, master, level=level, chunk_size=1000) as issuer:
        issuer.store_file("jpki", layout.JPKI_AUTH_CA_CERT, b"\x30\x03\x02\x01\x01")
        assert issuer.status().lifecycle == "blank"
    assert card.state.file("jpki", layout.JPKI_AUTH_CA_CERT)[:5] == b"\x30\x03\x02\x01\x01"
    assert len(card.state.scp_keys["enc"]) == key_size
    assert scp03.key_check_value(card.state.scp_keys["enc"]) == scp03.key_check_value(
        scp03.diversify(master, card.state.kdd)["enc"])


def test_user_certificates_change_only_through_commit(made) -> None:
    with IssuerSession(made[0].card, MASTER_KEY) as issuer, pytest.raises(Exception) as err:
        issuer.store_file("jpki", layout.JPKI_AUTH_CERT, b"\x30\x00")
    assert getattr(err.value, "sw", None) == 0x6985


def test_reselect_ends_session(made) -> None:
    card = made[0].card
    issuer = IssuerSession(card, MASTER_KEY).open()
    card.transmit(bytes.fromhex("00A4040C0A") + layout.AID_JPKI)
    card.transmit(bytes.fromhex("00A4040C08") + layout.AID_ISSUER)
    with pytest.raises(SecureChannelError):
        issuer.status()
    assert CommandApdu
