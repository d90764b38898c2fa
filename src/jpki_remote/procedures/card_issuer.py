"""Card scripts over issuer secure messaging (server ↔ card; the terminal only relays the protected APDUs).

Each script opens its own SCP03 session with :class:`jpki_remote.card.issuer.IssuerSession`, does one step and
returns. Because scripts are re-run over the transcript (:mod:`.conversation`), the session must be reproducible:
its host challenge is taken from ``conv.random`` (stored per conversation) instead of a fresh random value.
The session keys themselves are never stored; they are re-derived from the card's static keys on each run.

Scripts: ``generate_keys`` (DISCARD any leftovers, then new pending auth/sign key pairs; returns the public keys),
``write_certificates``, ``commit``, ``discard``, ``set_pin`` (RESET RETRY COUNTER + new value of one of the holder's
PINs; the residence PIN is the two key references 住基AP 001C and 共通AP 001C, set together).

``CardMismatchError`` (re-exported from :mod:`jpki_remote.card.issuer`): the card in the reader is another card.

Outcome unknown (security finding S-4): the terminal relays every answer, so an answer that does not authenticate
(no R-MAC: a bare "6A80", a "6982", garbage, nothing) says nothing about what the card did. After such an answer to
a state-changing command (SET PIN, COMMIT) the script opens a new session and reads the card's state with an
authenticated command — the PIN's reset count in GET STATUS, the active key after COMMIT — and reports that truth:
done (the script carries on as if the answer had been 9000), or not done (SET PIN is sent once more in the new
session). A failure is only ever reported when it is authenticated; when the truth cannot be read either (the
terminal keeps breaking the channel) the script raises :class:`OutcomeUnknownError`, never a plain failure.

Issuer keys: ``params`` carry one of ``_card_keys`` (:class:`~jpki_remote.card.scp03.CardStaticKeys` for the
registered card — the production path, the master key stays in the HSM), ``_issuer_keys`` (an object with
``card_keys(version, kdd)``, e.g. :class:`jpki_remote.issuer_keys.Pkcs11IssuerKeys`) or ``_master_key`` (bytes;
development). See :func:`issuer_key_material`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization

from jpki_remote.card import layout
from jpki_remote.card.client import CardError
from jpki_remote.card.issuer import (
    CardMismatchError,
    IssuerKeyMaterial,
    IssuerSession,
    OutcomeUnknownError,
    SecureChannelError,
)
from jpki_remote.procedures.conversation import Conversation

# holder PIN kind (policy names) -> the card's key references (layout.HOLDER_PINS names)
PIN_KINDS: dict[str, tuple[str, ...]] = {
    "sign_password": ("sign",),
    "auth_pin": ("auth",),
    "residence_pin": ("juki", "common"),
    "text_pin": ("text",),
}
T = TypeVar("T")
RECOVERY_ATTEMPTS = 2  # sessions re-opened after unauthenticated answers to one state-changing command
_SIGN_PASSWORD = re.compile(r"^[A-Z0-9]{6,16}$")
_FOUR_DIGITS = re.compile(r"^[0-9]{4}$")

__all__ = [
    "PIN_KINDS",
    "SCRIPTS",
    "CardMismatchError",
    "OutcomeUnknownError",
    "ReplayableIssuerSession",
    "commit",
    "discard",
    "generate_keys",
    "issuer_key_material",
    "new_pin_valid",
    "set_pin",
    "write_certificates",
]


def new_pin_valid(kind: str, value: str) -> bool:
    pattern = _SIGN_PASSWORD if kind == "sign_password" else _FOUR_DIGITS
    return isinstance(value, str) and bool(pattern.fullmatch(value))


class ReplayableIssuerSession(IssuerSession):
    """``IssuerSession`` whose host challenge comes from the conversation's seed (``conv.random``), so a re-run over
    the transcript sends byte-identical commands; ``expected_kdd`` refuses another card (:class:`CardMismatchError`)."""

    def __init__(
        self,
        conv: Conversation,
        master_key: IssuerKeyMaterial,
        *,
        key_version: int = 0x00,
        expected_kdd: bytes | None = None,
    ) -> None:
        super().__init__(conv, master_key, key_version=key_version, random=conv.random, expected_kdd=expected_kdd)


def issuer_key_material(params: dict[str, Any]) -> IssuerKeyMaterial:
    """The issuer keys a script was given: ``_card_keys``, ``_issuer_keys`` or ``_master_key`` (in that order)."""
    for name in ("_card_keys", "_issuer_keys", "_master_key"):
        if params.get(name) is not None:
            return params[name]
    raise KeyError("no issuer keys (_card_keys, _issuer_keys or _master_key) in the script parameters")


def _session(conv: Conversation, params: dict[str, Any]) -> ReplayableIssuerSession:
    return ReplayableIssuerSession(
        conv,
        issuer_key_material(params),
        key_version=int(params.get("key_version", 0)),
        expected_kdd=bytes.fromhex(params["kdd"]) if params.get("kdd") else None,
    )


def _read_truth(issuer: IssuerSession, what: str, cause: SecureChannelError, read: Callable[[], T]) -> T:
    """After an unauthenticated answer to ``what``: a new session, then ``read()`` (authenticated). If either fails
    — the terminal keeps breaking the channel, or the card answers something else — the outcome stays unknown."""
    try:
        issuer.open()
        return read()
    except CardMismatchError:
        raise
    except CardError as exc:
        issuer.close()
        raise OutcomeUnknownError(0, f"{what}: answer not authentic ({cause}); card state unreadable ({exc})") from exc


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
        for attempt in range(RECOVERY_ATTEMPTS + 1):
            try:
                issuer.commit()
                return {}
            except OutcomeUnknownError as exc:
                if attempt == RECOVERY_ATTEMPTS:
                    raise
                if _read_truth(issuer, "COMMIT", exc, lambda: _committed(issuer)):
                    return {}  # the card did commit: its authenticated state says so
    raise AssertionError("unreachable")


def _committed(issuer: IssuerSession) -> bool:
    """Whether the pending keys are gone (authenticated GET STATUS). Only COMMIT and DISCARD empty the pending slots,
    and no DISCARD can have run in between: the terminal cannot make one (C-MAC) and this script sent none. The
    engine's ``confirm`` step then proves the new keys by a signature."""
    status = issuer.status()
    return not status.pending_keys and not status.pending_certificates


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
            _reset_pin(conv, issuer, which, value)
    return {"new_pin_valid": True}


def _reset_count(issuer: IssuerSession, which: str) -> int:
    applet, fid = layout.HOLDER_PINS[which]
    pin = issuer.status().pin(applet, fid)
    return pin.reset_count if pin is not None else 0


def _reset_pin(conv: Conversation, issuer: IssuerSession, which: str, value: str) -> None:
    """SET PIN for one key reference; after an unauthenticated answer, the card's reset count tells the truth."""
    before = _reset_count(issuer, which)
    conv.checkpoint("set_pin_sent")  # from here on the card may have reset the PIN
    for attempt in range(RECOVERY_ATTEMPTS + 1):
        try:
            issuer.reset_holder_pin(which, value)
            return
        except OutcomeUnknownError as exc:
            if attempt == RECOVERY_ATTEMPTS:
                raise
            if _read_truth(issuer, f"SET PIN ({which})", exc, lambda: _reset_count(issuer, which)) != before:
                return  # executed: the authenticated reset count moved on
            # not executed (the terminal dropped it): send it again in the new session
    raise AssertionError("unreachable")


SCRIPTS = {
    "generate_keys": generate_keys,
    "write_certificates": write_certificates,
    "commit": commit,
    "discard": discard,
    "set_pin": set_pin,
}
