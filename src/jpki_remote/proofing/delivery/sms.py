"""SMS through an HTTP gateway: ``POST <url>`` with JSON ``{"to": "+8190…", "text": "…", "reference": "…"}`` and
``Authorization: Bearer <token>``.

Any 2xx is success. 5xx answers and connection errors/timeouts are retried with exponential backoff (0.5 s, 1 s,
2 s … plus jitter), with the same ``Idempotency-Key`` header so a gateway can drop duplicates. A 4xx is not retried —
the request itself is wrong; 408 and 429 are reported as retryable so the notification worker tries again later.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

import httpx

from jpki_remote.proofing.delivery.base import MOBILE, Contact, DeliveryError, Message

log = logging.getLogger(__name__)


class SmsGatewayDeliverer:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the SMS gateway URL must start with http:// or https://")
        self.url, self.token, self.retries = url, token, max(0, retries)
        self.backoff_seconds, self.timeout, self._sleep = backoff_seconds, timeout, sleep

    def send(self, contact: Contact, message: Message) -> None:
        if contact.kind != MOBILE:
            raise DeliveryError("the SMS gateway delivers only to mobile numbers", retryable=False)
        reference = secrets.token_hex(12)
        payload = {"to": contact.address, "text": message.text_for(MOBILE), "reference": reference}
        headers = {"Idempotency-Key": reference, "User-Agent": "jpki-remote"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        last = "no attempt"
        with httpx.Client(timeout=self.timeout) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    self._sleep(self.backoff_seconds * 2 ** (attempt - 1) * (1 + secrets.randbelow(250) / 1000))
                try:
                    response = client.post(self.url, json=payload, headers=headers)
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}"
                    continue
                if response.is_success:
                    log.info("SMS accepted by the gateway for %s (try %d)", contact.masked, attempt + 1)
                    return
                if 400 <= response.status_code < 500:
                    retryable = response.status_code in (408, 429)
                    raise DeliveryError(
                        f"SMS gateway refused the message: HTTP {response.status_code}", retryable=retryable
                    )
                last = f"HTTP {response.status_code}"
        raise DeliveryError(f"SMS gateway failed after {self.retries + 1} tries ({last})", retryable=True)
