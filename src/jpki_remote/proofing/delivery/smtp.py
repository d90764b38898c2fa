"""E-mail over SMTP with the standard library (``smtplib``): optional STARTTLS and login, UTF-8 body."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from jpki_remote.proofing.delivery.base import EMAIL, Contact, DeliveryError, Message

log = logging.getLogger(__name__)


class SmtpDeliverer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        starttls: bool = False,
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.password, self.timeout = starttls, username, password, timeout

    def _compose(self, contact: Contact, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = contact.address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.text_for(EMAIL), charset="utf-8")
        return mail

    def send(self, contact: Contact, message: Message) -> None:
        if contact.kind != EMAIL:
            raise DeliveryError("SMTP delivers only to e-mail contacts", retryable=False)
        mail = self._compose(contact, message)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _msg in exc.recipients.values()]
            retryable = all(400 <= code < 500 for code in codes)
            raise DeliveryError(f"mail server refused the recipient (SMTP {codes})", retryable=retryable) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"mail server answered {exc.smtp_code}", retryable=400 <= exc.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"mail server unreachable ({type(exc).__name__})", retryable=True) from None
        log.info("e-mail handed to %s:%d for %s", self.host, self.port, contact.masked)
