"""Fixtures of the security-code, delivery, notification and limits tests: settings in a temporary data directory,
a real local SMTP server (aiosmtpd) and a fake SMS gateway, both on loopback with free ports."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jpki_remote.config import Settings


@pytest.fixture
def proofing_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", delivery="outbox")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self._controller = None

    async def handle_DATA(self, server, session, envelope):
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port()).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp_port_down() -> Iterator[SmtpSink]:
    """A port where no SMTP server listens yet; ``.start()`` brings one up on it."""
    sink = SmtpSink(free_port())
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@dataclass
class FakeGateway:
    """A fake SMS gateway: answers with ``statuses`` in turn (then 200) and records every request."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)


@pytest.fixture
def sms_gateway() -> Iterator[FakeGateway]:
    gateway = FakeGateway()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                gateway.requests.append(json.loads(body))
                gateway.headers.append(dict(self.headers))
                status = gateway.statuses.pop(0) if gateway.statuses else 200
            payload = json.dumps({"ok": status == 200}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/v1/messages"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    """A controllable UTC clock."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()
