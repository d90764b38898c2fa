"""The vpcd wire protocol of our card server, driven by a scripted vpcd peer on loopback.

These cover what real pcscd rarely does on demand: unknown control codes, a card that raises, a save that fails,
vpcd dropping the connection and coming back, and stopping while waiting. The end-to-end path through the real
pcscd + vpcd is in test_pcsc_stack.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki_remote.card.transports import VpcdCardServer
from jpki_remote.card.transports.vpcd import CTRL_GET_ATR

from .doubles import ATR, RecordingCard


class FakeVpcd:
    """The vpcd side of the protocol: listens, accepts our card, sends framed messages."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(5)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(len(payload).to_bytes(2, "big") + payload)

    def receive(self) -> bytes:
        assert self.conn is not None
        header = self._exact(2)
        return self._exact(int.from_bytes(header, "big"))

    def _exact(self, size: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("card side closed")
            data += chunk
        return data

    def exchange(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.listener.close()


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    peer = FakeVpcd()
    yield peer
    peer.close()


@pytest.fixture
def card() -> RecordingCard:
    return RecordingCard()


def serve(card: RecordingCard, vpcd: FakeVpcd, **kwargs: object) -> VpcdCardServer:
    server = VpcdCardServer(card, port=vpcd.port, retry_interval=0.05, **kwargs)  # type: ignore[arg-type]
    server.start()
    vpcd.accept()
    assert server.wait_connected(5)
    return server


def test_atr_power_and_apdu(card: RecordingCard, vpcd: FakeVpcd) -> None:
    with serve(card, vpcd) as server:
        assert vpcd.exchange(b"\x04") == ATR
        vpcd.send(b"\x01")  # power on: no answer, card reset
        assert vpcd.exchange(bytes.fromhex("00A4040C02AABB")) == bytes.fromhex("BBAA020C04A400") + b"\x90\x00"
        assert card.commands == [bytes.fromhex("00A4040C02AABB")]
        assert card.resets == 1
        assert server.powered
        vpcd.send(b"\x02")  # reset
        vpcd.send(b"\x00")  # power off
        assert vpcd.exchange(b"\x04") == ATR  # still answering after power off (pcscd polls the ATR)
        assert card.resets == 3
        assert not server.powered
        assert server.commands == 1


def test_extended_length_apdu_round_trip(card: RecordingCard, vpcd: FakeVpcd) -> None:
    command = b"\x00\xda\x01\x02\x00\x10\x00" + bytes(range(256)) * 16
    with serve(card, vpcd):
        assert vpcd.exchange(command) == command[::-1] + b"\x90\x00"


def test_unknown_control_code_is_ignored(card: RecordingCard, vpcd: FakeVpcd) -> None:
    with serve(card, vpcd):
        vpcd.send(b"\x07")
        vpcd.send(b"\x03")
        assert vpcd.exchange(b"\x04") == ATR
        assert card.resets == 0


def test_card_exception_becomes_6f00(card: RecordingCard, vpcd: FakeVpcd) -> None:
    with serve(card, vpcd):
        assert vpcd.exchange(b"\xde\xad\x00\x00") == b"\x6f\x00"
        assert vpcd.exchange(b"\x00\xb0\x00\x00\x01") == b"\x01\x00\x00\xb0\x00\x90\x00"


def test_on_change_sees_each_command_and_a_failed_save_is_not_acknowledged(
    card: RecordingCard, vpcd: FakeVpcd
) -> None:
    seen: list[tuple[bytes, bytes]] = []

    def on_change(command: bytes, response: bytes) -> None:
        seen.append((command, response))
        if command[1] == 0x20:
            raise OSError("disk full")

    with serve(card, vpcd, on_change=on_change):
        assert vpcd.exchange(b"\x00\xb0\x00\x00\x00").endswith(b"\x90\x00")
        assert vpcd.exchange(b"\x00\x20\x00\x80") == b"\x6f\x00"
    assert [c for c, _ in seen] == [b"\x00\xb0\x00\x00\x00", b"\x00\x20\x00\x80"]


def test_reconnects_after_vpcd_drops_the_connection(card: RecordingCard, vpcd: FakeVpcd) -> None:
    events: list[bool] = []
    with serve(card, vpcd, on_connection=events.append) as server:
        vpcd.send(b"\x01")
        assert vpcd.exchange(b"\x04") == ATR
        vpcd.drop()  # pcscd restarted
        vpcd.accept()  # we come back on our own
        assert vpcd.exchange(b"\x04") == ATR
        assert server.connections == 2
        assert card.resets == 2  # power on, then the implicit power off when the connection was lost
    assert events == [True, False, True, False]


def test_stop_while_waiting_for_vpcd(card: RecordingCard) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens here
    server = VpcdCardServer(card, port=port, retry_interval=0.05).start()
    assert not server.wait_connected(0.3)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(3)
    assert not stopper.is_alive()


def test_stop_pulls_the_card(card: RecordingCard, vpcd: FakeVpcd) -> None:
    server = serve(card, vpcd)
    server.stop()
    assert not server.connected
    assert vpcd.conn is not None
    assert vpcd.conn.recv(1) == b""  # the connection is closed: the reader sees an empty slot


def test_invalid_port() -> None:
    with pytest.raises(ValueError, match="port"):
        VpcdCardServer(RecordingCard(), port=0)


@pytest.fixture(scope="module")
def real_card(key_pool: list, face_photo: bytes) -> object:  # type: ignore[type-arg]
    """A real personalised VirtualCard in memory (the factory's throw-away test CA is enough here)."""
    import itertools

    from jpki_remote.card.factory import create_card, test_holder

    from .cards import MASTER_KEY, PINS

    keys = itertools.cycle(key_pool)
    return create_card(test_holder(face_photo), issuer_master_key=MASTER_KEY, pins=PINS, keygen=lambda: next(keys)).card


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=12))
def test_random_frames_never_break_the_server(real_card: object, frames: list[bytes]) -> None:
    """Whatever vpcd sends, every APDU frame gets a response with a status word and the connection stays up."""
    peer = FakeVpcd()
    try:
        server = VpcdCardServer(real_card, port=peer.port, retry_interval=0.05)  # type: ignore[arg-type]
        server.start()
        peer.accept()
        for frame in frames:
            if len(frame) == 1:
                if frame[0] == CTRL_GET_ATR:
                    assert peer.exchange(frame) == ATR
                else:
                    peer.send(frame)  # control codes get no answer
                continue
            response = peer.exchange(frame)
            assert 2 <= len(response) <= 0xFFFF
        assert peer.exchange(bytes([CTRL_GET_ATR])) == ATR
        assert server.connections == 1 and server.connected
    finally:
        server.stop()
        peer.close()
