"""Our PC/SC client (pyscard) through the real OS stack: a private pcscd with vsmartcard's vpcd driver, our card
served to it by the vpcd card server. Reader selection, typed errors for no reader / no card / card pulled, pcscd
restarts, and power cycles."""

from __future__ import annotations

import pytest

from jpki_remote.card.transports import (
    CardRemovedError,
    CardTransport,
    NoCardError,
    NoReaderError,
    TransportClosedError,
    TransportError,
)
from jpki_remote.card.transports.pcsc import PcscTransport, ReaderInfo, list_readers, select_reader

from .doubles import ATR, RecordingCard
from .pcsc_stack import InsertCard, PcscStack

pytestmark = pytest.mark.pcsc


def test_lists_both_vpcd_slots_empty(pcsc_stack: PcscStack) -> None:
    readers = list_readers()
    assert [r.name for r in readers] == pcsc_stack.reader_names
    assert not any(r.card_present for r in readers)


def test_round_trip_through_pcscd(pcsc_stack: PcscStack, insert_card: InsertCard) -> None:
    card = RecordingCard()
    with insert_card(card), PcscTransport("virtual pcd") as transport:
        assert isinstance(transport, CardTransport)
        assert transport.atr == ATR
        assert transport.reader == pcsc_stack.reader_names[0]
        command = bytes.fromhex("00A4040C0AD392F000260100000001")
        assert transport.transmit(command) == command[::-1] + b"\x90\x00"
        long_command = b"\x80\x2a\x00\x80\xff" + bytes(range(255)) + b"\x00"
        assert transport.transmit(long_command) == long_command[::-1] + b"\x90\x00"
        assert card.commands == [command, long_command]


def test_without_a_name_the_reader_with_the_card_is_chosen(insert_card: InsertCard) -> None:
    with insert_card(RecordingCard()), PcscTransport() as transport:
        assert transport.reader.endswith("00 00")


def test_unknown_reader_name(pcsc_stack: PcscStack) -> None:
    with pytest.raises(NoReaderError, match="no PC/SC reader name contains 'SONY'"):
        PcscTransport("SONY")


def test_empty_reader(pcsc_stack: PcscStack) -> None:
    with pytest.raises(NoCardError):
        PcscTransport("Virtual PCD 00 01")
    with pytest.raises(NoCardError, match="no card in any PC/SC reader"):
        PcscTransport()


def test_card_pulled_mid_session_is_a_typed_error(pcsc_stack: PcscStack, insert_card: InsertCard) -> None:
    with insert_card(RecordingCard()) as server:
        transport = PcscTransport("Virtual PCD 00 00")
        assert transport.transmit(b"\x00\xb0\x00\x00\x00").endswith(b"\x90\x00")
        server.stop()  # the card leaves the reader
        assert pcsc_stack.wait_card(False)
        with pytest.raises(CardRemovedError, match="removed"):
            transport.transmit(b"\x00\xb0\x00\x00\x00")
        transport.close()
        with pytest.raises(TransportClosedError):
            transport.transmit(b"\x00\xb0\x00\x00\x00")


def test_closing_resets_the_card_so_no_security_state_survives(insert_card: InsertCard) -> None:
    card = RecordingCard()
    with insert_card(card):
        before = card.resets
        with PcscTransport("Virtual PCD 00 00") as transport:
            transport.transmit(b"\x00\x20\x00\x80")
        assert card.resets == before + 1
        with PcscTransport("Virtual PCD 00 00", on_close="leave") as transport:
            transport.transmit(b"\x00\x20\x00\x80")
        assert card.resets == before + 1


def test_exclusive_session_keeps_others_out(insert_card: InsertCard) -> None:
    with insert_card(RecordingCard()), PcscTransport("Virtual PCD 00 00", exclusive=True) as transport:
        with pytest.raises(TransportError, match="exclusive use by another program"):
            PcscTransport("Virtual PCD 00 00")
        assert transport.transmit(b"\x00\xb0\x00\x00\x00").endswith(b"\x90\x00")


@pytest.mark.slow
def test_card_server_survives_a_pcscd_restart(pcsc_stack: PcscStack, insert_card: InsertCard) -> None:
    card = RecordingCard()
    with insert_card(card) as server:
        transport = PcscTransport("Virtual PCD 00 00")
        pcsc_stack.restart()
        with pytest.raises(CardRemovedError):
            transport.transmit(b"\x00\xb0\x00\x00\x00")
        transport.close()
        assert pcsc_stack.wait_card(True), "the card did not come back after pcscd restarted"
        assert server.connections >= 2
        with PcscTransport("Virtual PCD 00 00") as again:
            assert again.transmit(b"\x00\xb0\x00\x00\x01") == b"\x01\x00\x00\xb0\x00\x90\x00"


def test_select_reader_rules() -> None:
    readers = [ReaderInfo("ACS ACR39U 00 00", False, b""), ReaderInfo("SONY FeliCa RC-S380 01 00", True, ATR)]
    assert select_reader(readers, "felica").name.startswith("SONY")
    assert select_reader(readers, None).name.startswith("SONY")
    assert select_reader(readers, "acs").name.startswith("ACS")  # named explicitly: chosen even if empty
    with pytest.raises(NoReaderError):
        select_reader([], None)
    with pytest.raises(ValueError, match="on_close"):
        PcscTransport(on_close="eject")
