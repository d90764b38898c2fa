"""The agent's card reader: a virtual reader over the card directory (cards "inserted" by id), or a PC/SC reader.

Both give ``transmit(apdu) -> bytes`` (raising :class:`NoCardError` without a card and :class:`CardRemovedError`
when the card went away mid-session), whether a card is present, its id, and :class:`CardInfo` — what the counter
needs to register a newly delivered card, read over the card's public interface only (no key, no PIN):

* the card id / serial and the card's expiry from the common AP's card information (共通AP EF 0001, record 1:
  ``01 1C`` + 15-digit serial + 5-digit municipality code + expiry ``YYYYMMDD``);
* the key diversification data from the first 10 bytes of the issuer domain's answer to INITIALIZE UPDATE (with a
  random host challenge; the agent never completes the authentication — it has no key, and leaves the session
  half-open only until the next SELECT).

The public key of the surface AP is not readable without the holder's 照合番号B, so ``public_key`` stays None.
Access to one card is serialised (a virtual card is not thread-safe, and a PC/SC card must not interleave).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jpki_remote.card.transports.base import CardRemovedError, NoCardError, TransportError

log = logging.getLogger(__name__)

_CARD_INFO = re.compile(rb"\x01\x1c([0-9]{15})([0-9]{5})([0-9]{8})")


@dataclass(frozen=True)
class CardInfo:
    serial: str | None = None
    expiry: dt.date | None = None
    diversification_data: bytes | None = None
    public_key: bytes | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "diversification_data": self.diversification_data.hex() if self.diversification_data else None,
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "public_key": self.public_key.hex() if self.public_key else None,
        }


def read_card_info(transmit: Any) -> CardInfo:
    """Serial, expiry and diversification data over public commands; a field the card does not give is None."""
    from jpki_remote.card import layout
    from jpki_remote.card.client import CardClient, CardError

    client = CardClient(transmit)
    serial = expiry = kdd = None
    try:
        client.select_ap("common")
        match = _CARD_INFO.match(client.read_record(1, layout.COMMON_CARD_INFO))
        if match:
            serial = match.group(1).decode()
            try:
                expiry = dt.datetime.strptime(match.group(3).decode(), "%Y%m%d").date()
            except ValueError:
                expiry = None
    except (CardError, ValueError):
        pass
    try:
        client.select_ap(layout.AID_ISSUER)
        answer = transmit(bytes([0x80, 0x50, 0x00, 0x00, 0x08]) + secrets.token_bytes(8) + b"\x00")
        if len(answer) >= 12 and answer[-2:] == b"\x90\x00":
            kdd = answer[:10]
        client.select_ap("common")  # ends the half-open issuer session
    except (CardError, ValueError):
        pass
    return CardInfo(serial=serial, expiry=expiry, diversification_data=kdd)


class Reader(Protocol):
    name: str

    def transmit(self, apdu: bytes) -> bytes: ...

    def present(self) -> bool: ...

    def card_id(self) -> str | None: ...

    def info(self) -> CardInfo | None: ...

    def close(self) -> None: ...


class ReaderNotVirtual(Exception):
    """Inserting or removing a card by command needs the virtual reader."""


class VirtualReader:
    """Cards of a card directory, inserted and removed by id (the demo, tests). Insertion powers the card on."""

    def __init__(self, cards_dir: Path) -> None:
        from jpki_remote.card.store import CardStore

        self.store = CardStore(cards_dir)
        self.name = f"virtual ({Path(cards_dir).name})"
        self._lock = threading.RLock()
        self._transport: Any = None
        self._card_id: str | None = None
        self._info: CardInfo | None = None
        self._generation = 0

    def insert(self, card_id: str) -> None:
        """Put card ``card_id`` of the directory on the reader (replacing any card there). KeyError: no such card."""
        from jpki_remote.card.store import CardNotFoundError
        from jpki_remote.card.transports.inprocess import InProcessTransport

        with self._lock:
            try:
                if not self.store.exists(card_id):
                    raise KeyError(card_id)
                card = self.store.open(card_id)
            except (CardNotFoundError, ValueError):
                raise KeyError(card_id) from None
            self.remove()
            self._transport = InProcessTransport(card)
            self._card_id = card_id
            self._generation += 1
            try:
                self._info = read_card_info(self._transport.transmit)
            finally:
                card.reset()  # power cycle: the procedure starts from a fresh card session
            log.info("card %s inserted", card_id)

    def remove(self) -> None:
        with self._lock:
            transport, self._transport = self._transport, None
            if transport is not None:
                transport.close()
                log.info("card %s removed", self._card_id)
            self._card_id = None
            self._info = None

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            if self._transport is None:
                raise NoCardError("no card on the reader")
            return self._transport.transmit(apdu)

    @property
    def generation(self) -> int:
        """Incremented by every insertion (the relay tells a re-inserted card from the same session)."""
        return self._generation

    def present(self) -> bool:
        with self._lock:
            return self._transport is not None

    def card_id(self) -> str | None:
        with self._lock:
            return self._card_id

    def info(self) -> CardInfo | None:
        with self._lock:
            return self._info

    def close(self) -> None:
        self.remove()


class PcscReader:
    """A PC/SC reader (a real one, or our card through vpcd). The card id is the serial of the common AP."""

    def __init__(self, name: str | None = None) -> None:
        self._wanted = name
        self.name = name or "PC/SC"
        self._lock = threading.RLock()
        self._transport: Any = None
        self._info: CardInfo | None = None
        self._generation = 0

    def _connect(self) -> Any:
        from jpki_remote.card.transports.pcsc import PcscTransport

        if self._transport is None:
            self._transport = PcscTransport(self._wanted)
            self.name = self._transport.reader
            self._generation += 1
            try:
                self._info = read_card_info(self._transport.transmit)
            except TransportError:
                self._drop()
                raise
        return self._transport

    def _drop(self) -> None:
        transport, self._transport = self._transport, None
        self._info = None
        if transport is not None:
            with contextlib.suppress(TransportError):
                transport.close()

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            transport = self._connect()
            try:
                return transport.transmit(apdu)
            except CardRemovedError:
                self._drop()
                raise

    @property
    def generation(self) -> int:
        return self._generation

    def present(self) -> bool:
        from jpki_remote.card.transports.pcsc import list_readers

        with self._lock:
            try:
                readers = list_readers()
            except TransportError:
                self._drop()
                return False
            wanted = (self._wanted or "").casefold()
            present = any(r.card_present for r in readers if wanted in r.name.casefold())
            if not present:
                self._drop()
                return False
            try:
                self._connect()
            except TransportError:
                return False
            return True

    def card_id(self) -> str | None:
        with self._lock:
            return self._info.serial if self._info else None

    def info(self) -> CardInfo | None:
        with self._lock:
            return self._info

    def close(self) -> None:
        with self._lock:
            self._drop()
