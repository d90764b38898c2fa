"""The one transport interface every card user talks through, and the typed errors all transports raise.

A transport carries command APDUs to a card and response APDUs back, byte for byte; it never interprets them. The
same client code therefore drives our in-process card, a real reader through PC/SC, or our card seen by the OS via
vpcd. Errors are typed so a caller (the terminal agent, the server) can tell "no reader", "no card" and "card pulled
mid-session" apart and act on each.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable


class TransportError(Exception):
    """The APDU could not be exchanged. The card's state is unknown to the caller only for the last command."""


class NoReaderError(TransportError):
    """No PC/SC reader (or none matching the requested name) is present, or the PC/SC service is not running."""


class NoCardError(TransportError):
    """The reader is there but holds no card (or the card does not answer to reset)."""


class CardRemovedError(TransportError):
    """The card was removed or reset by someone else during the session; re-insert it and start a new session."""


class TransportClosedError(TransportError):
    """The transport was closed by its owner; open a new one."""


@runtime_checkable
class CardTransport(Protocol):
    """A channel to one card. ``transmit`` takes a complete command APDU and returns the response APDU incl. SW1SW2."""

    @property
    def atr(self) -> bytes:
        """The card's Answer To Reset."""
        ...

    def transmit(self, apdu: bytes) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class SupportsCard(Protocol):
    """What a transport needs from a card implementation (``jpki_remote.card`` ``VirtualCard`` satisfies it)."""

    @property
    def atr(self) -> bytes: ...

    def transmit(self, apdu: bytes) -> bytes: ...

    def reset(self) -> None: ...


ChangeCallback = Callable[[bytes, bytes], None]
"""``on_change(command, response)``, called after each command a card answered (e.g. to save the card's state)."""


class TransportBase:
    """Context-manager plumbing shared by the implementations: ``with transport: ...`` closes it on exit."""

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


MAX_APDU_LENGTH = 4 + 3 + 65535 + 2  # header, extended Lc, data, extended Le


def check_apdu(apdu: bytes) -> bytes:
    """Return ``apdu`` as bytes, or raise for what no transport can carry (not bytes, empty, beyond an extended APDU).

    Anything else is carried as is: a short or malformed command is the card's to answer with a status word.
    """
    if not isinstance(apdu, bytes | bytearray | memoryview):
        raise TypeError(f"an APDU is bytes, not {type(apdu).__name__}")
    data = bytes(apdu)
    if not data:
        raise ValueError("an empty APDU cannot be sent")
    if len(data) > MAX_APDU_LENGTH:
        raise ValueError(f"a command APDU has at most {MAX_APDU_LENGTH} bytes, got {len(data)}")
    return data
