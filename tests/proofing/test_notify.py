"""Holder notices after completed procedures: every contact, retries through the outbox table, no duplicates."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from jpki_remote.config import Settings
from jpki_remote.proofing.delivery import Contact
from jpki_remote.proofing.models import HolderNotice, NoticeState
from jpki_remote.proofing.notify import EventKind, HolderEvent, Notifier, deliver_pending, notify_holder
from jpki_remote.store import Database

CONTACTS = [Contact.of("email", "taro@example.jp"), Contact.of("mobile", "090-1234-5678")]


def _settings(base: Settings, smtp_port: int, gateway_url: str) -> Settings:
    return base.with_overrides(delivery="smtp,sms", smtp_port=smtp_port, sms_gateway_url=gateway_url,
                               sms_gateway_retries=0)  # fmt: skip


def test_every_contact_is_notified(database: Database, proofing_settings: Settings, smtp_sink, sms_gateway) -> None:
    settings = _settings(proofing_settings, smtp_sink.port, sms_gateway.url)
    event = HolderEvent(EventKind.PIN_RESET, "proc-77", channel="kiosk", pin_kind="auth")
    result = notify_holder(CONTACTS, event, db=database, settings=settings)
    assert (result.sent, result.pending, result.failed) == (2, 0, 0)
    mail = smtp_sink.messages[0].get_content()
    assert "利用者証明用暗証番号が初期化・再設定されました" in mail and "proc-77" in mail
    assert "your user authentication PIN was reset" in mail
    assert "受付番号 proc-77" in sms_gateway.requests[0]["text"]
    with database.session() as s:
        addresses = sorted(n.address for n in s.scalars(select(HolderNotice)))
    assert addresses == ["090-****-5678", "t***@example.jp"]  # only masked addresses are kept after delivery


def test_smtp_down_at_first_delivered_later(
    database: Database, proofing_settings: Settings, smtp_port_down, sms_gateway, clock
) -> None:
    settings = _settings(proofing_settings, smtp_port_down.port, sms_gateway.url)
    notifier = Notifier(database, settings, clock=clock)
    result = notifier.notify_holder(CONTACTS, HolderEvent(EventKind.RENEWAL, "proc-1", occurred_at=clock.now))
    assert (result.sent, result.pending) == (1, 1)  # the SMS went out, the e-mail waits
    assert notifier.deliver_pending().sent == 0  # not due yet (backoff)
    smtp_port_down.start()
    clock.advance(31)
    report = notifier.deliver_pending()
    assert (report.sent, report.retry_later, report.failed) == (1, 0, 0)
    body = smtp_port_down.messages[0].get_content()
    assert "電子証明書（署名用・利用者証明用）が更新されました" in body and "were renewed" in body
    with database.session() as s:
        notices = list(s.scalars(select(HolderNotice).order_by(HolderNotice.id)))
    assert [n.state for n in notices] == [NoticeState.SENT, NoticeState.SENT]
    assert notices[0].attempts == 2 and notices[0].last_error is None
    assert notifier.deliver_pending().sent == 0  # nothing sent twice


def test_backoff_grows_and_gives_up_after_max_attempts(
    sqlite_database: Database, proofing_settings: Settings, smtp_port_down, clock
) -> None:
    settings = proofing_settings.with_overrides(delivery="smtp", smtp_port=smtp_port_down.port,
                                                notification_max_attempts=4)  # fmt: skip
    notifier = Notifier(sqlite_database, settings, clock=clock)
    notifier.notify_holder(CONTACTS[:1], HolderEvent(EventKind.PIN_CHANGE, "proc-2", pin_kind="sign"))
    delays = []
    for _ in range(3):
        with sqlite_database.session() as s:
            notice = s.scalars(select(HolderNotice)).one()
            delays.append((notice.next_attempt_at.replace(tzinfo=None) - clock.now.replace(tzinfo=None)).seconds)
        clock.advance(3600)
        notifier.deliver_pending()
    assert delays == [30, 60, 120]
    with sqlite_database.session() as s:
        notice = s.scalars(select(HolderNotice)).one()
    assert notice.state is NoticeState.FAILED and notice.attempts == 4
    assert notice.address == "t***@example.jp" and "unreachable" in notice.last_error


def test_notifying_twice_sends_once(sqlite_database: Database, proofing_settings: Settings, smtp_sink) -> None:
    settings = proofing_settings.with_overrides(delivery="smtp,outbox", smtp_port=smtp_sink.port)
    event = HolderEvent(EventKind.RENEWAL, "proc-3")
    first = notify_holder(CONTACTS[:1], event, db=sqlite_database, settings=settings)
    again = notify_holder(CONTACTS[:1], event, db=sqlite_database, settings=settings)
    assert first.notice_ids == again.notice_ids and len(smtp_sink.messages) == 1


def test_no_channel_and_bad_contacts_fail_cleanly(sqlite_database: Database, proofing_settings: Settings) -> None:
    settings = proofing_settings.with_overrides(delivery="smtp")  # nobody serves mobile numbers
    contacts = [*CONTACTS[1:], Contact("mobile", "garbage"), "junk"]
    result = notify_holder(contacts, HolderEvent(EventKind.REVOCATION, "p"), db=sqlite_database, settings=settings)
    assert result.failed == 1 and result.invalid_contacts == 2
    assert notify_holder([], HolderEvent(EventKind.RENEWAL, "p2"), db=sqlite_database, settings=settings).sent == 0


def test_concurrent_workers_send_each_notice_once(database: Database, proofing_settings: Settings, smtp_sink) -> None:
    settings = proofing_settings.with_overrides(delivery="smtp", smtp_port=smtp_sink.port)
    notifier = Notifier(database, settings)
    contacts = [Contact.of("email", f"holder{i}@example.jp") for i in range(12)]
    queued = notifier.notify_holder(contacts, HolderEvent(EventKind.RENEWAL, "bulk"), deliver_now=False)
    assert queued.pending == 12
    barrier = threading.Barrier(3)
    reports = []

    def work() -> None:
        barrier.wait()
        reports.append(deliver_pending(db=database, settings=settings))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r.sent for r in reports) == 12
    assert sorted(r[0] for r in smtp_sink.recipients) == sorted(c.address for c in contacts)


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_kind_has_a_message(kind: EventKind) -> None:
    from jpki_remote.proofing.messages import notice_message

    message = notice_message(HolderEvent(kind, "p-1", pin_kind="residence"))
    assert "p-1" in message.body and message.body.splitlines()[-1].startswith("On ")
    assert message.sms and len(message.sms) < 140


def test_a_loss_report_notice_says_what_happened_and_what_to_do() -> None:
    """Not just "certificates revoked": the card was reported lost, it can no longer be used remotely, and what to do
    if the holder did not report it (the municipal office, with the reference) — in Japanese and English."""
    from jpki_remote.proofing.messages import notice_message

    message = notice_message(HolderEvent(EventKind.LOSS_REPORT, "f" * 32, channel="online"))
    assert "紛失" in message.subject and "Loss" in message.subject
    for text in (message.body, message.sms):
        assert "紛失" in text and "失効" in text and "市区町村窓口" in text and "f" * 32 in text
        assert "できません" in text  # no remote procedure with this card any more
    assert "ご自身で届け出ていない場合" in message.body and "届け出ていない場合" in message.sms
    english = message.body.splitlines()[-1]
    assert "loss report" in english and "no longer be used" in english and "If you did not report it" in english
    assert "renewed" not in message.body and "お手続き完了" not in message.subject
