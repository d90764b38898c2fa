"""Delivery of security codes and holder notices behind one interface, ``Deliverer.send(contact, message)``.

Channels: :class:`~jpki_remote.proofing.delivery.smtp.SmtpDeliverer` (e-mail), :class:`~jpki_remote.proofing.
delivery.sms.SmsGatewayDeliverer` (SMS over an HTTP gateway) and the development outbox
(:class:`~jpki_remote.proofing.delivery.outbox.DevOutboxDeliverer`). :func:`deliverer_from_settings` wires them
from ``JPKI_DELIVERY``. Contacts are shown only masked (``090-****-5678``, ``t***@example.jp``).
"""

from jpki_remote.proofing.delivery.base import (
    EMAIL,
    MOBILE,
    Contact,
    ContactError,
    Deliverer,
    DeliveryError,
    Message,
    mask_contact,
)
from jpki_remote.proofing.delivery.routing import RoutingDeliverer, deliverer_from_settings

__all__ = [
    "EMAIL",
    "MOBILE",
    "Contact",
    "ContactError",
    "Deliverer",
    "DeliveryError",
    "Message",
    "RoutingDeliverer",
    "deliverer_from_settings",
    "mask_contact",
]
