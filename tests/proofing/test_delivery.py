"""Delivery channels against real local servers: aiosmtpd for SMTP, a loopback HTTP fake for the SMS gateway;
contact validation and masking; routing from settings."""

from __future__ import annotations

import re

import pytest

from jpki_remote.config import Settings
from jpki_remote.proofing.codes import SecurityCodes
from jpki_remote.proofing.delivery import Contact, ContactError, DeliveryError, Message, deliverer_from_settings
from jpki_remote.proofing.delivery.outbox import DevOutboxDeliverer, dev_outbox
from jpki_remote.proofing.delivery.sms import SmsGatewayDeliverer
from jpki_remote.proofing.delivery.smtp import SmtpDeliverer
from jpki_remote.proofing.messages import code_message
from jpki_remote.store import Database

MAIL = Contact.of("email", "Taro.Yamada@Example.JP")
PHONE = Contact.of("mobile", "090-1234-5678")


@pytest.mark.parametrize(
    ("kind", "raw", "address", "masked"),
    [
        ("mobile", "090-1234-5678", "+819012345678", "090-****-5678"),
        ("mobile", "０８０ １１１１ ２２２２", "+818011112222", "080-****-2222"),
        ("mobile", "+81 70 3333 4444", "+817033334444", "070-****-4444"),
        ("email", "taro@example.jp", "taro@example.jp", "t***@example.jp"),
        ("email", "Hanako.S@MAIL.Example.COM", "Hanako.S@mail.example.com", "H***@mail.example.com"),
    ],
)
def test_contacts_are_normalised_and_masked(kind: str, raw: str, address: str, masked: str) -> None:
    contact = Contact.of(kind, raw)
    assert contact.address == address
    assert contact.masked == masked


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("mobile", "03-1234-5678"),
        ("mobile", "090-1234-567"),
        ("email", "no-at-sign"),
        ("email", "a@b.jp\r\nBcc: victim@example.com"),
        ("fax", "0312345678"),
        ("email", None),
    ],
)
def test_bad_contacts_are_refused(kind: str, raw: object) -> None:
    with pytest.raises(ContactError):
        Contact.of(kind, raw)  # type: ignore[arg-type]


def test_contact_from_a_registry_like_row() -> None:
    class Row:
        kind = type("K", (), {"value": "mobile"})()
        address = "+819012345678"

    assert Contact.of(Row()) == PHONE


def test_code_message_is_japanese_first_with_an_english_line() -> None:
    message = code_message("123456", "renewal", 600)
    lines = message.body.splitlines()
    assert "セキュリティーコード" in lines[0] and "123456" in lines[0]
    assert lines[-1].startswith("Your JPKI security code is 123456")
    assert "10分" in message.body and "電子証明書の更新" in message.body
    assert "123456" in (message.sms or "") and len(message.sms or "") < 140


def test_smtp_delivers_to_a_real_local_server(smtp_sink) -> None:
    deliverer = SmtpDeliverer("127.0.0.1", smtp_sink.port, "jpki-remote@city.example.jp", timeout=5)
    deliverer.send(MAIL, code_message("654321", "pin_reset", 600))
    assert smtp_sink.recipients == [["Taro.Yamada@example.jp"]]
    mail = smtp_sink.messages[0]
    assert mail["From"] == "jpki-remote@city.example.jp"
    assert "セキュリティーコード" in mail["Subject"]
    body = mail.get_content()
    assert "654321" in body and "暗証番号の初期化・再設定" in body
    assert mail["Auto-Submitted"] == "auto-generated"


def test_smtp_down_is_a_retryable_error(smtp_port_down) -> None:
    deliverer = SmtpDeliverer("127.0.0.1", smtp_port_down.port, "x@example.jp", timeout=2)
    with pytest.raises(DeliveryError) as failed:
        deliverer.send(MAIL, Message("s", "b"))
    assert failed.value.retryable


def test_smtp_refuses_a_phone_contact() -> None:
    with pytest.raises(DeliveryError) as failed:
        SmtpDeliverer("127.0.0.1", 1, "x@example.jp").send(PHONE, Message("s", "b"))
    assert not failed.value.retryable


def test_security_code_over_smtp_end_to_end(smtp_sink, sqlite_database: Database, proofing_settings: Settings) -> None:
    settings = proofing_settings.with_overrides(delivery="smtp", smtp_port=smtp_sink.port, smtp_host="127.0.0.1")
    codes = SecurityCodes(sqlite_database, settings)
    issued = codes.issue("proc-mail", "renewal", MAIL)
    assert issued.contact_masked == "T***@example.jp"
    code = re.search(r"\b(\d{6})\b", smtp_sink.messages[0].get_content()).group(1)
    assert codes.verify("proc-mail", "renewal", code).accepted
    assert dev_outbox(sqlite_database) == []  # nothing went to the development outbox


