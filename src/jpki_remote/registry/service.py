"""Registry operations on one SQLAlchemy session (the caller owns the transaction).

Every function validates its input and raises :class:`RegistryError` with a stable ``code`` on bad input, so the API
and the counter pages can show a precise message. Changes to the basic four facts bump ``Resident.facts_version``;
their consequences for certificates (revocation) are carried out by the registry-event procedure in
:mod:`jpki_remote.procedures`, which the caller starts after :func:`record_event`.
"""

from __future__ import annotations

import re
import secrets
import struct
import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jpki_remote.registry.models import (
    Card,
    CardState,
    Contact,
    ContactKind,
    EnrolledFace,
    Municipality,
    RegistryEvent,
    RegistryEventKind,
    Resident,
    ResidentStatus,
    Sex,
)

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$"
)
_MOBILE = re.compile(r"^(?:\+81|0)[789]0\d{8}$")
_CARD_ID = re.compile(r"^[0-9A-Z]{8,32}$")


class RegistryError(ValueError):
    """Bad input or a state that forbids the operation. ``code`` is stable (API error codes use it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def now() -> datetime:
    return datetime.now(UTC)


def municipality_check_digit(code5: str) -> str:
    """The check digit of a 5-digit 全国地方公共団体コード (weights 6..2, modulus 11)."""
    if not re.fullmatch(r"\d{5}", code5):
        raise RegistryError(
            "municipality_code_invalid", f"a municipality code has 5 digits (+1 check digit): {code5!r}"
        )
    total = sum(int(d) * w for d, w in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


def normalise_municipality_code(code: str) -> str:
    """Accept the 5-digit code or the 6-digit code with its check digit; return the 6-digit form."""
    code = code.strip()
    if re.fullmatch(r"\d{6}", code):
        if municipality_check_digit(code[:5]) != code[5]:
            raise RegistryError("municipality_code_invalid", f"wrong check digit in municipality code {code}")
        return code
    return code + municipality_check_digit(code)


def create_municipality(session: Session, code: str, name: str, prefecture: str) -> Municipality:
    code6 = normalise_municipality_code(code)
    if not name.strip() or not prefecture.strip():
        raise RegistryError("municipality_invalid", "a municipality needs a name and a prefecture")
    if session.get(Municipality, code6) is not None:
        raise RegistryError("municipality_exists", f"municipality {code6} already exists")
    municipality = Municipality(code=code6, name=name.strip(), prefecture=prefecture.strip(), created_at=now())
    session.add(municipality)
    session.flush()
    return municipality


def _clean_text(value: str, what: str, limit: int) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if not value or len(value) > limit or any(unicodedata.category(c) == "Cc" for c in value):
        raise RegistryError("resident_invalid", f"{what} must be 1–{limit} printable characters")
    return value


def add_resident(
    session: Session,
    municipality_code: str,
    *,
    family_name: str,
    given_name: str,
    address: str,
    birth_date: date,
    sex: int,
    name_kana: str = "",
    today: date | None = None,
) -> Resident:
    code6 = normalise_municipality_code(municipality_code)
    if session.get(Municipality, code6) is None:
        raise RegistryError("municipality_unknown", f"no municipality {code6}")
    if birth_date > (today or date.today()):
        raise RegistryError("resident_invalid", "the birth date lies in the future")
    if sex not in {s.value for s in Sex}:
        raise RegistryError("resident_invalid", "sex is an ISO 5218 code: 0, 1, 2 or 9")
    stamp = now()
    resident = Resident(
        id=secrets.token_hex(16),
        municipality_code=code6,
        family_name=_clean_text(family_name, "family name", 100),
        given_name=_clean_text(given_name, "given name", 100),
        name_kana=unicodedata.normalize("NFC", name_kana).strip()[:200],
        address=_clean_text(address, "address", 500),
        birth_date=birth_date,
        sex=int(sex),
        status=ResidentStatus.ACTIVE,
        facts_version=1,
        created_at=stamp,
        updated_at=stamp,
    )
    session.add(resident)
    session.flush()
    return resident


def get_resident(session: Session, resident_id: str) -> Resident:
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise RegistryError("resident_unknown", "no such resident")
    return resident


def validate_card_id(card_id: str) -> str:
    if not isinstance(card_id, str) or not _CARD_ID.fullmatch(card_id):
        raise RegistryError("card_id_invalid", "a card id is 8–32 characters of 0–9 and A–Z")
    return card_id


def register_card(
    session: Session,
    *,
    card_id: str,
    resident_id: str,
    card_expiry: date,
    diversification_data: bytes,
    issuer_key_version: int = 1,
    card_public_key_der: bytes | None = None,
) -> Card:
    """Record a newly personalised card. A resident holds at most one card that is not revoked or lost."""
    validate_card_id(card_id)
    resident = get_resident(session, resident_id)
    if resident.status is not ResidentStatus.ACTIVE:
        raise RegistryError("resident_not_active", "cards are issued only to residents in the registry")
    if session.get(Card, card_id) is not None:
        raise RegistryError("card_exists", f"card {card_id} is already registered")
    if not 1 <= len(diversification_data) <= 32:
        raise RegistryError("card_invalid", "diversification data is 1–32 bytes")
    live = session.scalars(
        select(Card).where(Card.resident_id == resident_id, Card.state.in_([CardState.ACTIVE, CardState.REMOTE_LOCKED]))
    ).first()
    if live is not None:
        raise RegistryError("resident_has_card", "the resident already holds a valid card; revoke it first")
    card = Card(
        card_id=card_id,
        resident_id=resident_id,
        municipality_code=resident.municipality_code,
        card_expiry=card_expiry,
        state=CardState.ACTIVE,
        state_reason="",
        issued_at=now(),
        issuer_key_version=issuer_key_version,
        diversification_data=bytes(diversification_data),
        card_public_key_der=card_public_key_der,
    )
    session.add(card)
    session.flush()
    return card


def get_card(session: Session, card_id: str, *, for_update: bool = False) -> Card | None:
    """The card row, or None. ``for_update`` locks the row (PostgreSQL) for the rest of the transaction."""
    if not isinstance(card_id, str) or not _CARD_ID.fullmatch(card_id):
        return None
    stmt = select(Card).where(Card.card_id == card_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def set_card_state(session: Session, card_id: str, state: CardState, reason: str) -> Card:
    card = get_card(session, card_id, for_update=True)
    if card is None:
        raise RegistryError("card_unknown", "no such card")
    if card.state in (CardState.LOST, CardState.REVOKED) and state in (CardState.ACTIVE, CardState.REMOTE_LOCKED):
        raise RegistryError("card_final", f"a {card.state.value} card cannot become {state.value} again")
    card.state = state
    card.state_reason = reason[:200]
    session.flush()
    return card


def set_current_certificates(
    session: Session, card_id: str, *, auth_serial: str | None, sign_serial: str | None, facts_version: int | None
) -> None:
    card = get_card(session, card_id, for_update=True)
    if card is None:
        raise RegistryError("card_unknown", "no such card")
    card.auth_cert_serial = auth_serial
    card.sign_cert_serial = sign_serial
    card.sign_cert_facts_version = facts_version if sign_serial else None
    session.flush()


def normalise_contact(kind: ContactKind | str, address: str) -> tuple[ContactKind, str]:
    try:
        kind = ContactKind(kind)
    except ValueError:
        raise RegistryError("contact_invalid", "a contact is 'email' or 'mobile'") from None
    if not isinstance(address, str):
        raise RegistryError("contact_invalid", "a contact address is text")
    address = address.strip()
    if kind is ContactKind.EMAIL:
        if len(address) > 320 or not _EMAIL.fullmatch(address):
            raise RegistryError("contact_invalid", "not an e-mail address")
        local, _, domain = address.rpartition("@")
        return kind, f"{local}@{domain.lower()}"
    digits = re.sub(r"[\s()-]", "", address)
    if not _MOBILE.fullmatch(digits):
        raise RegistryError("contact_invalid", "not a Japanese mobile number (070/080/090…)")
    if digits.startswith("0"):
        digits = "+81" + digits[1:]
    return kind, digits


def add_contact(
    session: Session, resident_id: str, kind: ContactKind | str, address: str, *, verified: bool = False
) -> Contact:
    get_resident(session, resident_id)
    kind, address = normalise_contact(kind, address)
    existing = session.scalars(
        select(Contact).where(Contact.resident_id == resident_id, Contact.kind == kind, Contact.address == address)
    ).first()
    if existing is not None:
        existing.verified = existing.verified or verified
        session.flush()
        return existing
    contact = Contact(resident_id=resident_id, kind=kind, address=address, verified=verified, created_at=now())
    session.add(contact)
    session.flush()
    return contact


def contacts_of(session: Session, resident_id: str, *, verified_only: bool = False) -> list[Contact]:
    stmt = select(Contact).where(Contact.resident_id == resident_id).order_by(Contact.id)
    if verified_only:
        stmt = stmt.where(Contact.verified.is_(True))
    return list(session.scalars(stmt))


def enrol_face(session: Session, card_id: str, encoding: Sequence[float], model: str) -> EnrolledFace:
    card = get_card(session, card_id)
    if card is None:
        raise RegistryError("card_unknown", "no such card")
    values = [float(v) for v in encoding]
    if not 16 <= len(values) <= 4096 or any(v != v for v in values):  # NaN check
        raise RegistryError("face_invalid", "a face encoding is a vector of 16–4096 finite numbers")
    blob = struct.pack(f"<{len(values)}d", *values)
    row = session.get(EnrolledFace, card_id)
    if row is None:
        row = EnrolledFace(card_id=card_id, resident_id=card.resident_id, model=model, encoding=blob, enrolled_at=now())
        session.add(row)
    else:
        row.model, row.encoding, row.enrolled_at = model, blob, now()
    session.flush()
    return row


def enrolled_encoding(session: Session, card_id: str) -> tuple[str, list[float]] | None:
    row = session.get(EnrolledFace, card_id)
    if row is None:
        return None
    count = len(row.encoding) // 8
    return row.model, list(struct.unpack(f"<{count}d", row.encoding))


def delete_enrolled_face(session: Session, card_id: str) -> bool:
    row = session.get(EnrolledFace, card_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


_FACT_FIELDS = {
    RegistryEventKind.ADDRESS_CHANGED: {"address"},
    RegistryEventKind.MOVED_OUT: {"address"},
    RegistryEventKind.NAME_CHANGED: {"family_name", "given_name", "name_kana"},
    RegistryEventKind.SEX_CHANGED: {"sex"},
    RegistryEventKind.BIRTH_DATE_CORRECTED: {"birth_date"},
    RegistryEventKind.DECEASED: set(),
}


def record_event(
    session: Session,
    resident_id: str,
    kind: RegistryEventKind | str,
    changes: dict[str, object] | None = None,
    *,
    occurred_on: date | None = None,
) -> RegistryEvent:
    """Apply a registry change to the resident and record it. The certificate consequences are a procedure."""
    try:
        kind = RegistryEventKind(kind)
    except ValueError:
        raise RegistryError("event_invalid", f"unknown registry event {kind!r}") from None
    resident = get_resident(session, resident_id)
    if resident.status is not ResidentStatus.ACTIVE:
        raise RegistryError("resident_not_active", "the resident is no longer active in this registry")
    changes = dict(changes or {})
    unknown = set(changes) - _FACT_FIELDS[kind]
    if unknown:
        raise RegistryError("event_invalid", f"{kind.value} cannot change {', '.join(sorted(unknown))}")
    applied: dict[str, object] = {}
    for name, value in changes.items():
        if name == "birth_date":
            value = value if isinstance(value, date) else _parse_date(value)
            resident.birth_date = value
            applied[name] = value.isoformat()
        elif name == "sex":
            if value not in {s.value for s in Sex}:
                raise RegistryError("event_invalid", "sex is an ISO 5218 code")
            resident.sex = int(value)  # type: ignore[arg-type]
            applied[name] = int(value)  # type: ignore[arg-type]
        else:
            text = _clean_text(str(value), name, 500) if name != "name_kana" else str(value).strip()[:200]
            setattr(resident, name, text)
            applied[name] = text
    if kind is RegistryEventKind.MOVED_OUT:
        resident.status = ResidentStatus.MOVED_OUT
    elif kind is RegistryEventKind.DECEASED:
        resident.status = ResidentStatus.DECEASED
    elif not applied:
        raise RegistryError("event_invalid", f"{kind.value} needs the new value(s)")
    resident.facts_version += 1
    resident.updated_at = now()
    event = RegistryEvent(
        resident_id=resident_id,
        kind=kind,
        changes=applied,
        occurred_on=occurred_on or date.today(),
        recorded_at=now(),
    )
    session.add(event)
    session.flush()
    return event


def _parse_date(value: object) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise RegistryError("event_invalid", f"not a date (YYYY-MM-DD): {value!r}") from None


def age_on(birth_date: date, day: date) -> int:
    """Completed years of age on ``day`` (年齢計算ニ関スル法律; the rules are :func:`jpki_remote.validity.age_on`:
    from 00:00 on the birthday, a 29 February birth ages on 1 March in non-leap years). Raises ``ValueError`` for a
    day before the birth date."""
    from jpki_remote.validity import age_on as exact_age_on

    return exact_age_on(birth_date, day)
