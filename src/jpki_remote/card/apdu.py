"""ISO/IEC 7816-4 command and response APDUs: parsing (cases 1–4, short and extended length) and encoding.

The parser never raises on card-side input: :func:`parse_command` returns either a :class:`CommandApdu` or the status
word the card answers to a malformed command (:class:`ApduError`). Status words are named in :class:`SW`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

SHORT_MAX_NC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_NC = 65535
EXTENDED_MAX_NE = 65536


class SW(IntEnum):
    """Status words as the My Number Card uses them (JICSAP / ISO 7816-4)."""

    OK = 0x9000
    WARNING_NO_RETRY_LIMIT = 0x6300  # VERIFY on a key with no retry counter
    WRONG_PIN_BASE = 0x63C0  # 63Cx: wrong PIN, x tries left (63C0: the exhausting attempt / blocked)
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    COMMAND_INCOMPATIBLE_WITH_FILE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTHENTICATION_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_BLOCKED = 0x6984  # "referenced IEF blocked": every VERIFY of a blocked key
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED_NO_EF = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2_OFFSET = 0x6B00  # offset beyond the end of the EF
    WRONG_LE = 0x6C00  # 6Cxx: wrong Le, xx is the exact length (00 = 256)
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    @staticmethod
    def wrong_pin(tries_left: int) -> int:
        """63Cx for ``tries_left`` remaining tries (capped at 15)."""
        return 0x63C0 | max(0, min(tries_left, 15))


def sw_bytes(sw: int) -> bytes:
    return bytes(((sw >> 8) & 0xFF, sw & 0xFF))


class ApduError(Exception):
    """A command the card refuses: carries the status word to answer. Raised only inside the card and caught there."""

    def __init__(self, sw: int, message: str = "") -> None:
        super().__init__(message or f"SW {sw:04X}")
        self.sw = int(sw)


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU. ``ne`` is the maximum response length expected (``None``: no Le field, i.e. Ne = 0)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None
    extended: bool = False

    @property
    def p1p2(self) -> int:
        return (self.p1 << 8) | self.p2

    @property
    def case(self) -> int:
        """ISO 7816-3 case: 1 (no data, no Le), 2 (Le), 3 (data), 4 (data and Le)."""
        return (3 if self.data else 1) + (1 if self.ne is not None else 0)

    def to_bytes(self) -> bytes:
        """Encode; chooses extended length when data > 255 bytes or Ne > 256 (or ``extended`` is set)."""
        for name, value in (("CLA", self.cla), ("INS", self.ins), ("P1", self.p1), ("P2", self.p2)):
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} out of range: {value}")
        nc = len(self.data)
        if nc > EXTENDED_MAX_NC:
            raise ValueError(f"command data too long: {nc} bytes")
        if self.ne is not None and not 1 <= self.ne <= EXTENDED_MAX_NE:
            raise ValueError(f"Ne out of range: {self.ne}")
        extended = self.extended or nc > SHORT_MAX_NC or (self.ne is not None and self.ne > SHORT_MAX_NE)
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        if not extended:
            if nc:
                out.append(nc)
                out += self.data
            if self.ne is not None:
                out.append(self.ne & 0xFF)  # 256 -> 00
            return bytes(out)
        if nc:
            out += b"\x00" + nc.to_bytes(2, "big")
            out += self.data
        if self.ne is not None:
            le = (self.ne & 0xFFFF).to_bytes(2, "big")  # 65536 -> 0000
            out += le if nc else b"\x00" + le
        return bytes(out)

    def with_data(self, data: bytes) -> CommandApdu:
        return CommandApdu(self.cla, self.ins, self.p1, self.p2, data, self.ne, self.extended)


def parse_command(raw: bytes) -> CommandApdu | ApduError:
    """Decode a command APDU (ISO 7816-3 §12.1.3 cases). Malformed input yields ``ApduError(6700)``, never raises."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return ApduError(SW.WRONG_LENGTH, "not bytes")
    raw = bytes(raw)
    if len(raw) < 4:
        return ApduError(SW.WRONG_LENGTH, "fewer than 4 header bytes")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    body = raw[4:]
    n = len(body)
    if n == 0:  # case 1
        return CommandApdu(cla, ins, p1, p2)
    if n == 1:  # case 2 short
        return CommandApdu(cla, ins, p1, p2, b"", body[0] or SHORT_MAX_NE)
    if body[0] != 0:  # short Lc
        nc = body[0]
        if n == 1 + nc:  # case 3 short
            return CommandApdu(cla, ins, p1, p2, body[1:])
        if n == 2 + nc:  # case 4 short
            return CommandApdu(cla, ins, p1, p2, body[1 : 1 + nc], body[-1] or SHORT_MAX_NE)
        return ApduError(SW.WRONG_LENGTH, "Lc does not match the data length")
    # body[0] == 0 and n >= 2: extended length
    if n == 3:  # case 2 extended: 00 Le1 Le2
        le = int.from_bytes(body[1:3], "big")
        return CommandApdu(cla, ins, p1, p2, b"", le or EXTENDED_MAX_NE, extended=True)
    if n < 3:
        return ApduError(SW.WRONG_LENGTH, "truncated extended length")
    nc = int.from_bytes(body[1:3], "big")
    if nc == 0:
        return ApduError(SW.WRONG_LENGTH, "extended Lc of zero")
    if n == 3 + nc:  # case 3 extended
        return CommandApdu(cla, ins, p1, p2, body[3:], extended=True)
    if n == 5 + nc:  # case 4 extended
        le = int.from_bytes(body[-2:], "big")
        return CommandApdu(cla, ins, p1, p2, body[3 : 3 + nc], le or EXTENDED_MAX_NE, extended=True)
    return ApduError(SW.WRONG_LENGTH, "extended Lc does not match the data length")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: data followed by SW1 SW2."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return (self.sw >> 8) & 0xFF

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def to_bytes(self) -> bytes:
        return bytes(self.data) + sw_bytes(self.sw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseApdu:
        """Decode a response; raises ``ValueError`` when it has fewer than the two status bytes."""
        if len(raw) < 2:
            raise ValueError(f"a response APDU has at least 2 bytes, got {len(raw)}")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    @classmethod
    def error(cls, sw: int) -> ResponseApdu:
        return cls(b"", int(sw))
