"""Background work of ``serve`` and its cron twin: holder notices that could not be sent (SMTP down during a renewal)
are delivered later by the worker / ``jpki-remote notify deliver-pending``; tree heads are signed when the log grew."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from procedure_world import PINS, World, make_world, run_agent
from sqlalchemy import select, update

from jpki_remote.procedures.ports import ProofingNotices
from jpki_remote.proofing.models import HolderNotice, NoticeState
from jpki_remote.proofing.notify import EventKind, HolderEvent, notify_holder
from jpki_remote.store import Database
from jpki_remote.terminal.agent import ScriptedPinPad
from jpki_remote.web.background import server_tasks, sign_tree_head_if_new


class Sink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives; ``start()`` when the test says so."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.messages: list[EmailMessage] = []
        self._controller = None

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_world(sqlite_database: Database, tmp_path: Path, faces_dir: Path, sink: Sink) -> World:
    world = make_world(sqlite_database, tmp_path, faces_dir)
    world.settings = world.settings.with_overrides(delivery="smtp", smtp_host="127.0.0.1", smtp_port=sink.port,
                                                   delivery_timeout_seconds=3.0)  # fmt: skip
    world.ports.notices = ProofingNotices(world.db, world.settings)
    return world


def _notices(world: World, procedure_id: str) -> list[HolderNotice]:
    with world.db.session() as s:
        return list(s.scalars(select(HolderNotice).where(HolderNotice.procedure_id == procedure_id)))


def _time_passes(world: World) -> None:
    """The retry backoff (30 s after the first failure) has passed."""
    with world.db.session() as s:
        s.execute(update(HolderNotice).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_notice_of_a_renewal_during_an_smtp_outage_is_delivered_later(smtp_world: World, sink: Sink) -> None:
    world = smtp_world
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(kind="renewal", target="certificates", channel="counter", card_id=issued.card_id,
                         terminal_id="t-c")  # fmt: skip
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)), "t-c")
    reply = engine.record_staff_check(reply["id"], "staff-1", ["passport"])
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)), "t-c")
    assert reply["status"] == "completed", reply["error"]  # the outage does not hold the renewal up
    (notice,) = _notices(world, reply["id"])
    assert notice.state is NoticeState.PENDING and notice.attempts == 1 and notice.last_error

    sink.start()  # the mail server is back
    background = server_tasks(world.db, world.settings, world.engine)
    assert background.run_once()["notice-delivery"].sent == 0  # not due yet: backoff
    _time_passes(world)
    report = background.run_once()["notice-delivery"]
    assert report.sent == 1 and report.failed == 0
    (notice,) = _notices(world, reply["id"])
    assert notice.state is NoticeState.SENT and "*" in notice.address  # only the masked address is kept
    (mail,) = sink.messages
    assert mail["To"] == "holder0@example.jp"
    body = mail.get_body(("plain",)).get_content()
    assert reply["id"] in body and "更新" in body
    assert world.audit.verify().ok


def test_cli_deliver_pending_for_cron(smtp_world: World, sink: Sink, tmp_path: Path) -> None:
    world = smtp_world
    result = notify_holder(
        [type("C", (), {"kind": "email", "address": "cron@example.jp"})()],
        HolderEvent(EventKind.PIN_RESET, "p" * 32, channel="kiosk", pin_kind="auth"),
        db=world.db,
        settings=world.settings,
    )
    assert result.pending == 1
    sink.start()
    _time_passes(world)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JPKI_")},
        "JPKI_DATA_DIR": str(world.settings.data_dir),
        "JPKI_DATABASE_URL": str(world.db.engine.url),
        "JPKI_DELIVERY": "smtp",
        "JPKI_SMTP_PORT": str(sink.port),
        "JPKI_PROOFING_SECRET": world.settings.proofing_secret,
    }
    command = [sys.executable, "-m", "jpki_remote", "notify", "deliver-pending"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "1 sent, 0 to retry later, 0 failed" in done.stdout
    assert len(sink.messages) == 1 and sink.messages[0]["To"] == "cron@example.jp"
    bad = subprocess.run([*command, "--limit", "0"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "--limit" in bad.stderr


def test_tree_head_task_signs_only_when_the_log_grew(smtp_world: World) -> None:
    from jpki_remote.audit import AuditEvent

    audit = smtp_world.audit
    audit.append(AuditEvent("system", "test.event", "info", None, None, {}))
    first = sign_tree_head_if_new(audit)
    assert first is None or first.tree_size == audit.size()
    assert sign_tree_head_if_new(audit) is None  # nothing new: no new head
    audit.append_batch([AuditEvent("system", "test.event", "info", None, None, {})], sign=False)
    head = sign_tree_head_if_new(audit)
    assert head is not None and head.tree_size == audit.size()
