"""Validity arithmetic of the My Number Card and its JPKI certificates (exact, date-level) — the one place these
rules live (standard library only). Used by the registry (ages), the procedures (renewal window) and the analytics
(forecast); ``jpki_remote.analytics.validity`` re-exports it.

Rules (公的個人認証法施行規則, 番号法施行規則 §26; J-LIS pages):

* **Certificate** (署名用・利用者証明用電子証明書): valid until the holder's 5th birthday *after* the issue date
  (「発行の日後5回目の誕生日まで」), and never past the card's own expiry.
* **Card** (個人番号カード): for a holder who is an adult on the issue date, the 10th birthday after the issue date;
  for a minor, the 5th. The adult age is 18 since 2022-04-01 and was 20 before; both are policy values.
* "After the issue date" means strictly after: a certificate issued *on* the birthday does not count that birthday,
  so it runs exactly five years. One issued a day before the birthday counts it as the first, so it runs four years
  and a day — renewing early in the window shortens the next certificate.
* **Leap day**: a holder born on 29 February has the birthday that ends a validity period on **28 February** in
  non-leap years (the expiry date is the last day of February, as 民法 §143(2) ends a period whose corresponding
  day is missing on the last day of that month).
* **Age** (for adult/minor at issuance, and the 15-year limit of the signature certificate) follows
  年齢計算ニ関スル法律 and 民法 §143: one's age increases at the end of the day before the birthday, i.e. from 00:00 on
  the birthday; for a 29 February birthday in a non-leap year from 00:00 on **1 March**. This is the one age rule of
  the project (registry, procedures, analytics and the CA all call :func:`age_on`). The reasoning:

  - 年齢計算ニ関スル法律 (1) counts age from the day of birth (the first day is included, 民法 §140 does not apply)
    and (2) applies 民法 §143 to it: an age is a period reckoned in years by the calendar.
  - 民法 §143(2): a period not starting at the beginning of a year ends at the end of the day *before* the day in the
    last year that corresponds to the starting day (応当日の前日に満了). For a birth on 10 June that is the end of
    9 June, so one is a year older from 00:00 on 10 June.
  - 民法 §143(2) ただし書: when the last month has no corresponding day (29 February in a common year), the period
    ends at the end of *that month's last day* — 28 February itself, not the day before it. So a person born on
    29 February becomes a year older at 24:00 on 28 February, i.e. from 00:00 on 1 March; on 28 February they are
    still the younger age. Counting them older on 28 February (as the CA once did) would let a signature
    certificate be issued one day before the holder is 15, and would count an 18-year-old one day early as an adult
    for the card's 10-year validity.
  - The *expiry* birthday is a different question (the last day of a validity period, see **Leap day** above): the
    period "until the birthday" ends on 28 February, the last day of that February.
* **Renewal window**: renewal is possible from ``renewal_window_months`` (3) months before the certificate expiry
  (same day of the month, or the month's last day when that month is shorter), and after expiry as long as the card
  itself is valid.
* Dates are Japanese calendar dates; an expiry date is valid through 23:59:59 JST of that day
  (:func:`expiry_instant`).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

JST = timezone(timedelta(hours=9), "JST")

#: The day the adult age for the card (and the civil code) became 18 (民法改正, 2022-04-01).
ADULT_AGE_18_FROM = date(2022, 4, 1)


class ValidityError(ValueError):
    """Inconsistent dates (issued before birth, expiry before issue, …)."""


@dataclass(frozen=True)
class ValidityPolicy:
    """The numbers behind the validity rules. The defaults are the rules in force today."""

    certificate_birthdays: int = 5
    adult_card_birthdays: int = 10
    minor_card_birthdays: int = 5
    #: Adult age today (18 since 2022-04-01).
    adult_age: int = 18
    #: Earlier adult ages: ``(first day the next rule applies, age before that day)``, oldest first.
    #: Set to ``()`` to apply ``adult_age`` to every issue date.
    adult_age_history: tuple[tuple[date, int], ...] = ((ADULT_AGE_18_FROM, 20),)
    renewal_window_months: int = 3
    signature_min_age: int = 15

    def __post_init__(self) -> None:
        for name in ("certificate_birthdays", "adult_card_birthdays", "minor_card_birthdays", "adult_age"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.renewal_window_months < 0:
            raise ValueError("renewal_window_months must not be negative")

    def adult_age_on(self, day: date) -> int:
        """The adult age that applies to a card issued on ``day``."""
        for until, age in self.adult_age_history:
            if day < until:
                return age
        return self.adult_age


DEFAULT_POLICY = ValidityPolicy()


def birthday_in_year(birth: date, year: int) -> date:
    """The holder's birthday in ``year`` as used for expiry: 29 February falls on 28 February in non-leap years."""
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, birth.month, birth.day)


