"""A blank card as it leaves the chip factory: applets present, issuer SCP03 keys loaded, AP keys generated.

Everything holder-specific (files, PINs, JPKI keys and certificates) is written later by the issuer over secure
messaging (:mod:`jpki_remote.card.issuer`), exactly as on a real card.
"""

from __future__ import annotations

import secrets
from typing import Any

from jpki_remote.card import layout, scp03
from jpki_remote.card.signing import generate_key, private_to_der
from jpki_remote.card.state import LIFECYCLE_BLANK, CardState, PinRecord
from jpki_remote.card.virtual import KeyGenerator

TOKEN_LABEL = "JPKIAPICCTOKEN2"  # noqa: S105 - the PKCS#11 token label, not a secret


def token_info(serial: str) -> bytes:
    """EF 0006 of the JPKI AP: a 160-byte PKCS#11 CK_TOKEN_INFO with 32-bit big-endian ULONGs, space padded."""

    def text(value: str, size: int) -> bytes:
        return value.encode("ascii")[:size].ljust(size, b" ")

    def ulong(value: int) -> bytes:
        return value.to_bytes(4, "big")

    flags = 0x0000_0001 | 0x0000_0004 | 0x0000_0008 | 0x0000_0400  # RNG, LOGIN_REQUIRED, PIN_INIT, TOKEN_INIT
    out = (
        text(TOKEN_LABEL, 32)
        + text("JPKI", 32)
        + text("JPKIAP", 16)
        + text(serial[-16:], 16)
        + ulong(flags)
        + ulong(0)  # max sessions: effectively infinite
        + ulong(0xFFFFFFFF)
        + ulong(0)
        + ulong(0xFFFFFFFF)
        + ulong(16)  # max PIN length
        + ulong(4)  # min PIN length
        + ulong(0xFFFFFFFF) * 4
        + b"03"  # hardware version slot, ASCII as on physical cards
        + b"01"  # firmware version slot
        + b" " * 16  # utcTime
    )
    assert len(out) == 160
    return out


def new_serial() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(15))


def manufacture(
    issuer_master_key: bytes | Any,
    *,
    card_id: str | None = None,
    serial: str | None = None,
    keygen: KeyGenerator | None = None,
    key_version: int = 0x30,
    master_version: int = 0,
) -> CardState:
    """A blank card whose SCP03 keys are diversified from ``issuer_master_key`` (16 or 32 bytes), or derived by an
    issuer key store with ``card_keys(master_version, kdd)`` (e.g. inside the HSM: the master never leaves it)."""
    keygen = keygen or generate_key
    serial = serial or new_serial()
    kdd = secrets.token_bytes(10)
    if isinstance(issuer_master_key, bytes | bytearray):
        scp_keys = scp03.diversify(bytes(issuer_master_key), kdd)
    else:
        scp_keys = issuer_master_key.card_keys(master_version, kdd).as_dict()
    state = CardState(
        card_id=card_id or secrets.token_hex(8),
        serial=serial,
        kdd=kdd,
        scp_keys=scp_keys,
        key_version=key_version,
        lifecycle=LIFECYCLE_BLANK,
    )
    # JPKI AP: token info, empty certificate EFs (filler only), no certificates available yet.
    state.set_file("jpki", layout.JPKI_TOKEN_INFO, token_info(serial))
    state.set_file("jpki", layout.JPKI_CERT_AVAILABILITY, b"\x00\x00\x00")
    for fid in (layout.JPKI_SIGN_CERT, layout.JPKI_SIGN_CA_CERT, layout.JPKI_AUTH_CERT, layout.JPKI_AUTH_CA_CERT):
        state.set_file("jpki", fid, b"")
    # The two AP keys that prove card presence are generated on board at manufacture.
    state.keys["surface"] = {layout.SURFACE_AP_KEY: private_to_der(keygen())}
    state.keys["text"] = {layout.TEXT_AP_KEY: private_to_der(keygen())}
    # Text AP 0012 is blocked on every card examined (63C0 / 6984).
    state.pins["text"] = {layout.TEXT_BLOCKED_0012: PinRecord(secrets.token_bytes(16), 3, 0)}
    return state
