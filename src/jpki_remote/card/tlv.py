"""Minimal BER-TLV encoding and decoding, as the card's data files use it (tags up to 2 bytes, definite lengths)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    return b"\x83" + n.to_bytes(3, "big")


def encode_tag(tag: int) -> bytes:
    if tag <= 0xFF:
        return bytes((tag,))
    if tag <= 0xFFFF:
        return tag.to_bytes(2, "big")
    return tag.to_bytes(3, "big")


def tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV object."""
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes
    raw: bytes  # the whole object as written (header + value)
    offset: int  # where it starts in the parsed buffer


class TlvError(ValueError):
    """Malformed BER-TLV."""


def parse_header(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    """Return (tag, value length, header length) of the object at ``pos``."""
    start = pos
    if pos >= len(buf):
        raise TlvError("no tag")
    tag = buf[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # multi-byte tag
        while True:
            if pos >= len(buf):
                raise TlvError("truncated tag")
            b = buf[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
            if pos - start > 3:
                raise TlvError("tag too long")
    if pos >= len(buf):
        raise TlvError("no length")
    first = buf[pos]
    pos += 1
    if first < 0x80:
        length = first
    elif first == 0x80 or first > 0x83:
        raise TlvError("unsupported length form")
    else:
        n = first & 0x7F
        if pos + n > len(buf):
            raise TlvError("truncated length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    return tag, length, pos - start


def parse_one(buf: bytes, pos: int = 0) -> Tlv:
    tag, length, header = parse_header(buf, pos)
    end = pos + header + length
    if end > len(buf):
        raise TlvError(f"object {tag:X} runs past the end")
    return Tlv(tag, bytes(buf[pos + header : end]), bytes(buf[pos:end]), pos)


def iterate(buf: bytes, pos: int = 0, end: int | None = None, *, stop_at_filler: bool = True) -> Iterator[Tlv]:
    """Objects one after the other from ``pos``; stops at filler (00/FF) when ``stop_at_filler``."""
    end = len(buf) if end is None else end
    while pos < end:
        if stop_at_filler and buf[pos] in (0x00, 0xFF):
            return
        obj = parse_one(buf[:end], pos)
        yield obj
        pos += len(obj.raw)


def total_length(buf: bytes) -> int:
    """Length of the first object (header + value): how much of a file with filler is real data."""
    _tag, length, header = parse_header(buf)
    return header + length
