"""The in-process transport over the real VirtualCard and its store, and the transport interface itself."""

from __future__ import annotations

import pytest

from jpki_remote.card import layout
from jpki_remote.card.client import CardClient
from jpki_remote.card.factory import CreatedCard
from jpki_remote.card.store import CardStore
from jpki_remote.card.transports import CardTransport, InProcessTransport, TransportClosedError
from jpki_remote.card.transports.base import MAX_APDU_LENGTH, check_apdu

from .cards import AUTH_PIN

SELECT_JPKI = bytes.fromhex("00A4040C0A") + layout.AID_JPKI


def test_round_trip_and_interface(store: CardStore, created: CreatedCard) -> None:
    with InProcessTransport(store.open(created.card_id)) as transport:
        assert isinstance(transport, CardTransport)
        assert transport.atr == bytes.fromhex("3BE000FF8131FE4514")
        assert transport.transmit(SELECT_JPKI) == b"\x90\x00"
        assert CardClient(transport).read_auth_certificate() == created.certificates.auth


def test_state_changes_persist_and_session_state_does_not(store: CardStore, created: CreatedCard) -> None:
    card = store.open(created.card_id)
    with InProcessTransport(card) as transport:
        client = CardClient(transport)
        client.select_ap("jpki")
        assert transport.transmit(bytes.fromhex("0020009804") + b"0000")[-2:] == b"\x63\xc2"
        client.verify(layout.JPKI_SIGN_PIN, "ABC123")
    assert store.load(created.card_id).pin("jpki", layout.JPKI_AUTH_PIN).tries_left == 2  # on disk at once
    # Closing reset the card: the sign password verified above is not verified in the next session.
    with InProcessTransport(card) as transport:
        transport.transmit(SELECT_JPKI)
        assert transport.transmit(bytes.fromhex("00B0810004"))[-2:] == b"\x69\x82"


def test_on_change_sees_every_exchange(store: CardStore, created: CreatedCard) -> None:
    seen: list[tuple[bytes, bytes]] = []
    with InProcessTransport(store.open(created.card_id), on_change=lambda c, r: seen.append((c, r))) as transport:
        transport.transmit(SELECT_JPKI)
        transport.transmit(b"\x00\x20\x00\x98")
    assert seen == [(SELECT_JPKI, b"\x90\x00"), (b"\x00\x20\x00\x98", b"\x63\xc3")]


def test_malformed_apdus_get_status_words_not_exceptions(store: CardStore, created: CreatedCard) -> None:
    with InProcessTransport(store.open(created.card_id)) as transport:
        for junk in (b"\x00", b"\x00\xa4", b"\x00\xa4\x04", b"\xff\xff\xff\xff", b"\x00\xa4\x04\x0c\x05\x01"):
            response = transport.transmit(junk)
            assert len(response) == 2 and response != b"\x90\x00"
        client = CardClient(transport)
        client.select_ap("jpki")
        client.verify(layout.JPKI_AUTH_PIN, AUTH_PIN)  # the card is still fine


def test_what_no_transport_carries() -> None:
    with pytest.raises(ValueError, match="empty"):
        check_apdu(b"")
    with pytest.raises(ValueError, match="at most"):
        check_apdu(bytes(MAX_APDU_LENGTH + 1))
    with pytest.raises(TypeError):
        check_apdu("00A40400")  # type: ignore[arg-type]
    assert check_apdu(bytearray(b"\x00\xa4\x04\x0c")) == b"\x00\xa4\x04\x0c"


def test_closed_transport(store: CardStore, created: CreatedCard) -> None:
    transport = InProcessTransport(store.open(created.card_id))
    transport.close()
    transport.close()  # idempotent
    with pytest.raises(TransportClosedError):
        transport.transmit(SELECT_JPKI)
    with pytest.raises(TransportClosedError):
        _ = transport.atr
