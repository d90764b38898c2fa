"""PC/SC client transport (pyscard): the same client code drives a real reader, or our card seen through vpcd.

Readers are chosen by a case-insensitive substring of their name (``"Virtual PCD"``, ``"SONY"``, ``"ACS"``); without
one, the first reader holding a card is used. PC/SC error codes become the typed errors of
:mod:`jpki_remote.card.transports.base`: no service or reader → :class:`NoReaderError`, empty reader →
:class:`NoCardError`, card pulled or reset by another program mid-session → :class:`CardRemovedError` (the server
treats the session's card state as lost).
"""

from __future__ import annotations

from dataclasses import dataclass

from smartcard import scard

from jpki_remote.card.transports.base import (
    CardRemovedError,
    NoCardError,
    NoReaderError,
    TransportBase,
    TransportClosedError,
    TransportError,
    check_apdu,
)

_NO_SERVICE = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED}
_NO_READER = {scard.SCARD_E_NO_READERS_AVAILABLE, scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE}
_NO_CARD = {scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_REMOVED_CARD, scard.SCARD_W_UNRESPONSIVE_CARD,
            scard.SCARD_W_UNPOWERED_CARD}
_LOST_CARD = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_RESET_CARD,
              scard.SCARD_E_READER_UNAVAILABLE, scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_E_INVALID_HANDLE,
              scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_W_UNRESPONSIVE_CARD,
              scard.SCARD_E_COMM_DATA_LOST}

_DISPOSITIONS = {"leave": scard.SCARD_LEAVE_CARD, "reset": scard.SCARD_RESET_CARD, "unpower": scard.SCARD_UNPOWER_CARD}


@dataclass(frozen=True)
class ReaderInfo:
    name: str
    card_present: bool
    atr: bytes


def _message(hresult: int) -> str:
    try:
        text = scard.SCardGetErrorMessage(hresult)
    except Exception:  # pragma: no cover - pyscard always has a message, but an error path must not raise
        text = "unknown error"
    return f"{text.strip()} (0x{hresult & 0xFFFFFFFF:08X})"


class _Context:
    """One PC/SC context (a connection to pcscd)."""

    def __init__(self) -> None:
        hresult, self.handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            if hresult in _NO_SERVICE:
                raise NoReaderError(f"the PC/SC service (pcscd) is not running: {_message(hresult)}")
            raise TransportError(f"cannot reach PC/SC: {_message(hresult)}")

    def readers(self) -> list[str]:
        hresult, names = scard.SCardListReaders(self.handle, [])
        if hresult in _NO_READER or (hresult == scard.SCARD_S_SUCCESS and not names):
            return []
        if hresult in _NO_SERVICE:
            raise NoReaderError(f"the PC/SC service (pcscd) stopped: {_message(hresult)}")
        if hresult != scard.SCARD_S_SUCCESS:
            raise TransportError(f"cannot list PC/SC readers: {_message(hresult)}")
        return list(names)

    def status(self, names: list[str]) -> list[ReaderInfo]:
        if not names:
            return []
        query = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        hresult, states = scard.SCardGetStatusChange(self.handle, 0, query)
        if hresult not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            raise TransportError(f"cannot read the state of the PC/SC readers: {_message(hresult)}")
        return [ReaderInfo(name, bool(state & scard.SCARD_STATE_PRESENT), bytes(atr)) for name, state, atr in states]

    def release(self) -> None:
        if self.handle is not None:
            scard.SCardReleaseContext(self.handle)
            self.handle = None


def list_readers() -> list[ReaderInfo]:
    """All PC/SC readers with whether each holds a card. Raises :class:`NoReaderError` if pcscd is not running."""
    context = _Context()
    try:
        return context.status(context.readers())
    finally:
        context.release()


