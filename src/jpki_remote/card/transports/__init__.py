"""Transports: one interface (:class:`CardTransport`) to reach a card in-process, through PC/SC, or to serve our card
to the OS through vpcd. ``pcsc`` needs pyscard and is imported only when used."""

from jpki_remote.card.transports.base import (
    CardRemovedError,
    CardTransport,
    ChangeCallback,
    NoCardError,
    NoReaderError,
    SupportsCard,
    TransportClosedError,
    TransportError,
)
from jpki_remote.card.transports.inprocess import InProcessTransport
from jpki_remote.card.transports.vpcd import VpcdCardServer

__all__ = [
    "CardRemovedError",
    "CardTransport",
    "ChangeCallback",
    "InProcessTransport",
    "NoCardError",
    "NoReaderError",
    "SupportsCard",
    "TransportClosedError",
    "TransportError",
    "VpcdCardServer",
]
