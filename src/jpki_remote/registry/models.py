"""Registry tables (住民基本台帳 side of the system): municipalities, residents, cards, contacts, enrolled face
encodings, registry events and the municipality<->CA notifications of the legal issuance flow.

What is deliberately *not* stored:

* **the My Number (個人番号)**. No procedure of this system looks a holder up by it or compares it: cards are found by
  card id, residents by an opaque random id. The number is needed only once, to personalise a new card's text AP at
  the counter; it is passed from the counter form to the card and then dropped. Not storing it keeps this database out
  of the strictest class of 特定個人情報 handling and removes the most damaging item a breach could leak.
* **face images**. Only the 128-dimension encoding of the photo enrolled at issuance is kept (for comparison with live
  captures when the card photo alone is not enough, and for loss reports without the card). The card itself carries
  the issuer-signed photo; a second copy of the image here would only add exposure. The encoding is still biometric
  data: it is deleted with the card record or on the holder's request.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jpki_remote.store.database import Base


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=32, values_callable=lambda members: [m.value for m in members])


class ResidentStatus(enum.StrEnum):
    ACTIVE = "active"
    MOVED_OUT = "moved_out"  # 転出: no longer in this municipality's registry
    DECEASED = "deceased"


class Sex(enum.IntEnum):
    """ISO 5218 / JIS X 0303 codes, as on the card's text AP."""

    UNKNOWN = 0
    MALE = 1
    FEMALE = 2
    NOT_APPLICABLE = 9


class CardState(enum.StrEnum):
    ACTIVE = "active"
    REMOTE_LOCKED = "remote_locked"  # card works, but no remote (kiosk/online) procedure is accepted for it
    LOST = "lost"  # reported lost: certificates revoked, card unusable for every procedure
    REVOKED = "revoked"  # card withdrawn (death, replacement, return)


class ContactKind(enum.StrEnum):
    EMAIL = "email"
    MOBILE = "mobile"


class RegistryEventKind(enum.StrEnum):
    ADDRESS_CHANGED = "address_changed"  # 転居 within the municipality
    MOVED_OUT = "moved_out"  # 転出
    NAME_CHANGED = "name_changed"
    SEX_CHANGED = "sex_changed"
    BIRTH_DATE_CORRECTED = "birth_date_corrected"
    DECEASED = "deceased"


class NotificationKind(enum.StrEnum):
    ISSUANCE_REQUEST = "issuance_request"  # 市町村長 -> 機構: application contents + public keys (法第3条第5項)
    ISSUANCE_RESULT = (
        "issuance_result"  # 機構 -> 市町村長: the issued certificates, encrypted (法第3条第6項, 規則第9条)
    )
    REVOCATION_NOTICE = "revocation_notice"  # 市町村長 -> 機構: registry change / loss / request


class Municipality(Base):
    __tablename__ = "registry_municipalities"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)  # 全国地方公共団体コード, 6 digits incl. check digit
    name: Mapped[str] = mapped_column(String(100))
    prefecture: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Resident(Base):
    __tablename__ = "registry_residents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # opaque random reference, never the My Number
    municipality_code: Mapped[str] = mapped_column(ForeignKey("registry_municipalities.code"), index=True)
    family_name: Mapped[str] = mapped_column(String(100))
    given_name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(Text)
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[int] = mapped_column(Integer)
    status: Mapped[ResidentStatus] = mapped_column(_enum(ResidentStatus), index=True)
    # Incremented whenever one of the basic four facts changes; a signature certificate records the version it was
    # issued for, so "facts unchanged since issuance" is one comparison.
    facts_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def full_name(self) -> str:
        return f"{self.family_name}\u3000{self.given_name}"


class Card(Base):
    __tablename__ = "registry_cards"
    __table_args__ = (Index("ix_registry_cards_expiry", "card_expiry"),)

    card_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the card's serial (common AP)
    resident_id: Mapped[str] = mapped_column(ForeignKey("registry_residents.id"), index=True)
    municipality_code: Mapped[str] = mapped_column(ForeignKey("registry_municipalities.code"))
    card_expiry: Mapped[date] = mapped_column(Date)
    state: Mapped[CardState] = mapped_column(_enum(CardState), index=True)
    state_reason: Mapped[str] = mapped_column(String(200), default="")
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Issuer secure messaging: the per-card keys are diversified from the issuer master key with this data.
    issuer_key_version: Mapped[int] = mapped_column(Integer, default=1)
    diversification_data: Mapped[bytes] = mapped_column(LargeBinary)
    # The surface AP's card key (SubjectPublicKeyInfo DER), recorded at personalisation: proves possession without PIN.
    card_public_key_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Certificates currently active on the card (CA serials, lower-case hex); None = none on the card.
    auth_cert_serial: Mapped[str | None] = mapped_column(String(48))
    sign_cert_serial: Mapped[str | None] = mapped_column(String(48))
    sign_cert_facts_version: Mapped[int | None] = mapped_column(Integer)


class Contact(Base):
    __tablename__ = "registry_contacts"
    __table_args__ = (UniqueConstraint("resident_id", "kind", "address", name="uq_registry_contacts_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("registry_residents.id"), index=True)
    kind: Mapped[ContactKind] = mapped_column(_enum(ContactKind))
    address: Mapped[str] = mapped_column(String(320))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EnrolledFace(Base):
    """The face encoding of the photo enrolled at issuance (the image itself is not kept)."""

    __tablename__ = "registry_enrolled_faces"

    card_id: Mapped[str] = mapped_column(ForeignKey("registry_cards.card_id"), primary_key=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("registry_residents.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))  # encoder name + version, comparisons need the same one
    encoding: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float64 vector
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RegistryEvent(Base):
    __tablename__ = "registry_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("registry_residents.id"), index=True)
    kind: Mapped[RegistryEventKind] = mapped_column(_enum(RegistryEventKind))
    changes: Mapped[dict] = mapped_column(JSON, default=dict)  # field -> new value
    occurred_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The procedure that carries out the consequences (revocations); None until one is started.
    procedure_id: Mapped[str | None] = mapped_column(String(32), index=True)


class MessagingParty(Base):
    """A party of the municipality<->CA exchange and its messaging certificate (the peer's is pinned here)."""

    __tablename__ = "registry_messaging_parties"

    party: Mapped[str] = mapped_column(String(64), primary_key=True)  # "jlis" or "municipality:131032"
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """One signed-and-encrypted message of the legal flow, as kept by one side (each message is kept twice)."""

    __tablename__ = "registry_notifications"
    __table_args__ = (
        UniqueConstraint("message_id", "held_by", name="uq_registry_notifications_copy"),
        Index("ix_registry_notifications_request", "request_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(32))
    held_by: Mapped[str] = mapped_column(String(64))  # the party keeping this copy
    sender: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(64))
    kind: Mapped[NotificationKind] = mapped_column(_enum(NotificationKind))
    request_id: Mapped[str] = mapped_column(String(64))
    cms_der: Mapped[bytes] = mapped_column(LargeBinary)  # CMS EnvelopedData(SignedData(JSON payload))
    sha256_hex: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
