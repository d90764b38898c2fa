"""Retry limit of issuer authentication: failures in a row are counted durably (before the card cryptogram leaves the
card), a successful authentication resets the count, the 10th failure in a row locks the issuer domain for good
(6983) while the holder applets keep working."""

from __future__ import annotations

import hashlib

import pytest

from jpki_remote.card import issuer_domain as isd
from jpki_remote.card import layout
from jpki_remote.card.client import CardClient
from jpki_remote.card.issuer import IssuerLockedError, IssuerSession, SecureChannelError
from jpki_remote.card.report import describe, render
from jpki_remote.card.signing import sha256_digest_info
from jpki_remote.card.virtual import VirtualCard

from .conftest import MASTER_KEY

SELECT_ISD = bytes.fromhex("00A4040C08") + layout.AID_ISSUER
WRONG_KEY = bytes(32)


def initialize_update(card: VirtualCard) -> bytes:
    assert card.transmit(SELECT_ISD)[-2:] == b"\x90\x00"
    return card.transmit(bytes.fromhex("8050000008") + bytes(8) + b"\x00")


def fail_once(card: VirtualCard, how: int) -> None:
    """One failed authentication: a wrong master key (host gives up), or a forged EXTERNAL AUTHENTICATE."""
    if how % 2:
        with pytest.raises(SecureChannelError):
            IssuerSession(card, WRONG_KEY).open()
    else:
        assert initialize_update(card)[-2:] == b"\x90\x00"
        assert card.transmit(bytes.fromhex("8482330010") + bytes(16))[-2:] == b"\x69\x82"


def test_failures_below_the_limit_are_reset_by_a_successful_authentication(made) -> None:
    created, store = made
    card = created.card
    for i in range(isd.ISSUER_AUTH_LIMIT - 1):
        fail_once(card, i)
    assert store.load(created.card_id).issuer_auth_failures == isd.ISSUER_AUTH_LIMIT - 1
    card = store.open(created.card_id)  # also across a restart
    with IssuerSession(card, MASTER_KEY) as issuer:
        issuer.status()
    assert store.load(created.card_id).issuer_auth_failures == 0
    for i in range(isd.ISSUER_AUTH_LIMIT - 1):  # and a fresh run of failures does not lock either
        fail_once(card, i)
    with IssuerSession(card, MASTER_KEY):
        pass


def test_tenth_failure_in_a_row_locks_the_issuer_domain_for_good(made) -> None:
    created, store = made
    card = created.card
    for i in range(isd.ISSUER_AUTH_LIMIT):
        fail_once(card, i)
    assert initialize_update(card)[-2:] == b"\x69\x83"
    with pytest.raises(IssuerLockedError):
        IssuerSession(card, MASTER_KEY).open()  # the right key does not help
    card.reset()
    card = store.open(created.card_id)  # nor a power cycle or a restart
    with pytest.raises(IssuerLockedError):
        IssuerSession(card, MASTER_KEY).open()
    card.transmit(SELECT_ISD)
    assert card.transmit(bytes.fromhex("8482330010") + bytes(16))[-2:] == b"\x69\x83"
    assert card.transmit(bytes.fromhex("84F7000008") + bytes(8))[-2:] == b"\x69\x83"
    assert card.transmit(bytes.fromhex("80F70000"))[-2:] == b"\x69\x83"
    assert store.load(created.card_id).issuer_auth_failures == isd.ISSUER_AUTH_LIMIT
    # the holder's applets keep working
    client = CardClient(card)
    signature = client.sign_with_auth_key("1234", sha256_digest_info(hashlib.sha256(b"still signs").digest()))
    assert len(signature) == 256
    view = describe(store.load(created.card_id))
    assert view.issuer_locked and "LOCKED" in render(view)


def test_the_attempt_is_counted_before_the_cryptogram_leaves_the_card(made) -> None:
    created, store = made
    response = initialize_update(created.card)  # then the card is pulled: no EXTERNAL AUTHENTICATE
    assert response[-2:] == b"\x90\x00" and len(response) == 2 + 29
    assert store.load(created.card_id).issuer_auth_failures == 1

    def failing_write(_state) -> None:
        raise OSError("disk full")

    state = store.load(created.card_id)
    card = VirtualCard(state, persist=failing_write, reload=lambda: store.load(created.card_id))
    assert initialize_update(card) == b"\x65\x81"  # no cryptogram without the count on disk
    assert store.load(created.card_id).issuer_auth_failures == 1


def test_malformed_initialize_update_is_not_counted(made) -> None:
    created, store = made
    card = created.card
    card.transmit(SELECT_ISD)
    for apdu in ("8050000104" + "00" * 4 + "00", "8050000007" + "00" * 7 + "00", "8050770008" + "00" * 8 + "00"):
        assert card.transmit(bytes.fromhex(apdu))[-2:] != b"\x90\x00"
    assert store.load(created.card_id).issuer_auth_failures == 0
    state = store.load(created.card_id)
    assert state.public_summary()["issuer_auth_failures"] == 0


def test_state_files_without_the_counter_still_load(made) -> None:
    import json

    created, store = made
    initialize_update(created.card)
    path = store.path(created.card_id)
    doc = json.loads(path.read_bytes())
    assert doc.pop("issuer_auth_failures") == 1
    path.write_text(json.dumps(doc))  # a file written before the counter existed
    assert store.load(created.card_id).issuer_auth_failures == 0