def select_reader(readers: list[ReaderInfo], name: str | None) -> ReaderInfo:
    """The reader whose name contains ``name`` (case-insensitive), or the first one holding a card."""
    if not readers:
        raise NoReaderError("no PC/SC reader is connected")
    if name:
        matching = [r for r in readers if name.casefold() in r.name.casefold()]
        if not matching:
            available = ", ".join(repr(r.name) for r in readers)
            raise NoReaderError(f"no PC/SC reader name contains {name!r}; readers: {available}")
        with_card = [r for r in matching if r.card_present]
        return (with_card or matching)[0]
    with_card = [r for r in readers if r.card_present]
    if not with_card:
        available = ", ".join(repr(r.name) for r in readers)
        raise NoCardError(f"no card in any PC/SC reader ({available})")
    return with_card[0]


class PcscTransport(TransportBase):
    """A session with the card in one PC/SC reader.

    ``exclusive`` keeps other programs from interleaving APDUs (and resetting our security state); ``on_close``
    decides what happens to the card afterwards: ``"reset"`` (default: the PINs verified in this session do not stay
    verified for the next program), ``"leave"`` or ``"unpower"``.
    """

    def __init__(self, reader: str | None = None, *, exclusive: bool = False, on_close: str = "reset") -> None:
        if on_close not in _DISPOSITIONS:
            raise ValueError(f"on_close must be one of {sorted(_DISPOSITIONS)}, got {on_close!r}")
        self._disposition = _DISPOSITIONS[on_close]
        self._context: _Context | None = _Context()
        self._card: int | None = None
        try:
            chosen = select_reader(self._context.status(self._context.readers()), reader)
            self.reader = chosen.name
            share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
            protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            hresult, self._card, self.protocol = scard.SCardConnect(self._context.handle, self.reader, share, protocols)
            if hresult != scard.SCARD_S_SUCCESS:
                self._card = None
                if hresult in _NO_CARD:
                    raise NoCardError(f"no usable card in {self.reader!r}: {_message(hresult)}")
                if hresult in _NO_READER:
                    raise NoReaderError(f"reader {self.reader!r} went away: {_message(hresult)}")
                if hresult == scard.SCARD_E_SHARING_VIOLATION:
                    raise TransportError(f"reader {self.reader!r} is in exclusive use by another program")
                raise TransportError(f"cannot connect to the card in {self.reader!r}: {_message(hresult)}")
            self._atr = self._read_atr()
        except BaseException:
            self.close()
            raise

    def _read_atr(self) -> bytes:
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
        if hresult != scard.SCARD_S_SUCCESS:
            raise self._lost(hresult)
        return bytes(atr)

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        data = check_apdu(apdu)
        response = self._exchange(data)
        if self.protocol == scard.SCARD_PROTOCOL_T0:
            response = self._t0_fixups(data, response)
        return response

    def _exchange(self, data: bytes) -> bytes:
        if self._card is None:
            raise TransportClosedError("this PC/SC session is closed")
        hresult, response = scard.SCardTransmit(self._card, self.protocol, list(data))
        if hresult != scard.SCARD_S_SUCCESS:
            raise self._lost(hresult)
        if len(response) < 2:
            raise TransportError(f"the reader returned {len(response)} bytes, less than a status word")
        return bytes(response)

    def _t0_fixups(self, command: bytes, response: bytes) -> bytes:
        """T=0 leaves response chaining to us: 61xx → GET RESPONSE, 6Cxx → repeat with the right Le."""
        if response[-2] == 0x6C and len(command) in (4, 5):  # case 1/2 command with a wrong Le
            response = self._exchange(command[:4] + response[-1:])
        body = bytearray()
        while response[-2] == 0x61:
            body += response[:-2]
            response = self._exchange(bytes([command[0] & 0x03, 0xC0, 0x00, 0x00, response[-1]]))
        return bytes(body) + response

    def _lost(self, hresult: int) -> TransportError:
        reader = getattr(self, "reader", "?")
        if hresult in _LOST_CARD:
            return CardRemovedError(f"the card in {reader!r} was removed or reset: {_message(hresult)}")
        return TransportError(f"PC/SC transmit to {reader!r} failed: {_message(hresult)}")

    def close(self) -> None:
        card, self._card = self._card, None
        if card is not None:
            scard.SCardDisconnect(card, self._disposition)
        context, self._context = self._context, None
        if context is not None:
            context.release()
