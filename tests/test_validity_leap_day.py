"""The shared validity rules (jpki_remote.validity) for 29 February births: one age rule (民法 §143(2) ただし書:
a year older from 1 March in common years), the expiry birthday on 28 February, and what follows for the under-15
signature check and for certificate and card expiry."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jpki_remote import validity

LEAP_BORN = date(2008, 2, 29)


def test_age_increases_on_1_march_in_common_years_and_on_29_february_in_leap_years() -> None:
    assert validity.age_on(LEAP_BORN, date(2023, 2, 28)) == 14
    assert validity.age_on(LEAP_BORN, date(2023, 3, 1)) == 15
    assert validity.age_on(LEAP_BORN, date(2024, 2, 28)) == 15
    assert validity.age_on(LEAP_BORN, date(2024, 2, 29)) == 16
    assert validity.age_reached_on(LEAP_BORN, 15) == date(2023, 3, 1)
    assert validity.age_reached_on(LEAP_BORN, 16) == date(2024, 2, 29)
    assert validity.age_reached_on(date(2010, 5, 3), 15) == date(2025, 5, 3)


def test_under_15_signature_check_for_a_leap_day_birth() -> None:
    assert not validity.signature_allowed(LEAP_BORN, date(2023, 2, 28))
    assert validity.signature_allowed(LEAP_BORN, date(2023, 3, 1))
    renewed = validity.renewed_certificate_validity(LEAP_BORN, date(2023, 2, 28), date(2030, 1, 1))
    assert not renewed.signature_certificate


def test_certificate_expiry_of_a_leap_day_birth_is_28_february_in_common_years() -> None:
    # Issued 2026-03-01: birthdays after are 2027-02-28, 2028-02-29, 2029-02-28, 2030-02-28, 2031-02-28.
    assert validity.certificate_expiry(LEAP_BORN, date(2026, 3, 1)) == date(2031, 2, 28)
    # Issued on 2027-02-28 (that year's expiry birthday, not counted): the 5th one after is 2032-02-29.
    assert validity.certificate_expiry(LEAP_BORN, date(2027, 2, 28)) == date(2032, 2, 29)
    assert validity.certificate_expiry(LEAP_BORN, date(2026, 3, 1), date(2029, 6, 1)) == date(2029, 6, 1)


def test_card_expiry_follows_the_age_rule_at_18() -> None:
    # 28 Feb 2026: still 17 (a minor) → 5th birthday after; 1 March 2026: 18 → 10th birthday after.
    assert not validity.is_adult_at_issuance(LEAP_BORN, date(2026, 2, 28))
    assert validity.card_expiry(LEAP_BORN, date(2026, 2, 28)) == date(2031, 2, 28)
    assert validity.is_adult_at_issuance(LEAP_BORN, date(2026, 3, 1))
    assert validity.card_expiry(LEAP_BORN, date(2026, 3, 1)) == date(2036, 2, 29)


def test_age_reached_on_rejects_negative_ages() -> None:
    with pytest.raises(ValueError):
        validity.age_reached_on(LEAP_BORN, -1)


@given(
    born=st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)),
    age=st.integers(min_value=1, max_value=90),
)
def test_age_reached_on_is_the_first_day_of_that_age(born: date, age: int) -> None:
    day = validity.age_reached_on(born, age)
    assert validity.age_on(born, day) == age
    assert validity.age_on(born, day - timedelta(days=1)) == age - 1
