"""Validity of holder certificates (有効期間).

Rules (J-LIS; municipal guidance):

* Both certificates are valid until the holder's **5th birthday after issuance**, and never past the card's expiry
  date. "After" is strict: a certificate issued on a birthday runs to the birthday five years later.
* Dates are Japanese calendar days (JST, UTC+9, no daylight saving). A certificate is valid from the moment of
  issuance to the end of its last day, 23:59:59 JST (``notAfter`` is that instant in UTC).
* **Leap-day birthdays**: for a holder born on 29 February the birthday in a non-leap year is taken to be
  **28 February** — the certificate never outlives the five-year period it is meant to span, and the same rule is
  used for the age check.
* **No signature certificate under 15**: the holder must have had their 15th birthday (same leap-day rule) on or
  before the JST issuance day. The auth certificate has no age limit.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone

from jpki_remote.ca.errors import UnderAgeError, ValidityError
from jpki_remote.ca.models import AuthorityKind

JST = timezone(timedelta(hours=9), "JST")
YEARS_OF_VALIDITY = 5
SIGNATURE_MINIMUM_AGE = 15


def birthday_in(birth: date, year: int) -> date:
    """The holder's birthday in ``year`` (29 February → 28 February in non-leap years)."""
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birth.replace(year=year)


def age_on(birth: date, day: date) -> int:
    """Completed years on ``day`` (a birthday counts from its own day)."""
    years = day.year - birth.year
    if birthday_in(birth, day.year) > day:
        years -= 1
    return years


def nth_birthday_after(birth: date, day: date, n: int) -> date:
    """The ``n``-th birthday strictly after ``day``."""
    first_year = day.year if birthday_in(birth, day.year) > day else day.year + 1
    return birthday_in(birth, first_year + n - 1)


def end_of_day_utc(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), JST).astimezone(UTC)


@dataclass(frozen=True)
class Validity:
    not_before: datetime  # UTC, whole seconds
    not_after: datetime  # UTC, 23:59:59 JST of the last day
    capped_by_card: bool  # True when the card's expiry, not the 5th birthday, ends the period


def certificate_validity(kind: AuthorityKind, birth: date, issued_at: datetime, card_expiry: date) -> Validity:
    """The validity of a ``kind`` certificate issued at ``issued_at`` (aware) for a holder born on ``birth``."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    issued_at = issued_at.astimezone(UTC).replace(microsecond=0)
    day = issued_at.astimezone(JST).date()
    if birth > day:
        raise ValidityError("birth date is after the issuance date")
    if card_expiry < day:
        raise ValidityError(f"the card expired on {card_expiry.isoformat()}; no certificate can be issued for it")
    if kind is AuthorityKind.SIGNATURE and age_on(birth, day) < SIGNATURE_MINIMUM_AGE:
        turns_15 = birthday_in(birth, birth.year + SIGNATURE_MINIMUM_AGE)
        raise UnderAgeError(
            f"no signature certificate for holders under {SIGNATURE_MINIMUM_AGE} "
            f"(署名用電子証明書は15歳未満の方には発行できません); possible from {turns_15.isoformat()}"
        )
    fifth = nth_birthday_after(birth, day, YEARS_OF_VALIDITY)
    last_day = min(fifth, card_expiry)
    return Validity(issued_at, end_of_day_utc(last_day), capped_by_card=card_expiry < fifth)
