"""In-process transport: our card object called directly (tests, the demo, ``card apdu``)."""

from __future__ import annotations

from jpki_remote.card.transports.base import (
    ChangeCallback,
    SupportsCard,
    TransportBase,
    TransportClosedError,
    check_apdu,
)


class InProcessTransport(TransportBase):
    """Carries APDUs to a card object in this process; ``on_change(command, response)`` runs after each command.

    Opening the transport is inserting the card: it is reset first (a fresh session, as after power-on), and
    ``close()`` resets it again unless ``reset_on_close`` is False.
    """

    def __init__(self, card: SupportsCard, *, on_change: ChangeCallback | None = None, reset_on_close: bool = True):
        self._card: SupportsCard | None = card
        self.on_change = on_change
        self.reset_on_close = reset_on_close
        card.reset()

    @property
    def card(self) -> SupportsCard:
        if self._card is None:
            raise TransportClosedError("this in-process card session is closed")
        return self._card

    @property
    def atr(self) -> bytes:
        return bytes(self.card.atr)

    def transmit(self, apdu: bytes) -> bytes:
        data = check_apdu(apdu)
        card = self.card
        response = bytes(card.transmit(data))
        if self.on_change is not None:
            self.on_change(data, response)
        return response

    def close(self) -> None:
        card, self._card = self._card, None
        if card is not None and self.reset_on_close:
            card.reset()
