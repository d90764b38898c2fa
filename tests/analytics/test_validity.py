"""Validity arithmetic: the 5th/10th birthday after issuance, leap days, minors, the card cap, the renewal window."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jpki_remote.analytics.validity import (
    ValidityError,
    ValidityPolicy,
    add_months,
    age_on,
    birthday_in_year,
    can_renew_certificate,
    card_expiry,
    certificate_expiry,
    expiry_instant,
    is_adult_at_issuance,
    new_card_validity,
    nth_birthday_after,
    renewal_window_opens,
    renewed_certificate_validity,
    signature_allowed,
)


def test_real_test_card_validity_runs_to_the_fifth_birthday_after_issuance() -> None:
    # The JPKI test card in the domain reference: auth cert 2025-10-27 → 2030-02-17 (birthday 17 February).
    assert certificate_expiry(date(1980, 2, 17), date(2025, 10, 27)) == date(2030, 2, 17)


def test_the_issue_day_itself_is_not_counted() -> None:
    birth = date(1980, 5, 10)
    assert certificate_expiry(birth, date(2020, 5, 10)) == date(2025, 5, 10)  # issued on the birthday: 5 years
    assert certificate_expiry(birth, date(2020, 5, 9)) == date(2024, 5, 10)  # a day before: 4 years and a day
    assert certificate_expiry(birth, date(2020, 5, 11)) == date(2025, 5, 10)


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        (date(2021, 3, 1), date(2026, 2, 28)),  # 2022, 2023, 2024-02-29, 2025, 2026-02-28
        (date(2023, 6, 1), date(2028, 2, 29)),  # lands on a leap year: the real 29th
        (date(2021, 2, 28), date(2026, 2, 28)),  # issued on the observed birthday: not counted
        (date(2024, 2, 28), date(2028, 2, 29)),  # leap year, day before the birthday: 2024-02-29 is the first
        (date(2024, 2, 29), date(2029, 2, 28)),  # issued on the real birthday
    ],
)
def test_leap_day_birthdays_fall_on_28_february_in_non_leap_years(issued: date, expected: date) -> None:
    assert certificate_expiry(date(2000, 2, 29), issued) == expected


def test_leap_day_card_expiry() -> None:
    assert card_expiry(date(1996, 2, 29), date(2020, 3, 1)) == date(2030, 2, 28)
    assert card_expiry(date(1996, 2, 29), date(2022, 3, 1)) == date(2032, 2, 29)


def test_leap_day_age_follows_the_age_law() -> None:
    # 年齢計算ニ関スル法律 + 民法143条: a 29 February child turns a year older at 00:00 on 1 March in non-leap years.
    born = date(2008, 2, 29)
    assert age_on(born, date(2026, 2, 28)) == 17
    assert age_on(born, date(2026, 3, 1)) == 18
    assert age_on(born, date(2028, 2, 29)) == 20
    # so a card issued on 28 Feb 2026 is a minor's card (5 birthdays), one issued on 1 March an adult's (10)
    assert card_expiry(born, date(2026, 2, 28)) == date(2031, 2, 28)
    assert card_expiry(born, date(2026, 3, 1)) == date(2036, 2, 29)


def test_adult_age_was_20_before_april_2022() -> None:
    born = date(2002, 6, 1)
    assert not is_adult_at_issuance(born, date(2021, 6, 15))  # 19, adult age 20
    assert card_expiry(born, date(2021, 6, 15)) == date(2026, 6, 1)
    assert is_adult_at_issuance(born, date(2022, 4, 1))  # 19, adult age 18 from this day
    assert card_expiry(born, date(2022, 4, 1)) == date(2031, 6, 1)  # 1st birthday 2022-06-01, 10th 2031
    today_rule = ValidityPolicy(adult_age_history=())
    assert card_expiry(born, date(2021, 6, 15), today_rule) == date(2031, 6, 1)
    assert ValidityPolicy(adult_age=20, adult_age_history=()).adult_age_on(date(2030, 1, 1)) == 20


def test_minor_card_and_certificates_expire_together() -> None:
    born = date(2015, 1, 10)
    validity = new_card_validity(born, date(2020, 7, 1))
    assert validity.card_expires == date(2025, 1, 10)
    assert validity.certificate_expires == validity.card_expires
    assert not validity.signature_certificate  # 5 years old: no signature certificate
    assert signature_allowed(born, date(2030, 1, 10))
    assert not signature_allowed(born, date(2030, 1, 9))


def test_adult_card_has_two_certificate_periods() -> None:
    born = date(1970, 9, 30)
    validity = new_card_validity(born, date(2020, 10, 1))
    assert validity.card_expires == date(2030, 9, 30)
    assert validity.certificate_expires == date(2025, 9, 30)
    assert validity.signature_certificate


def test_renewed_certificate_is_capped_by_the_card() -> None:
    born = date(1980, 5, 10)
    card = date(2030, 5, 10)
    renewed = renewed_certificate_validity(born, date(2027, 1, 1), card)
    assert renewed.certificate_expires == card  # the 5th birthday (2031-05-10) is past the card
    early = renewed_certificate_validity(born, date(2025, 3, 1), card)
    assert early.certificate_expires == date(2029, 5, 10)  # renewed before the birthday: four years
    with pytest.raises(ValidityError):
        renewed_certificate_validity(born, date(2030, 5, 11), card)
    with pytest.raises(ValidityError):
        certificate_expiry(born, date(2031, 1, 1), card_expires=card)


def test_renewal_window_opens_three_months_before_with_month_end_clamping() -> None:
    assert renewal_window_opens(date(2025, 10, 27)) == date(2025, 7, 27)
    assert renewal_window_opens(date(2025, 5, 31)) == date(2025, 2, 28)
    assert renewal_window_opens(date(2024, 5, 31)) == date(2024, 2, 29)
    assert renewal_window_opens(date(2025, 1, 15)) == date(2024, 10, 15)
    assert renewal_window_opens(date(2025, 5, 31), ValidityPolicy(renewal_window_months=1)) == date(2025, 4, 30)
    cert, card = date(2025, 5, 31), date(2030, 5, 31)
    assert not can_renew_certificate(date(2025, 2, 27), cert, card)
    assert can_renew_certificate(date(2025, 2, 28), cert, card)
    assert can_renew_certificate(date(2026, 1, 1), cert, card)  # after expiry, card still valid
    assert not can_renew_certificate(date(2030, 6, 1), cert, card)


def test_bad_dates_are_errors() -> None:
    with pytest.raises(ValidityError):
        certificate_expiry(date(2000, 1, 1), date(1999, 12, 31))
    with pytest.raises(ValidityError):
        age_on(date(2000, 1, 1), date(1999, 1, 1))
    with pytest.raises(ValueError):
        nth_birthday_after(date(2000, 1, 1), date(2001, 1, 1), 0)
    with pytest.raises(ValueError):
        ValidityPolicy(certificate_birthdays=0)


def test_expiry_instant_is_the_end_of_the_day_in_japan() -> None:
    instant = expiry_instant(date(2030, 2, 17))
    assert instant.astimezone(UTC) == datetime(2030, 2, 17, 14, 59, 59, tzinfo=UTC)


@given(
    birth=st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)),
    offset=st.integers(min_value=0, max_value=365 * 90),
)
def test_certificate_expiry_properties(birth: date, offset: int) -> None:
    issued = birth + timedelta(days=offset)
    if issued.year > 2090:
        return
    expiry = certificate_expiry(birth, issued)
    # it is a birthday …
    assert expiry == birthday_in_year(birth, expiry.year)
    # … with exactly four birthdays strictly between issue and expiry, so 4–5 years after issuance
    between = [birthday_in_year(birth, y) for y in range(issued.year, expiry.year)]
    assert sum(1 for b in between if issued < b < expiry) == 4
    assert add_months(issued, 48) < expiry <= add_months(issued, 60) + timedelta(days=1)
    card = card_expiry(birth, issued)
    assert certificate_expiry(birth, issued, card) <= card
    if calendar.isleap(expiry.year) or (birth.month, birth.day) != (2, 29):
        assert (expiry.month, expiry.day) == (birth.month, birth.day)
