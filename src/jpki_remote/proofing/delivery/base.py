"""The delivery interface every channel implements, the contact and message types, and contact masking.

A :class:`Deliverer` has one method, ``send(contact, message)``; it returns when the channel accepted the message and
raises :class:`DeliveryError` otherwise (``retryable`` tells the notification worker whether to try again). A
deliverer never logs a message body — bodies may hold a security code — only the channel and the masked contact.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

EMAIL = "email"
MOBILE = "mobile"
KINDS = (EMAIL, MOBILE)

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+")  # fmt: skip
_JP_MOBILE = re.compile(r"0[789]0\d{8}")


class DeliveryError(Exception):
    """The channel did not accept the message. ``retryable``: a later try may succeed (timeouts, 5xx, 4xx SMTP)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ContactError(ValueError):
    """Not a usable e-mail address or Japanese mobile number."""


@dataclass(frozen=True)
class Contact:
    """A registered contact: ``kind`` is ``"email"`` or ``"mobile"`` (as in the registry); mobile numbers are kept
    in E.164 form (``+8190…``). Build with :meth:`of`, which validates and normalises."""

    kind: str
    address: str

    @classmethod
    def of(cls, value: object, address: str | None = None) -> Contact:
        """From a ``Contact``, any object with ``kind``/``address`` (a registry row), or ``of(kind, address)``."""
        if address is None:
            kind = getattr(value, "kind", None)
            address = getattr(value, "address", None)
        else:
            kind = value
        kind = getattr(kind, "value", kind)
        if kind not in KINDS or not isinstance(address, str):
            raise ContactError("a contact is an 'email' or 'mobile' kind with a text address")
        return cls(kind, normalise_address(kind, address))

    @property
    def masked(self) -> str:
        return mask_contact(self)


def normalise_address(kind: str, address: str) -> str:
    text = unicodedata.normalize("NFKC", address).strip()
    if kind == EMAIL:
        if len(text) > 254 or not _EMAIL.fullmatch(text):
            raise ContactError("not an e-mail address")
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"
    digits = re.sub(r"[\s()\-]", "", text)
    if digits.startswith("+81"):
        digits = "0" + digits[3:]
    if not _JP_MOBILE.fullmatch(digits):
        raise ContactError("not a Japanese mobile number (070/080/090 and 8 digits)")
    return "+81" + digits[1:]


def mask_contact(contact: Contact) -> str:
    """``t***@example.jp`` for e-mail, ``090-****-5678`` for a mobile number: enough to recognise, not to use."""
    if contact.kind == EMAIL:
        local, _, domain = contact.address.rpartition("@")
        return f"{local[:1]}***@{domain}"
    domestic = "0" + contact.address[3:] if contact.address.startswith("+81") else contact.address
    return f"{domestic[:3]}-****-{domestic[-4:]}"


@dataclass(frozen=True)
class Message:
    """``body`` for e-mail; ``sms`` (short form) for SMS, falling back to ``body``. Japanese first, then English."""

    subject: str
    body: str
    sms: str | None = None

    def text_for(self, kind: str) -> str:
        return (self.sms or self.body) if kind == MOBILE else self.body


class Deliverer(Protocol):
    def send(self, contact: Contact, message: Message) -> None:
        """Hand ``message`` to the channel for ``contact``; raise :class:`DeliveryError` if it was not accepted."""
        ...