def test_sms_gateway_posts_json_with_bearer_token(sms_gateway) -> None:
    deliverer = SmsGatewayDeliverer(sms_gateway.url, "s3cret-token", sleep=lambda _s: None)
    deliverer.send(PHONE, code_message("111222", "renewal", 600))
    (request,) = sms_gateway.requests
    assert request["to"] == "+819012345678"
    assert "111222" in request["text"] and "JPKI code 111222" in request["text"]
    assert sms_gateway.headers[0]["Authorization"] == "Bearer s3cret-token"
    assert sms_gateway.headers[0]["Idempotency-Key"] == request["reference"]


def test_sms_gateway_retries_5xx_with_backoff(sms_gateway) -> None:
    sms_gateway.statuses = [503, 502]
    waits: list[float] = []
    SmsGatewayDeliverer(sms_gateway.url, "t", retries=3, backoff_seconds=0.5, sleep=waits.append).send(
        PHONE, Message("s", "body")
    )
    assert len(sms_gateway.requests) == 3
    assert len({r["reference"] for r in sms_gateway.requests}) == 1  # same idempotency key on every try
    assert len(waits) == 2 and 0.5 <= waits[0] < 0.7 and 1.0 <= waits[1] < 1.3


def test_sms_gateway_gives_up_after_the_retries(sms_gateway) -> None:
    sms_gateway.statuses = [500, 500, 500]
    with pytest.raises(DeliveryError) as failed:
        SmsGatewayDeliverer(sms_gateway.url, "t", retries=2, sleep=lambda _s: None).send(PHONE, Message("s", "b"))
    assert failed.value.retryable and "3 tries" in str(failed.value)
    assert len(sms_gateway.requests) == 3


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (401, False), (422, False), (429, True)])
def test_sms_gateway_does_not_retry_4xx(sms_gateway, status: int, retryable: bool) -> None:
    sms_gateway.statuses = [status]
    with pytest.raises(DeliveryError) as failed:
        SmsGatewayDeliverer(sms_gateway.url, "t", retries=3, sleep=lambda _s: None).send(PHONE, Message("s", "b"))
    assert len(sms_gateway.requests) == 1
    assert failed.value.retryable is retryable


def test_sms_gateway_unreachable_is_retried_then_retryable(closed_port: int) -> None:
    waits: list[float] = []
    deliverer = SmsGatewayDeliverer(f"http://127.0.0.1:{closed_port}/sms", "t", retries=2, sleep=waits.append)
    with pytest.raises(DeliveryError) as failed:
        deliverer.send(PHONE, Message("s", "b"))
    assert failed.value.retryable and len(waits) == 2


def test_dev_outbox_keeps_messages_for_the_demo(sqlite_database: Database) -> None:
    outbox = DevOutboxDeliverer(sqlite_database)
    outbox.send(PHONE, code_message("999000", "renewal", 600))
    outbox.send(MAIL, Message("subject", "mail body"))
    newest, older = dev_outbox(sqlite_database)
    assert newest.channel == "email" and newest.body == "mail body"
    assert older.address == "+819012345678" and "999000" in older.body
    assert [e.id for e in dev_outbox(sqlite_database, address="090-1234-5678")] == [older.id]


def test_routing_from_settings(sqlite_database: Database, proofing_settings: Settings, smtp_sink, sms_gateway):
    settings = proofing_settings.with_overrides(
        delivery="smtp,sms", smtp_port=smtp_sink.port, sms_gateway_url=sms_gateway.url, sms_gateway_token="tok"
    )
    router = deliverer_from_settings(settings, sqlite_database)
    router.send(MAIL, Message("s", "to the mail server"))
    router.send(PHONE, Message("s", "to the gateway"))
    assert smtp_sink.messages[0].get_content().strip() == "to the mail server"
    assert sms_gateway.requests[0]["text"] == "to the gateway"
    only_mail = deliverer_from_settings(proofing_settings.with_overrides(delivery="smtp"), sqlite_database)
    with pytest.raises(DeliveryError) as failed:
        only_mail.send(PHONE, Message("s", "b"))
    assert not failed.value.retryable
    for bad in ("pigeon", "", "sms"):  # unknown mode, nothing, sms without a gateway URL
        with pytest.raises(ValueError):
            deliverer_from_settings(proofing_settings.with_overrides(delivery=bad), sqlite_database)
