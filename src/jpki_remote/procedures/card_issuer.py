"""Card scripts over issuer secure messaging (server ↔ card; the terminal only relays the protected APDUs).

Each script opens its own SCP03 session with :class:`jpki_remote.card.issuer.IssuerSession`, does one step and
returns. Because scripts are re-run over the transcript (:mod:`.conversation`), the session must be reproducible:
its host challenge is taken from ``conv.random`` (stored per conversation) instead of a fresh random value.
The session keys themselves are never stored; they are re-derived from the card's static keys on each run.

Scripts: ``generate_keys`` (DISCARD any leftovers, then new pending auth/sign key pairs; returns the public keys),
``write_certificates``, ``commit``, ``discard``, ``set_pin`` (RESET RETRY COUNTER + new value of one of the holder's
PINs; the residence PIN is the two key references 住基AP 001C and 共通AP 001C, set together).

``CardMismatchError`` (re-exported from :mod:`jpki_remote.card.issuer`): the card in the reader is another card.
"""

from __future__ import annotations

import re
from typing import Any

from cryptography.hazmat.primitives import serialization

from jpki_remote.card import layout
from jpki_remote.card.issuer import CardMismatchError, IssuerSession
from jpki_remote.procedures.conversation import Conversation

# holder PIN kind (policy names) -> the card's key references (layout.HOLDER_PINS names)
PIN_KINDS: dict[str, tuple[str, ...]] = {
    "sign_password": ("sign",),
    "auth_pin": ("auth",),
    "residence_pin": ("juki", "common"),
    "text_pin": ("text",),
}
_SIGN_PASSWORD = re.compile(r"^[A-Z0-9]{6,16}$")
_FOUR_DIGITS = re.compile(r"^[0-9]{4}$")

__all__ = ["PIN_KINDS", "SCRIPTS", "CardMismatchError", "ReplayableIssuerSession", "commit", "discard",
           "generate_keys", "new_pin_valid", "set_pin", "write_certificates"]


def new_pin_valid(kind: str, value: str) -> bool:
    pattern = _SIGN_PASSWORD if kind == "sign_password" else _FOUR_DIGITS
    return isinstance(value, str) and bool(pattern.fullmatch(value))


class ReplayableIssuerSession(IssuerSession):
    """``IssuerSession`` whose host challenge comes from the conversation's seed (``conv.random``), so a re-run over
    the transcript sends byte-identical commands; ``expected_kdd`` refuses another card (:class:`CardMismatchError`)."""

    def __init__(
        self, conv: Conversation, master_key: bytes, *, key_version: int = 0x00, expected_kdd: bytes | None = None
    ) -> None:
        super().__init__(conv, master_key, key_version=key_version, random=conv.random, expected_kdd=expected_kdd)


def _session(conv: Conversation, params: dict[str, Any]) -> ReplayableIssuerSession:
    return ReplayableIssuerSession(
        conv,
        params["_master_key"],
        key_version=int(params.get("key_version", 0)),
        expected_kdd=bytes.fromhex(params["kdd"]) if params.get("kdd") else None,
    )


def _spki_hex(key: Any) -> str:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex()


def generate_keys(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    with _session(conv, params) as issuer:
        issuer.discard()  # leftovers of an interrupted earlier attempt never mix with this one
        auth = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
        sign = issuer.generate_key("jpki", layout.JPKI_SIGN_KEY) if params["with_sign"] else None
    return {"auth_public_key": _spki_hex(auth), "sign_public_key": _spki_hex(sign) if sign is not None else None}


def write_certificates(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    with _session(conv, params) as issuer:
        if params.get("auth_ca"):  # the CA certificates next to the user certificates (kept current after a rollover)
            issuer.store_file("jpki", layout.JPKI_AUTH_CA_CERT, bytes.fromhex(params["auth_ca"]))
        issuer.put_certificate(layout.JPKI_AUTH_KEY, bytes.fromhex(params["auth_certificate"]))
        if params.get("sign_certificate"):
            if params.get("sign_ca"):
                issuer.store_file("jpki", layout.JPKI_SIGN_CA_CERT, bytes.fromhex(params["sign_ca"]))
            issuer.put_certificate(layout.JPKI_SIGN_KEY, bytes.fromhex(params["sign_certificate"]))
    return {}


def commit(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    with _session(conv, params) as issuer:
        conv.checkpoint("commit_sent")  # from here on the card may have committed
        issuer.commit()
    return {}


def discard(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    with _session(conv, params) as issuer:
        issuer.discard()
    return {}


def set_pin(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    kind = params["pin_kind"]
    value = conv.new_pin(kind)  # asked first, so the holder types it before any card work
    if not new_pin_valid(kind, value):
        return {"new_pin_valid": False}
    with _session(conv, params) as issuer:
        for which in PIN_KINDS[kind]:
            issuer.reset_holder_pin(which, value)
    return {"new_pin_valid": True}


SCRIPTS = {
    "generate_keys": generate_keys,
    "write_certificates": write_certificates,
    "commit": commit,
    "discard": discard,
    "set_pin": set_pin,
}
