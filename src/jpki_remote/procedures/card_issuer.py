"""Card scripts over issuer secure messaging (server ↔ card; the terminal only relays the protected APDUs).

Each script opens its own SCP03 session with :class:`jpki_remote.card.issuer.IssuerSession`, does one step and
returns. Because scripts are re-run over the transcript (:mod:`.conversation`), the session must be reproducible:
its host challenge is taken from ``conv.random`` (stored per conversation) instead of a fresh random value.
The session keys themselves are never stored; they are re-derived from the card's static keys on each run.

Scripts: ``generate_keys`` (DISCARD any leftovers, then new pending auth/sign key pairs; returns the public keys),
``write_certificates``, ``commit``, ``discard``, ``set_pin`` (RESET RETRY COUNTER + new value of one of the holder's
PINs; the residence PIN is the two key references 住基AP 001C and 共通AP 001C, set together).
"""

from __future__ import annotations

import hmac
import re
from typing import Any, Self

from cryptography.hazmat.primitives import serialization

from jpki_remote.card import issuer_domain as isd
from jpki_remote.card import layout, scp03
from jpki_remote.card.apdu import CommandApdu
from jpki_remote.card.client import raise_for_sw, send
from jpki_remote.card.issuer import IssuerSession, SecureChannelError
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


def new_pin_valid(kind: str, value: str) -> bool:
    pattern = _SIGN_PASSWORD if kind == "sign_password" else _FOUR_DIGITS
    return isinstance(value, str) and bool(pattern.fullmatch(value))


class CardMismatchError(Exception):
    """The card in the reader is not the card of the procedure (its KDD is another card's)."""


class ReplayableIssuerSession(IssuerSession):
    """``IssuerSession`` whose host challenge comes from the conversation's seed.

    BRIDGE: ``IssuerSession.open`` draws the host challenge from ``secrets`` and has no parameter for it; this
    override repeats its handshake with an injected challenge. Remove once the card package accepts one.
    """

    def __init__(
        self, conv: Conversation, master_key: bytes, *, key_version: int = 0x00, expected_kdd: bytes | None = None
    ) -> None:
        super().__init__(conv, master_key, key_version=key_version)
        self._conv = conv
        self._expected_kdd = expected_kdd

    def open(self) -> Self:
        transmit = self._conv.transmit
        raise_for_sw(send(transmit, CommandApdu(0x00, 0xA4, 0x04, 0x0C, layout.AID_ISSUER)), "SELECT ISD")
        host_challenge = self._conv.random(8)
        resp = raise_for_sw(
            send(transmit, CommandApdu(0x80, isd.INS_INITIALIZE_UPDATE, self._key_version, 0x00, host_challenge, 256)),
            "INITIALIZE UPDATE",
        )
        body = resp.data
        if len(body) not in (29, 32) or body[11] != isd.SCP_ID:
            raise SecureChannelError(0, "not an SCP03 INITIALIZE UPDATE response")
        self.kdd = body[:10]
        if self._expected_kdd is not None and not hmac.compare_digest(self.kdd, self._expected_kdd):
            raise CardMismatchError("another card is in the reader")
        card_challenge, card_cryptogram = body[13:21], body[21:29]
        keys = scp03.session_keys(scp03.diversify(self._master, self.kdd), host_challenge, card_challenge)
        expected = scp03.cryptogram(keys, scp03.CARD_CRYPTOGRAM, host_challenge, card_challenge)
        if not hmac.compare_digest(card_cryptogram, expected):
            raise SecureChannelError(0, "card cryptogram wrong: not our card or wrong master key")
        channel = scp03.SecureChannel(keys, self._level)
        host_cryptogram = scp03.cryptogram(keys, scp03.HOST_CRYPTOGRAM, host_challenge, card_challenge)
        ext = channel.wrap(
            CommandApdu(0x80, isd.INS_EXTERNAL_AUTHENTICATE, self._level, 0x00, host_cryptogram), first=True
        )
        raise_for_sw(send(transmit, ext), "EXTERNAL AUTHENTICATE")
        self._channel = channel
        return self


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
