"""What a status word (SW1 SW2) means, in words, for diagnostics (``jpki-remote card apdu``, terminal logs)."""

from __future__ import annotations

_EXACT = {
    0x9000: "OK",
    0x6300: "verification failed (key without a retry limit)",
    0x6581: "memory failure (the card could not write its state)",
    0x6700: "wrong length (Lc or Le)",
    0x6881: "logical channel not supported",
    0x6882: "secure messaging not supported",
    0x6883: "last command of a chain expected",
    0x6884: "command chaining not supported",
    0x6981: "command incompatible with the file structure",
    0x6982: "security status not satisfied (PIN or secure-messaging session needed)",
    0x6983: "authentication method blocked",
    0x6984: "reference data blocked (PIN locked)",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6987: "secure-messaging data objects missing",
    0x6988: "secure-messaging data objects incorrect (bad MAC)",
    0x6A80: "incorrect data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A84: "not enough memory",
    0x6A86: "incorrect P1/P2",
    0x6A88: "referenced data not found",
    0x6B00: "wrong P1/P2 (offset beyond the end of the file)",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis (internal error)",
}


def describe_sw(sw: int) -> str:
    """``describe_sw(0x63C2)`` → ``"wrong PIN, 2 tries left"``."""
    sw1, sw2 = (sw >> 8) & 0xFF, sw & 0xFF
    if sw in _EXACT:
        return _EXACT[sw]
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        left = sw2 & 0x0F
        if left == 0:
            return "wrong PIN, no tries left (PIN now blocked)"
        return f"{left} {'try' if left == 1 else 'tries'} left (wrong PIN, or the answer to a retry-count query)"
    if sw1 == 0x61:
        return f"OK, {sw2 or 256} more bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le: the exact length is {sw2 or 256}"
    if sw1 == 0x62:
        return "warning: state of non-volatile memory unchanged"
    if sw1 == 0x64:
        return "error: state of non-volatile memory unchanged"
    if sw1 == 0x65:
        return "error: state of non-volatile memory changed"
    if sw1 == 0x69:
        return "command not allowed"
    if sw1 == 0x6A:
        return "wrong parameters"
    return "unknown status word"
