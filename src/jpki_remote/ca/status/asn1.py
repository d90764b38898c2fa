"""DER encoding and decoding helpers for CRLs and OCSP beyond :mod:`jpki_remote.ca.der`.

The reader is deliberately strict and small: it accepts definite-length, low-tag-number DER only, checks that every
TLV fits in its parent, and raises :class:`DerError` for anything else. It parses untrusted OCSP requests, so it never
recurses and never allocates more than slices of its input.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jpki_remote.ca.der import tlv

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_UTC_TIME = 0x17
TAG_GENERALIZED_TIME = 0x18
TAG_SEQUENCE = 0x30


class DerError(ValueError):
    """The bytes are not the DER this module expects; the message says where."""


# --- encoding ----------------------------------------------------------------------------------------------------


def octet_string(value: bytes) -> bytes:
    return tlv(TAG_OCTET_STRING, value)


def enumerated(value: int) -> bytes:
    if not 0 <= value < 0x80:
        raise ValueError("ENUMERATED values used here fit one octet")
    return bytes((TAG_ENUMERATED, 1, value))


def explicit(number: int, value: bytes) -> bytes:
    """``[number] EXPLICIT`` (context-specific, constructed)."""
    return tlv(0xA0 | number, value)


def oid(dotted: str) -> bytes:
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(TAG_OID, bytes(body))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # the store keeps UTC; SQLite hands it back naive
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def generalized_time(moment: datetime) -> bytes:
    return tlv(TAG_GENERALIZED_TIME, _utc(moment).strftime("%Y%m%d%H%M%SZ").encode())


def x509_time(moment: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    moment = _utc(moment)
    if moment.year < 2050:
        return tlv(TAG_UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(TAG_GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode())


def extension(oid_der: bytes, value_der: bytes, *, critical: bool = False) -> bytes:
    """``Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }``."""
    flag = b"\x01\x01\xff" if critical else b""
    return tlv(0x30, oid_der + flag + octet_string(value_der))


# --- decoding ----------------------------------------------------------------------------------------------------


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one TLV in ``buf[pos:end]``: returns ``(tag, value_start, value_end)``."""
    if pos + 2 > end:
        raise DerError(f"truncated TLV at offset {pos}")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"high tag numbers are not used here (offset {pos})")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0:
            raise DerError(f"indefinite length is not DER (offset {pos - 1})")
        if count > 4 or pos + count > end:
            raise DerError(f"length field too large at offset {pos - 1}")
        size = int.from_bytes(buf[pos : pos + count], "big")
        if size < 0x80 or buf[pos] == 0:
            raise DerError(f"non-minimal length at offset {pos - 1}")
        pos += count
    if pos + size > end:
        raise DerError(f"TLV at offset {pos} runs past its container")
    return tag, pos, pos + size


def expect(buf: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """Read a TLV that must carry ``tag``; returns ``(value_start, value_end)``."""
    got, start, stop = read_tlv(buf, pos, end)
    if got != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{got:02x} at offset {pos}")
    return start, stop


def children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """All TLVs directly inside ``buf[start:end]`` as ``(tag, tlv_start, value_start, value_end)``."""
    out = []
    pos = start
    while pos < end:
        tag, vstart, vend = read_tlv(buf, pos, end)
        out.append((tag, pos, vstart, vend))
        pos = vend
    return out


def decode_integer(value: bytes) -> int:
    if not value:
        raise DerError("empty INTEGER")
    if len(value) > 1 and ((value[0] == 0 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80)):
        raise DerError("non-minimal INTEGER")
    return int.from_bytes(value, "big", signed=True)


def decode_oid(value: bytes) -> str:
    if not value or value[-1] & 0x80:
        raise DerError("bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    acc = 0
    for octet in value:
        if acc == 0 and octet == 0x80:
            raise DerError("non-minimal OBJECT IDENTIFIER arc")
        acc = (acc << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(acc)
            acc = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])