def nth_birthday_after(birth: date, day: date, n: int) -> date:
    """The ``n``-th birthday strictly after ``day`` (``n`` ≥ 1)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if day < birth:
        raise ValidityError(f"{day.isoformat()} is before the birth date {birth.isoformat()}")
    first_year = day.year if birthday_in_year(birth, day.year) > day else day.year + 1
    return birthday_in_year(birth, first_year + n - 1)


def age_on(birth: date, day: date) -> int:
    """Age in completed years on ``day`` (from 00:00 on the birthday; 29 Feb births age on 1 Mar in non-leap years)."""
    if day < birth:
        raise ValidityError(f"{day.isoformat()} is before the birth date {birth.isoformat()}")
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(day.year):
        anniversary = date(day.year, 3, 1)
    else:
        anniversary = date(day.year, birth.month, birth.day)
    return day.year - birth.year - (1 if day < anniversary else 0)


def age_reached_on(birth: date, age: int) -> date:
    """The first day on which the holder is ``age`` years old (29 Feb births in a common year: 1 March)."""
    if age < 0:
        raise ValueError("age must not be negative")
    year = birth.year + age
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return date(year, birth.month, birth.day)


def is_adult_at_issuance(birth: date, issued: date, policy: ValidityPolicy = DEFAULT_POLICY) -> bool:
    return age_on(birth, issued) >= policy.adult_age_on(issued)


def card_expiry(birth: date, issued: date, policy: ValidityPolicy = DEFAULT_POLICY) -> date:
    """Card expiry: the 10th (adult at issuance) or 5th (minor) birthday after the issue date."""
    n = policy.adult_card_birthdays if is_adult_at_issuance(birth, issued, policy) else policy.minor_card_birthdays
    return nth_birthday_after(birth, issued, n)


def certificate_expiry(
    birth: date, issued: date, card_expires: date | None = None, policy: ValidityPolicy = DEFAULT_POLICY
) -> date:
    """Certificate expiry: the 5th birthday after ``issued``, capped by ``card_expires`` when given."""
    expiry = nth_birthday_after(birth, issued, policy.certificate_birthdays)
    if card_expires is not None:
        if card_expires < issued:
            raise ValidityError(f"the card expired on {card_expires.isoformat()}, before {issued.isoformat()}")
        expiry = min(expiry, card_expires)
    return expiry


def add_months(day: date, months: int) -> date:
    """``day`` shifted by whole months; the day of the month is clamped to the target month's length."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def renewal_window_opens(expiry: date, policy: ValidityPolicy = DEFAULT_POLICY) -> date:
    """First day a certificate (or card) expiring on ``expiry`` may be renewed."""
    return add_months(expiry, -policy.renewal_window_months)


def can_renew_certificate(
    on: date, certificate_expires: date, card_expires: date, policy: ValidityPolicy = DEFAULT_POLICY
) -> bool:
    """True when a certificate renewal is allowed on ``on``: the window is open and the card is still valid."""
    return renewal_window_opens(certificate_expires, policy) <= on <= card_expires


@dataclass(frozen=True)
class Validity:
    """Issue and expiry dates of a card and the certificates issued with it (or renewed on it)."""

    issued: date
    certificate_expires: date
    card_expires: date
    renewal_opens: date
    signature_certificate: bool  # False under 15: only the auth certificate is issued

    @property
    def certificate_not_after(self) -> datetime:
        return expiry_instant(self.certificate_expires)


def new_card_validity(birth: date, issued: date, policy: ValidityPolicy = DEFAULT_POLICY) -> Validity:
    """A new card issued on ``issued`` with its first certificates."""
    card = card_expiry(birth, issued, policy)
    cert = certificate_expiry(birth, issued, card, policy)
    return Validity(issued, cert, card, renewal_window_opens(cert, policy), signature_allowed(birth, issued, policy))


def renewed_certificate_validity(
    birth: date, renewed: date, card_expires: date, policy: ValidityPolicy = DEFAULT_POLICY
) -> Validity:
    """Certificates renewed on ``renewed`` on a card that expires on ``card_expires``."""
    if renewed > card_expires:
        raise ValidityError(f"the card expired on {card_expires.isoformat()}; certificates cannot be renewed on it")
    cert = certificate_expiry(birth, renewed, card_expires, policy)
    return Validity(
        renewed, cert, card_expires, renewal_window_opens(cert, policy), signature_allowed(birth, renewed, policy)
    )


def signature_allowed(birth: date, on: date, policy: ValidityPolicy = DEFAULT_POLICY) -> bool:
    """The signature certificate is not issued to holders under 15."""
    return age_on(birth, on) >= policy.signature_min_age


def expiry_instant(expiry: date) -> datetime:
    """The last instant of validity: 23:59:59 JST on the expiry date (as a timezone-aware datetime)."""
    return datetime.combine(expiry, time(23, 59, 59), tzinfo=JST)
