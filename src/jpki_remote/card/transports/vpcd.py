"""Our card as the "virtual ICC" of vsmartcard's vpcd driver, so every PC/SC program on this machine sees it.

vpcd is a pcscd reader driver that listens on TCP (35963 for its first slot by default, configured in
``/etc/reader.conf.d/vpcd`` as ``DEVICENAME /dev/null:<port>``). We connect to it and then answer its requests; each
message is a 2-byte big-endian length followed by the payload. A 1-byte payload is a control code (0 power off,
1 power on, 2 reset, 4 send the ATR); anything longer is a command APDU whose response APDU we send back.

Closing our connection is how a card is pulled out of the reader; connecting again re-inserts it. When pcscd stops or
restarts, we reconnect until told to stop. Power off, power on and reset all reset the card (its volatile security
state is lost, as on a real card). After every command that changed the card's persistent state the ``on_change``
callback runs (the card directory saves the card there), before the response leaves, so an acknowledged change is on
disk.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from jpki_remote.card.transports.base import ChangeCallback, SupportsCard

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963  # vpcd's first slot (0x8C7B, CHANNELID in /etc/reader.conf.d/vpcd)

CTRL_POWER_OFF = 0
CTRL_POWER_ON = 1
CTRL_RESET = 2
CTRL_GET_ATR = 4

SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"

class _ConnectionClosed(Exception):
    """vpcd closed the connection (pcscd stopped or restarted)."""


class VpcdCardServer:
    """Serves one card to vpcd until :meth:`stop`; reconnects when pcscd goes away and comes back.

    Use it as a context manager (``with VpcdCardServer(card, port=...) as server: server.wait_connected()``), or call
    :meth:`serve_forever` in the foreground (the ``card insert`` command does).
    """

    def __init__(
        self,
        card: SupportsCard,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        on_change: ChangeCallback | None = None,
        on_connection: Callable[[bool], None] | None = None,
        retry_interval: float = 0.5,
        connect_timeout: float = 5.0,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"vpcd port must be 1–65535, got {port}")
        self.card = card
        self.host = host
        self.port = port
        self.on_change = on_change
        self.on_connection = on_connection  # called with True when plugged in, False when the connection ends
        self.retry_interval = retry_interval
        self.connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.powered = False
        self.connections = 0  # how many times we have been plugged in (reconnects included)
        self.commands = 0  # command APDUs answered

    # -- life cycle -------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve in a background thread; returns at once (see :meth:`wait_connected`)."""
        if self._thread is not None:
            raise RuntimeError("this server is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve_forever, name=f"vpcd-card-{self.port}", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until vpcd has accepted our connection; False on timeout."""
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """Pull the card out: close the connection and end :meth:`serve_forever`. Safe to call more than once."""
        self._stop.set()
        self._close_socket()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("vpcd card server on port %d did not stop within %.1f s", self.port, timeout)

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- serving ----------------------------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Connect to vpcd and answer it; on disconnect, reconnect every ``retry_interval`` s until :meth:`stop`."""
        waiting_logged = False
        while not self._stop.is_set():
            sock = self._connect()
            if sock is None:
                if not waiting_logged:
                    log.info("waiting for vpcd on %s:%d (is pcscd running with the vpcd reader?)", self.host, self.port)
                    waiting_logged = True
                self._stop.wait(self.retry_interval)
                continue
            waiting_logged = False
            self.connections += 1
            self._connected.set()
            log.info("card inserted into vpcd at %s:%d", self.host, self.port)
            self._notify(True)
            try:
                self._serve_connection(sock)
            except _ConnectionClosed:
                if not self._stop.is_set():
                    log.info("vpcd at %s:%d closed the connection; reconnecting", self.host, self.port)
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("vpcd connection at %s:%d failed: %s; reconnecting", self.host, self.port, exc)
            finally:
                self._connected.clear()
                self._close_socket()
                self._power_off()
                self._notify(False)
        log.info("card removed from vpcd at %s:%d", self.host, self.port)

    def _notify(self, connected: bool) -> None:
        if self.on_connection is not None:
            try:
                self.on_connection(connected)
            except Exception:
                log.exception("on_connection callback failed")

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError:
            return None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._stop.is_set():
                sock.close()
                return None
            self._sock = sock
        return sock

    def _close_socket(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _serve_connection(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            length = int.from_bytes(_recv_exact(sock, 2), "big")
            payload = _recv_exact(sock, length) if length else b""
            if length == 1:
                reply = self._control(payload[0])
            elif length == 0:
                log.debug("ignoring an empty message from vpcd")
                continue
            else:
                reply = self._command(payload)
            if reply is not None:
                sock.sendall(len(reply).to_bytes(2, "big") + reply)

    def _control(self, code: int) -> bytes | None:
        if code == CTRL_GET_ATR:
            return bytes(self.card.atr)
        if code == CTRL_POWER_ON:
            self._reset_card()
            self.powered = True
            log.debug("power on")
        elif code == CTRL_POWER_OFF:
            self._power_off()
            log.debug("power off")
        elif code == CTRL_RESET:
            self._reset_card()
            self.powered = True
            log.debug("reset")
        else:
            log.warning("ignoring unknown vpcd control code %d", code)
        return None

    def _power_off(self) -> None:
        if self.powered:
            self._reset_card()
        self.powered = False

    def _reset_card(self) -> None:
        try:
            self.card.reset()
        except Exception:
            log.exception("card reset failed")

    def _command(self, apdu: bytes) -> bytes:
        self.commands += 1
        try:
            response = bytes(self.card.transmit(apdu))
        except Exception:
            # The card must answer with a status word; a crash here is a card bug, but the reader stays usable.
            ins = apdu[1] if len(apdu) > 1 else 0
            log.exception("the card raised on a command APDU (INS %02X); answering 6F00", ins)
            return SW_NO_PRECISE_DIAGNOSIS
        if len(response) < 2 or len(response) > 0xFFFF:
            log.error("the card returned a response of %d bytes; answering 6F00", len(response))
            return SW_NO_PRECISE_DIAGNOSIS
        if self.on_change is not None:
            try:
                self.on_change(apdu, response)
            except Exception:
                # Not acknowledging a change we could not save: the client sees an error, the card file is unchanged.
                log.exception("saving the card after a command failed; answering 6F00")
                return SW_NO_PRECISE_DIAGNOSIS
        return response


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes, acknowledging each segment at once.

    vpcd (vsmartcard 3.3) writes a message's length and its payload with two separate send() calls and does not
    disable Nagle's algorithm: its payload waits for our ACK of the length, which Linux would delay by ~40 ms. Quick
    ACKs (re-armed before every read; the kernel clears the flag) cut a round trip from ~45 ms to well under 1 ms.
    """
    chunks = bytearray()
    while len(chunks) < size:
        if _QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise _ConnectionClosed
        chunks += chunk
    return bytes(chunks)
