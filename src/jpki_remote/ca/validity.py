"""Validity of holder certificates (有効期間) as instants for ``notBefore``/``notAfter``.

The date rules themselves live in :mod:`jpki_remote.validity` (the project's one place for them: 5th birthday after
issuance, card-expiry cap, leap days, age and the 15-year limit); this module only adds what is CA-specific:

* The **issuance day** is the Japanese calendar day (JST, UTC+9, no daylight saving) of the issuance instant — a
  certificate signed at 20:00 UTC on 9 June is issued on 10 June.
* ``notBefore`` is the issuance instant (UTC, whole seconds); ``notAfter`` is the end of the last valid day,
  23:59:59 JST, in UTC.
* The CA's errors: :class:`~jpki_remote.ca.errors.ValidityError` (birth after issuance, expired card) and
  :class:`~jpki_remote.ca.errors.UnderAgeError` (signature certificate under 15, naming the first possible day —
  for a 29 February birth whose 15th birthday falls in a common year, 1 March).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from jpki_remote import validity as rules
from jpki_remote.ca.errors import UnderAgeError, ValidityError
from jpki_remote.ca.models import AuthorityKind

JST = rules.JST
YEARS_OF_VALIDITY = rules.DEFAULT_POLICY.certificate_birthdays
SIGNATURE_MINIMUM_AGE = rules.DEFAULT_POLICY.signature_min_age

# Re-exported for callers that imported them from here (same functions, same rules).
age_on = rules.age_on
birthday_in = rules.birthday_in_year
nth_birthday_after = rules.nth_birthday_after


def end_of_day_utc(day: date) -> datetime:
    """23:59:59 JST on ``day``, in UTC."""
    return rules.expiry_instant(day).astimezone(UTC)


@dataclass(frozen=True)
class Validity:
    not_before: datetime  # UTC, whole seconds
    not_after: datetime  # UTC, 23:59:59 JST of the last day
    capped_by_card: bool  # True when the card's expiry, not the 5th birthday, ends the period


def issuance_day(issued_at: datetime) -> date:
    """The Japanese calendar day of an aware issuance instant."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    return issued_at.astimezone(JST).date()


def certificate_validity(kind: AuthorityKind, birth: date, issued_at: datetime, card_expiry: date) -> Validity:
    """The validity of a ``kind`` certificate issued at ``issued_at`` (aware) for a holder born on ``birth``."""
    day = issuance_day(issued_at)
    issued_at = issued_at.astimezone(UTC).replace(microsecond=0)
    if birth > day:
        raise ValidityError("birth date is after the issuance date")
    if card_expiry < day:
        raise ValidityError(f"the card expired on {card_expiry.isoformat()}; no certificate can be issued for it")
    if kind is AuthorityKind.SIGNATURE and not rules.signature_allowed(birth, day):
        possible_from = rules.age_reached_on(birth, SIGNATURE_MINIMUM_AGE)
        raise UnderAgeError(
            f"no signature certificate for holders under {SIGNATURE_MINIMUM_AGE} "
            f"(署名用電子証明書は15歳未満の方には発行できません); possible from {possible_from.isoformat()}"
        )
    fifth = rules.nth_birthday_after(birth, day, YEARS_OF_VALIDITY)
    last_day = rules.certificate_expiry(birth, day, card_expiry)
    return Validity(issued_at, end_of_day_utc(last_day), capped_by_card=card_expiry < fifth)
