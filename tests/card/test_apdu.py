"""APDU codec: ISO 7816-3 cases 1–4, short and extended; malformed input gives 6700, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jpki_remote.card.apdu import SW, ApduError, CommandApdu, ResponseApdu, parse_command


@pytest.mark.parametrize(
    ("raw", "data", "ne", "extended"),
    [
        ("00A40000", b"", None, False),
        ("00B0000004", b"", 4, False),
        ("00B0000000", b"", 256, False),
        ("00A4040C02AABB", b"\xaa\xbb", None, False),
        ("802A00800201020000"[:-2], b"\x01\x02", 0x100 & 0xFF or 256, False),
        ("00B00000000100", b"", 256, True),
        ("00B00000000000", b"", 65536, True),
        ("00DA0000000002AABB", b"\xaa\xbb", None, True),
        ("00DA0000000002AABB0000", b"\xaa\xbb", 65536, True),
    ],
)
def test_parse_cases(raw: str, data: bytes, ne: int | None, extended: bool) -> None:
    cmd = parse_command(bytes.fromhex(raw))
    assert isinstance(cmd, CommandApdu)
    assert (cmd.data, cmd.ne, cmd.extended) == (data, ne, extended)
    assert cmd.to_bytes() == bytes.fromhex(raw)


@pytest.mark.parametrize("raw", ["", "00", "00A4", "00A404", "00A4040C05AABB", "00A4040C02AABBCCDD", "00B000000001",
                                 "00DA0000000003AABB"])
def test_malformed_is_wrong_length(raw: str) -> None:
    result = parse_command(bytes.fromhex(raw))
    assert isinstance(result, ApduError)
    assert result.sw == SW.WRONG_LENGTH


@given(st.binary(max_size=300))
def test_parser_never_raises(raw: bytes) -> None:
    result = parse_command(raw)
    assert isinstance(result, CommandApdu | ApduError)


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=700), st.one_of(st.none(), st.integers(1, 65536)))
def test_roundtrip(ins: int, p1: int, data: bytes, ne: int | None) -> None:
    cmd = CommandApdu(0x00, ins, p1, 0x00, data, ne)
    parsed = parse_command(cmd.to_bytes())
    assert isinstance(parsed, CommandApdu)
    assert (parsed.data, parsed.ne) == (data, ne)


def test_response() -> None:
    resp = ResponseApdu.from_bytes(b"\x01\x02\x63\xc2")
    assert (resp.data, resp.sw, resp.sw1, resp.sw2, resp.ok) == (b"\x01\x02", 0x63C2, 0x63, 0xC2, False)
    with pytest.raises(ValueError, match="at least 2"):
        ResponseApdu.from_bytes(b"\x90")
