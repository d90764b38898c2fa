"""Certificate serial numbers: 127-bit positive random integers from :mod:`secrets`.

The top bit of 127 is always set, so every serial is exactly 16 DER bytes with 126 random bits — far above the
64 bits of entropy that CA/Browser Forum practice asks for, and positive as RFC 5280 §4.1.2.2 requires.
"""

from __future__ import annotations

import secrets

SERIAL_BITS = 127


def new_serial() -> int:
    return secrets.randbits(SERIAL_BITS - 1) | (1 << (SERIAL_BITS - 1))


def serial_hex(serial: int) -> str:
    """The database form: lower-case hex without leading zeros (see :mod:`jpki_remote.ca.models`)."""
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """Accept ``0x…``, plain hex (as openssl prints it, colons allowed) or decimal with a ``d:`` prefix."""
    value = text.strip().lower().replace(":", "")
    if value.startswith("d:"):
        return int(value[2:], 10)
    if value.startswith("0x"):
        value = value[2:]
    try:
        serial = int(value, 16)
    except ValueError as exc:
        raise ValueError(f"not a serial number: {text!r}") from exc
    if serial <= 0:
        raise ValueError("serial numbers are positive")
    return serial
