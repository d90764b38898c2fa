"""The public commands OpenSC's jpki driver uses, byte for byte: SELECT, READ BINARY, VERIFY, COMPUTE SIGNATURE."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki_remote.card import layout
from jpki_remote.card.virtual import VirtualCard

from .conftest import AUTH_PIN, SIGN_PASSWORD, directly_personalised_state

SELECT_JPKI = bytes.fromhex("00A4040C0A") + layout.AID_JPKI


def ef(fid: int) -> bytes:
    return bytes.fromhex("00A4020C02") + fid.to_bytes(2, "big")


@pytest.fixture
def card(pooled_keygen: Callable[[], rsa.RSAPrivateKey]) -> VirtualCard:
    return VirtualCard(directly_personalised_state(pooled_keygen))


def ok(resp: bytes) -> bytes:
    assert resp[-2:] == b"\x90\x00", resp[-2:].hex()
    return resp[:-2]


def test_atr_is_the_one_opensc_matches(card: VirtualCard) -> None:
    assert card.atr == bytes.fromhex("3BE000FF8131FE4514")


def test_opensc_reads_auth_certificate_like_its_driver(card: VirtualCard) -> None:
    ok(card.transmit(SELECT_JPKI))
    ok(card.transmit(ef(layout.JPKI_AUTH_CERT)))
    head = ok(card.transmit(bytes.fromhex("00B0000004")))
    size = (head[2] << 8 | head[3]) + 4
    data = b""
    while len(data) < size:
        chunk = min(256, size - len(data))
        data += ok(card.transmit(bytes((0x00, 0xB0, len(data) >> 8, len(data) & 0xFF, chunk & 0xFF))))
    cert = x509.load_der_x509_certificate(data)
    assert cert.subject.rfc4514_string().endswith("CN=auth") or "CN=auth" in cert.subject.rfc4514_string()


def test_sign_certificate_needs_the_sign_password(card: VirtualCard) -> None:
    ok(card.transmit(SELECT_JPKI))
    ok(card.transmit(ef(layout.JPKI_SIGN_CERT)))
    assert card.transmit(bytes.fromhex("00B0000004")) == b"\x69\x82"
    ok(card.transmit(ef(layout.JPKI_SIGN_PIN)))
    ok(card.transmit(bytes.fromhex("0020008006") + SIGN_PASSWORD))
    ok(card.transmit(ef(layout.JPKI_SIGN_CERT)))
    assert ok(card.transmit(bytes.fromhex("00B0000004")))[:2] == b"\x30\x82"


def test_pkcs1_signature_with_auth_key_verifies(card: VirtualCard) -> None:
    ok(card.transmit(SELECT_JPKI))
    ok(card.transmit(ef(layout.JPKI_AUTH_PIN)))
    ok(card.transmit(bytes.fromhex("0020008004") + AUTH_PIN))
    ok(card.transmit(ef(layout.JPKI_AUTH_KEY)))
    import hashlib

    from jpki_remote.card.signing import sha256_digest_info

    digest_info = sha256_digest_info(hashlib.sha256(b"challenge").digest())
    sig = ok(card.transmit(bytes((0x80, 0x2A, 0x00, 0x80, len(digest_info))) + digest_info + b"\x00"))
    assert len(sig) == 256
    ok(card.transmit(ef(layout.JPKI_AUTH_CERT)))
    der = b""
    while True:
        resp = card.transmit(bytes((0x00, 0xB0, len(der) >> 8, len(der) & 0xFF, 0x00)))
        if resp[-2:] != b"\x90\x00":
            break
        der += resp[:-2]
    cert = x509.load_der_x509_certificate(der[: (der[2] << 8 | der[3]) + 4])
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(sig, b"challenge", padding.PKCS1v15(), hashes.SHA256())
