"""The legal flow of issuance (法第3条第4項〜第7項, 施行規則第9条): municipality → CA → municipality, sealed.

1. the municipality (住所地市町村長), having verified the applicant and recorded the new public keys, sends the CA an
   **issuance request**: the application's contents (basic four facts) and the public keys (署名利用者検証符号);
2. the CA (機構) checks the message came from that municipality, issues the certificates and sends them back as an
   **issuance result**, encrypted as the ordinance requires;
3. the municipality checks the result came from the CA and writes the certificates to the card.

Every message is CMS sign-then-encrypt (:mod:`jpki_remote.registry.messaging`) and is kept by both sides
(``registry_notifications``, one row per side). Renewal follows the same flow: legally it is a new application
through the municipality. Each step is idempotent per ``request_id``: a retried request re-uses the stored request
message and the CA's issuance is idempotent per request id, so a retry never issues twice.

In this reference deployment one process plays both parties, each with its own messaging key; in production the
CA side runs at the CA and the two exchange these exact messages over the dedicated network (法第3条第8項).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from jpki_remote.registry.messaging import MessagingKey, MessagingKeyring, digest_hex, open_sealed, seal
from jpki_remote.registry.models import MessagingParty, Municipality, Notification, NotificationKind
from jpki_remote.store import Database

CA_PARTY = "jlis"


def municipality_party(code: str) -> str:
    return f"municipality:{code}"


@dataclass(frozen=True)
class HolderFacts:
    holder_ref: str  # opaque (the card id); no PII in the CA's index
    municipality_code: str
    prefecture: str
    city: str
    name: str
    address: str
    birth_date: date
    sex: int  # ISO 5218


@dataclass(frozen=True)
class IssuedCertificates:
    request_id: str
    auth_der: bytes
    sign_der: bytes | None

    @property
    def auth_serial(self) -> int:
        return x509.load_der_x509_certificate(self.auth_der).serial_number

    @property
    def sign_serial(self) -> int | None:
        return None if self.sign_der is None else x509.load_der_x509_certificate(self.sign_der).serial_number


class LegalFlowError(Exception):
    pass


def _spki(key: rsa.RSAPublicKey | None) -> str | None:
    if key is None:
        return None
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _load_spki(value: str | None) -> rsa.RSAPublicKey | None:
    if value is None:
        return None
    key = serialization.load_der_public_key(base64.b64decode(value))
    if not isinstance(key, rsa.RSAPublicKey):
        raise LegalFlowError("public keys are RSA")
    return key


class LegalFlow:
    def __init__(self, db: Database, ca: Any, keys_directory: Path, passphrase: str = "") -> None:
        self.db = db
        self.ca = ca
        self.keyring = MessagingKeyring(keys_directory, passphrase)

    # ---- parties --------------------------------------------------------------------------------------------
    def _party(self, party: str, display: str) -> MessagingKey:
        key = self.keyring.get_or_create(party, display)
        with self.db.session() as session:
            row = session.get(MessagingParty, party)
            if row is None:
                session.add(MessagingParty(party=party, certificate_der=key.certificate_der, created_at=_now()))
            elif row.certificate_der != key.certificate_der:
                raise LegalFlowError(f"the pinned messaging certificate of {party} differs from its key")
        return key

    def _pinned(self, party: str) -> x509.Certificate:
        with self.db.session() as session:
            row = session.get(MessagingParty, party)
            if row is None:
                raise LegalFlowError(f"no messaging certificate registered for {party}")
            return x509.load_der_x509_certificate(row.certificate_der)

    def _keep(
        self, message_id: str, sender: str, recipient: str, kind: NotificationKind, request_id: str, cms: bytes
    ) -> None:
        with self.db.session() as session:
            for holder in (sender, recipient):
                exists = session.scalars(
                    select(Notification).where(Notification.message_id == message_id, Notification.held_by == holder)
                ).first()
                if exists is None:
                    session.add(
                        Notification(
                            message_id=message_id,
                            held_by=holder,
                            sender=sender,
                            recipient=recipient,
                            kind=kind,
                            request_id=request_id,
                            cms_der=cms,
                            sha256_hex=digest_hex(cms),
                            created_at=_now(),
                        )
                    )

    def _stored(self, request_id: str, kind: NotificationKind, held_by: str) -> bytes | None:
        with self.db.session() as session:
            row = session.scalars(
                select(Notification).where(
                    Notification.request_id == request_id, Notification.kind == kind, Notification.held_by == held_by
                )
            ).first()
            return None if row is None else row.cms_der

    # ---- the flow -------------------------------------------------------------------------------------------
    def request_issuance(
        self,
        *,
        request_id: str,
        facts: HolderFacts,
        auth_public_key: rsa.RSAPublicKey,
        sign_public_key: rsa.RSAPublicKey | None,
        card_expiry: date,
    ) -> IssuedCertificates:
        """Run the whole exchange (idempotent per ``request_id``) and return the certificates."""
        town_party = municipality_party(facts.municipality_code)
        with self.db.session() as session:
            municipality = session.get(Municipality, facts.municipality_code)
            display = municipality.name if municipality else town_party
        town = self._party(town_party, display)
        jlis = self._party(CA_PARTY, "J-LIS")
        request = self._stored(request_id, NotificationKind.ISSUANCE_REQUEST, town_party)
        if request is None:
            payload = {
                "kind": NotificationKind.ISSUANCE_REQUEST.value,
                "request_id": request_id,
                "municipality_code": facts.municipality_code,
                "holder": {
                    "holder_ref": facts.holder_ref,
                    "prefecture": facts.prefecture,
                    "city": facts.city,
                    "name": facts.name,
                    "address": facts.address,
                    "birth_date": facts.birth_date.isoformat(),
                    "sex": facts.sex,
                },
                "card_expiry": card_expiry.isoformat(),
                "auth_public_key": _spki(auth_public_key),
                "sign_public_key": _spki(sign_public_key),
                "sent_at": _now().isoformat(),
            }
            request = seal(_json(payload), town, jlis.certificate)
            self._keep(
                secrets.token_hex(16), town_party, CA_PARTY, NotificationKind.ISSUANCE_REQUEST, request_id, request
            )
        result = self._stored(request_id, NotificationKind.ISSUANCE_RESULT, town_party)
        if result is None:
            result = self._ca_handle_request(request, town_party)
        content = json.loads(open_sealed(result, town, self._pinned(CA_PARTY)))
        if content.get("request_id") != request_id:
            raise LegalFlowError("the CA's result answers another request")
        sign = content.get("sign_certificate")
        return IssuedCertificates(
            request_id, base64.b64decode(content["auth_certificate"]), base64.b64decode(sign) if sign else None
        )

    def _ca_handle_request(self, request: bytes, town_party: str) -> bytes:
        """The CA's side: open and check the request, issue (idempotent), seal the result back."""
        from jpki_remote.ca.holder import HolderIdentity, Sex

        jlis = self.keyring.get_or_create(CA_PARTY, "J-LIS")
        content = json.loads(open_sealed(request, jlis, self._pinned(town_party)))
        if municipality_party(content["municipality_code"]) != town_party:
            raise LegalFlowError("a municipality may only apply for its own residents")
        holder = content["holder"]
        sex = {1: Sex.MALE, 2: Sex.FEMALE}.get(int(holder["sex"]), Sex.UNKNOWN)
        identity = HolderIdentity(
            holder_ref=holder["holder_ref"],
            municipality_code=content["municipality_code"],
            birth_date=date.fromisoformat(holder["birth_date"]),
            name=holder["name"],
            sex=sex,
            address=holder["address"],
            prefecture=holder["prefecture"],
            city=holder["city"],
        )
        auth_key = _load_spki(content["auth_public_key"])
        assert auth_key is not None
        pair = self.ca.issue_pair(
            content["request_id"],
            identity,
            auth_key,
            _load_spki(content["sign_public_key"]),
            date.fromisoformat(content["card_expiry"]),
        )
        payload = {
            "kind": NotificationKind.ISSUANCE_RESULT.value,
            "request_id": content["request_id"],
            "auth_certificate": base64.b64encode(pair.authentication.der).decode(),
            "sign_certificate": base64.b64encode(pair.signature.der).decode() if pair.signature else None,
            "issued_at": _now().isoformat(),
        }
        result = seal(_json(payload), jlis, self._pinned(town_party))
        self._keep(
            secrets.token_hex(16), CA_PARTY, town_party, NotificationKind.ISSUANCE_RESULT, content["request_id"], result
        )
        return result

    def notify_revocation(
        self, *, request_id: str, municipality_code: str, reason: str, serials: dict[str, str]
    ) -> None:
        """Municipality → CA notice of a revocation it initiated (registry change, loss, request): kept by both."""
        town_party = municipality_party(municipality_code)
        if self._stored(request_id, NotificationKind.REVOCATION_NOTICE, town_party) is not None:
            return
        town = self._party(town_party, town_party)
        jlis = self._party(CA_PARTY, "J-LIS")
        payload = {
            "kind": NotificationKind.REVOCATION_NOTICE.value,
            "request_id": request_id,
            "reason": reason,
            "serials": serials,
            "sent_at": _now().isoformat(),
        }
        message = seal(_json(payload), town, jlis.certificate)
        self._keep(secrets.token_hex(16), town_party, CA_PARTY, NotificationKind.REVOCATION_NOTICE, request_id, message)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()


def _now() -> datetime:
    return datetime.now(UTC)
