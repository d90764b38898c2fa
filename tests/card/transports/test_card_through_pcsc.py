"""Our own client code (``CardClient``, ``IssuerSession``) driving our card through the real PC/SC stack — the path a
kiosk with a physical reader takes — plus what removal and power cycles do to the card's security state."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki_remote.card import layout
from jpki_remote.card.client import CardClient, PinIncorrectError, SecurityStatusError
from jpki_remote.card.factory import CreatedCard
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.card.signing import sha256_digest_info
from jpki_remote.card.store import CardStore
from jpki_remote.card.transports import CardRemovedError
from jpki_remote.card.transports.pcsc import PcscTransport

from .cards import AUTH_PIN, MASTER_KEY, SIGN_PASSWORD
from .pcsc_stack import InsertCard, PcscStack

pytestmark = pytest.mark.pcsc


def test_client_reads_verifies_and_signs_through_pcscd(
    store: CardStore, created: CreatedCard, insert_card: InsertCard
) -> None:
    with insert_card(store.open(created.card_id)), PcscTransport("Virtual PCD") as transport:
        client = CardClient(transport)
        assert client.read_auth_certificate() == created.certificates.auth
        assert client.jpki_pin_tries() == {"auth": 3, "sign": 5}
        with pytest.raises(SecurityStatusError):
            client.read_ef(layout.JPKI_SIGN_CERT)  # needs the sign password
        assert client.read_sign_certificate(SIGN_PASSWORD) == created.certificates.sign

        challenge = b"server challenge 0001"
        signature = client.sign_with_auth_key(AUTH_PIN, sha256_digest_info(hashlib.sha256(challenge).digest()))
        public = x509.load_der_x509_certificate(created.certificates.auth).public_key()
        public.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]

        with pytest.raises(PinIncorrectError) as wrong:
            client.verify(layout.JPKI_AUTH_PIN, "0000")
        assert wrong.value.tries_left == 2
    # The retry counter went to disk through the card store while the card sat in the reader.
    assert store.load(created.card_id).pin("jpki", layout.JPKI_AUTH_PIN).tries_left == 2


def test_issuer_secure_messaging_through_pcscd(
    store: CardStore, created: CreatedCard, insert_card: InsertCard
) -> None:
    """The server's secure channel works through any relay: here pcscd + vpcd carry it."""
    with insert_card(store.open(created.card_id)), PcscTransport("Virtual PCD") as transport:
        client = CardClient(transport)
        client.select_ap("jpki")
        for _ in range(3):
            with pytest.raises(PinIncorrectError):
                client.verify(layout.JPKI_AUTH_PIN, "0000")
        with IssuerSession(transport, MASTER_KEY) as issuer:
            assert issuer.status().pin("jpki", layout.JPKI_AUTH_PIN).blocked  # type: ignore[union-attr]
            issuer.reset_holder_pin("auth", "4321")
        client.select_ap("jpki")
        client.verify(layout.JPKI_AUTH_PIN, "4321")
    assert store.load(created.card_id).pin("jpki", layout.JPKI_AUTH_PIN).tries_left == 3


def test_a_power_cycle_drops_the_verified_pin(store: CardStore, created: CreatedCard, insert_card: InsertCard) -> None:
    with insert_card(store.open(created.card_id)):
        with PcscTransport("Virtual PCD", on_close="leave") as transport:
            client = CardClient(transport)
            client.select_ap("jpki")
            client.verify(layout.JPKI_SIGN_PIN, SIGN_PASSWORD)
            assert client.read_ef(layout.JPKI_SIGN_CERT) == created.certificates.sign
        with PcscTransport("Virtual PCD", on_close="reset") as transport:
            client = CardClient(transport)
            client.select_ap("jpki")  # (re-selecting alone also logs out; the point here is the reset on close)
            client.verify(layout.JPKI_SIGN_PIN, SIGN_PASSWORD)
        with PcscTransport("Virtual PCD") as transport:
            transport.transmit(bytes.fromhex("00A4040C0A") + layout.AID_JPKI)
            # Without re-selecting: the previous session was reset, so the sign certificate is closed again.
            response = transport.transmit(bytes.fromhex("00B08100") + b"\x04")
            assert response[-2:] == b"\x69\x82"


def test_pulling_the_card_mid_signature_session(
    pcsc_stack: PcscStack, store: CardStore, created: CreatedCard, insert_card: InsertCard
) -> None:
    with insert_card(store.open(created.card_id)) as server:
        transport = PcscTransport("Virtual PCD")
        client = CardClient(transport)
        client.select_ap("jpki")
        client.verify(layout.JPKI_AUTH_PIN, AUTH_PIN)
        server.stop()
        assert pcsc_stack.wait_card(False)
        with pytest.raises(CardRemovedError):
            client.sign(layout.JPKI_AUTH_KEY, sha256_digest_info(hashlib.sha256(b"x").digest()))
        transport.close()
    # Re-inserted: the card is intact, the PIN is not verified any more, no try was spent.
    with insert_card(store.open(created.card_id)), PcscTransport("Virtual PCD") as transport:
        client = CardClient(transport)
        assert client.jpki_pin_tries() == {"auth": 3, "sign": 5}
        client.select_ap("jpki")
        with pytest.raises(SecurityStatusError):
            client.sign(layout.JPKI_AUTH_KEY, sha256_digest_info(hashlib.sha256(b"x").digest()))
