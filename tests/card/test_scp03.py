"""SCP03 key derivation: a known-answer test and a cross-check of the KDF against an independent implementation."""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from jpki_remote.card import scp03
from jpki_remote.card.apdu import CommandApdu


def test_kdf3_known_answer_globalplatformpro() -> None:
    """Vector from martinpaljak/GlobalPlatformPro, library/src/test/java/pro/javacard/gp/TestSCP03.java (testKDF3):
    master 8C72…3BCD, KDD D9B1DE5D0362DEDCE4FB, ENC constant 0000000100 -> 9AAC5D0B…7C224781."""
    master = bytes.fromhex("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
    kdd = bytes.fromhex("D9B1DE5D0362DEDCE4FB")
    keys = scp03.diversify(master, kdd)
    assert keys["enc"] == bytes.fromhex("9AAC5D0B3601F89438A0D9D0B6B256CFB47E6462DFA5228D3420C4AC7C224781")
    assert len({keys["enc"], keys["mac"], keys["dek"]}) == 3


def test_session_derivation_matches_sp800_108_reference() -> None:
    """Our Amendment-D derivation equals cryptography's SP 800-108 KBKDF-CMAC with the counter in the middle."""
    for size in (16, 32):
        key, context = secrets.token_bytes(size), secrets.token_bytes(16)
        prefix = bytes(11) + bytes((scp03.S_MAC, 0x00)) + (size * 8).to_bytes(2, "big")
        reference = KBKDFCMAC(algorithm=algorithms.AES, mode=Mode.CounterMode, length=size, rlen=1, llen=None,
                              location=CounterLocation.MiddleFixed, label=None, context=None,
                              fixed=prefix + context, break_location=len(prefix)).derive(key)
        assert scp03.derive(key, scp03.S_MAC, context, size * 8) == reference


def test_wrap_unwrap_both_directions_and_replay_fails() -> None:
    keys = scp03.SessionKeys(secrets.token_bytes(16), secrets.token_bytes(16), secrets.token_bytes(16))
    host, card = scp03.SecureChannel(keys, 0x33), scp03.SecureChannel(keys, 0x33)
    cmd = CommandApdu(0x80, 0xF5, 0x01, 0x18, b"1234", None)
    wire = host.wrap(cmd)
    assert b"1234" not in wire.to_bytes()  # C-ENC: the PIN is not on the wire
    assert card.unwrap(wire).data == b"1234"
    from jpki_remote.card.apdu import ResponseApdu

    resp = card.wrap_response(ResponseApdu(b"secret", 0x9000))
    assert b"secret" not in resp.data
    assert host.unwrap_response(resp.to_bytes()).data == b"secret"
    import pytest

    from jpki_remote.card.apdu import ApduError

    with pytest.raises(ApduError):
        card.unwrap(wire)  # the same bytes again: the MAC chain has moved on
