"""Status-word rules of the public commands, byte for byte."""

from __future__ import annotations

import pytest

from jpki_remote.card import layout

SELECT_JPKI = bytes.fromhex("00A4040C0A") + layout.AID_JPKI


def ef(fid: int) -> bytes:
    return bytes.fromhex("00A4020C02") + fid.to_bytes(2, "big")


def sw(resp: bytes) -> str:
    return resp[-2:].hex().upper()


@pytest.fixture
def card(made):
    return made[0].card


@pytest.mark.parametrize(
    ("setup", "apdu", "expected"),
    [
        ([], "00A40000", "6A86"),  # select MF at MF level
        ([SELECT_JPKI], "00A40000", "9000"),  # no-op inside an AP
        ([SELECT_JPKI], "00A400000 23F00".replace(" ", ""), "6A82"),
        ([], "00A4040C0AD392F000260100000002", "6A82"),  # unknown AID
        ([], "00A4040002D392", "6A86"),  # P2 must be 0C
        ([], "00A4090C020001", "6A86"),  # P1=09 fails on this card
        ([SELECT_JPKI], "00A4020C03000A00", "6700"),
        ([SELECT_JPKI], "00A4020C020099", "6A82"),
        ([], "00A4020C02000A", "6A82"),  # EF with no AP selected
        ([SELECT_JPKI], "00B0000004", "6986"),  # no current EF
        ([SELECT_JPKI, ef(0x0006)], "00B0000000", "9000"),
        ([SELECT_JPKI, ef(0x0006)], "00B000A001", "6B00"),  # offset 160 = end of file
        ([SELECT_JPKI, ef(0x0006)], "00B07FFF01", "6B00"),
        ([SELECT_JPKI, ef(0x0006)], "00B00000", "6700"),  # no Le
        ([SELECT_JPKI], "00B0A00000", "6A86"),  # SFI form with b7-b6 set
        ([SELECT_JPKI], "00B0860004", "9000"),  # SFI 06
        ([SELECT_JPKI], "00B0810004", "6982"),  # SFI 01: sign cert needs the sign password
        ([SELECT_JPKI, ef(0x0017)], "00B0000004", "6981"),  # key EF is not readable
        ([SELECT_JPKI, ef(0x0018)], "00B0000004", "6981"),
        ([], "00FF000000", "6D00"),
        ([], "A0A4040C00", "6E00"),
        ([], "0CB0000004", "6882"),
        ([], "01B0000004", "6881"),
        ([], "802A0080", "6A88"),
        ([SELECT_JPKI], "00200180", "6A86"),  # VERIFY P1 must be 00
        ([SELECT_JPKI], "00200099", "6A88"),  # 0019 is not a PIN
        ([SELECT_JPKI], "00200080", "6A88"),  # no key selected
        ([SELECT_JPKI], "802A0698020102", "6A86"),  # signature scheme 06 does not exist
        ([SELECT_JPKI], "802A0097020102" + "00", "6982"),  # auth key needs the auth PIN
        ([SELECT_JPKI, ef(0x0018)], "0024018004" + "31323334", "6982"),  # change without VERIFY
        ([SELECT_JPKI], "8032008004" + "31323334", "6D00"),  # JPKI uses 00 24
        ([SELECT_JPKI], "00C0000010", "6985"),  # GET RESPONSE with nothing pending
        ([], "00", "6700"),
        ([], "00A4040C", "6700"),
    ],
)
def test_status_word(card, setup: list[bytes], apdu: str, expected: str) -> None:
    for command in setup:
        assert sw(card.transmit(command)) == "9000"
    assert sw(card.transmit(bytes.fromhex(apdu))) == expected


def test_read_returns_to_end_of_file_within_le(card) -> None:
    card.transmit(SELECT_JPKI)
    card.transmit(ef(layout.JPKI_TOKEN_INFO))
    resp = card.transmit(bytes.fromhex("00B0009000"))  # offset 144, Le 256 -> 16 bytes
    assert sw(resp) == "9000" and len(resp) == 16 + 2
    whole = card.transmit(bytes.fromhex("00B0000000"))[:-2]
    assert len(whole) == 160 and whole[:32] == b"JPKIAPICCTOKEN2".ljust(32, b" ")


def test_certificate_availability(card) -> None:
    card.transmit(SELECT_JPKI)
    assert card.transmit(bytes.fromhex("00B0880000")) == b"\x8f\x8f\x00\x90\x00"


def test_common_ap_card_info_record(made) -> None:
    created, _ = made
    card = created.card
    assert sw(card.transmit(bytes.fromhex("00A4040C0A") + layout.AID_COMMON)) == "9000"
    assert sw(card.transmit(ef(layout.COMMON_CARD_INFO))) == "9000"
    record = card.transmit(bytes.fromhex("00B2010400"))[:-2]
    assert record == b"\x01\x1c" + created.serial.encode() + b"13101" + b"20350217"
    assert sw(card.transmit(bytes.fromhex("00B2020400"))) == "6A83"
    assert sw(card.transmit(bytes.fromhex("00B0000000"))) == "6981"
