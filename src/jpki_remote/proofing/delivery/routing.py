"""Which deliverer serves which contact kind, from ``Settings.delivery`` (``outbox``, ``smtp``, ``sms``, combined
with commas): ``smtp`` serves e-mail, ``sms`` serves mobile numbers, ``outbox`` serves whatever is left (development).
A kind nobody serves is a non-retryable :class:`DeliveryError`."""

from __future__ import annotations

from collections.abc import Mapping

from jpki_remote.config import Settings
from jpki_remote.proofing.delivery.base import EMAIL, MOBILE, Contact, Deliverer, DeliveryError, Message
from jpki_remote.store import Database

MODES = ("outbox", "smtp", "sms")


class RoutingDeliverer:
    def __init__(self, by_kind: Mapping[str, Deliverer]) -> None:
        self.by_kind = dict(by_kind)

    def send(self, contact: Contact, message: Message) -> None:
        deliverer = self.by_kind.get(contact.kind)
        if deliverer is None:
            raise DeliveryError(f"no delivery channel is configured for {contact.kind} contacts", retryable=False)
        deliverer.send(contact, message)


def deliverer_from_settings(settings: Settings, db: Database) -> RoutingDeliverer:
    modes = {m.strip().lower() for m in settings.delivery.split(",") if m.strip()}
    unknown = modes - set(MODES)
    if unknown or not modes:
        raise ValueError(f"JPKI_DELIVERY={settings.delivery!r}: use outbox, smtp, sms or a comma-separated mix")
    by_kind: dict[str, Deliverer] = {}
    if "outbox" in modes:
        from jpki_remote.proofing.delivery.outbox import DevOutboxDeliverer

        outbox = DevOutboxDeliverer(db)
        by_kind = {EMAIL: outbox, MOBILE: outbox}
    if "smtp" in modes:
        from jpki_remote.proofing.delivery.smtp import SmtpDeliverer

        by_kind[EMAIL] = SmtpDeliverer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.delivery_timeout_seconds,
        )
    if "sms" in modes:
        if not settings.sms_gateway_url:
            raise ValueError("JPKI_DELIVERY includes sms but JPKI_SMS_GATEWAY_URL is empty")
        from jpki_remote.proofing.delivery.sms import SmsGatewayDeliverer

        by_kind[MOBILE] = SmsGatewayDeliverer(
            settings.sms_gateway_url,
            settings.sms_gateway_token,
            retries=settings.sms_gateway_retries,
            timeout=settings.delivery_timeout_seconds,
        )
    return RoutingDeliverer(by_kind)
