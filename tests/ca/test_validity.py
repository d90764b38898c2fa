"""Validity arithmetic: 5th birthday after issuance, leap days, card-expiry cap, under 15, JST days."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jpki_remote import validity as shared_validity
from jpki_remote.ca.errors import UnderAgeError, ValidityError
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.validity import (
    JST,
    age_on,
    birthday_in,
    certificate_validity,
    end_of_day_utc,
    nth_birthday_after,
)

SIG, AUTH = AuthorityKind.SIGNATURE, AuthorityKind.AUTHENTICATION
FAR = date(2099, 1, 1)


def at_jst(y: int, m: int, d: int, hh: int = 12) -> datetime:
    return datetime(y, m, d, hh, 0, tzinfo=JST)


def test_reference_card_example() -> None:
    # The OpenSC/soltia48 test card: issued 2025-10-27, valid to 2030-02-17 (= 5th birthday after issuance).
    validity = certificate_validity(AUTH, date(1980, 2, 17), at_jst(2025, 10, 27), FAR)
    assert validity.not_after == end_of_day_utc(date(2030, 2, 17))
    assert not validity.capped_by_card


def test_issued_on_birthday_runs_five_full_years() -> None:
    validity = certificate_validity(SIG, date(1990, 6, 10), at_jst(2026, 6, 10), FAR)
    assert validity.not_after.astimezone(JST).date() == date(2031, 6, 10)


def test_issued_day_before_birthday() -> None:
    validity = certificate_validity(SIG, date(1990, 6, 10), at_jst(2026, 6, 9), FAR)
    assert validity.not_after.astimezone(JST).date() == date(2030, 6, 10)


def test_not_after_is_end_of_day_jst_and_not_before_is_issuance() -> None:
    issued = datetime(2026, 1, 5, 3, 4, 5, 678, tzinfo=UTC)
    validity = certificate_validity(SIG, date(1990, 6, 10), issued, FAR)
    assert validity.not_before == datetime(2026, 1, 5, 3, 4, 5, tzinfo=UTC)
    assert validity.not_after == datetime(2030, 6, 10, 14, 59, 59, tzinfo=UTC)  # 23:59:59 JST


def test_issuance_day_is_the_japanese_day() -> None:
    # 2026-06-09 20:00 UTC is already 2026-06-10 (the birthday) in Japan: five full years follow.
    validity = certificate_validity(SIG, date(1990, 6, 10), datetime(2026, 6, 9, 20, 0, tzinfo=UTC), FAR)
    assert validity.not_after.astimezone(JST).date() == date(2031, 6, 10)


def test_leap_day_birthday_is_feb_28_in_common_years() -> None:
    born = date(2000, 2, 29)
    assert birthday_in(born, 2027) == date(2027, 2, 28)
    assert birthday_in(born, 2028) == date(2028, 2, 29)
    # Issued 2026-03-01: birthdays after are 2027-02-28, 2028-02-29, 2029-02-28, 2030-02-28, 2031-02-28.
    validity = certificate_validity(SIG, born, at_jst(2026, 3, 1), FAR)
    assert validity.not_after.astimezone(JST).date() == date(2031, 2, 28)
    # Issued on 2027-02-28 (that year's birthday): the 5th following one is in the leap year 2032.
    validity = certificate_validity(SIG, born, at_jst(2027, 2, 28), FAR)
    assert validity.not_after.astimezone(JST).date() == date(2032, 2, 29)


def test_leap_day_age_is_the_shared_rule() -> None:
    # 民法 §143(2) ただし書: the 15th year ends at the end of 28 February 2027; 15 from 00:00 on 1 March.
    born = date(2012, 2, 29)
    assert age_on is shared_validity.age_on
    assert age_on(born, date(2027, 2, 28)) == 14
    assert age_on(born, date(2027, 3, 1)) == 15
    with pytest.raises(UnderAgeError, match="possible from 2027-03-01"):
        certificate_validity(SIG, born, at_jst(2027, 2, 28), FAR)
    # 23:59 JST on 28 February: still that day in Japan, still refused.
    with pytest.raises(UnderAgeError):
        certificate_validity(SIG, born, datetime(2027, 2, 28, 14, 59, tzinfo=UTC), FAR)
    # 15:00 UTC on 28 February is 00:00 JST on 1 March: allowed.
    assert certificate_validity(SIG, born, datetime(2027, 2, 28, 15, 0, tzinfo=UTC), FAR)
    assert certificate_validity(AUTH, born, at_jst(2027, 2, 28), FAR)


def test_leap_day_birth_in_a_leap_fifteenth_year() -> None:
    born = date(2008, 2, 29)  # 15 on 2023-03-01 (common year); a leap birth year + 16 = 2024 is leap
    with pytest.raises(UnderAgeError, match="2023-03-01"):
        certificate_validity(SIG, born, at_jst(2023, 2, 28), FAR)
    assert certificate_validity(SIG, born, at_jst(2023, 3, 1), FAR)


def test_leap_day_certificate_expiry_against_the_card() -> None:
    # Card issued on 2026-02-28 to a holder born 2008-02-29: 17 that day (18 from 1 March) → minor card,
    # 5th birthday after = 2031-02-28; the certificate ends the same day, not capped (equal dates).
    born = date(2008, 2, 29)
    card = shared_validity.card_expiry(born, date(2026, 2, 28))
    assert card == date(2031, 2, 28)
    validity = certificate_validity(AUTH, born, at_jst(2026, 2, 28), card)
    assert validity.not_after == end_of_day_utc(date(2031, 2, 28))
    assert not validity.capped_by_card
    # A day later he is an adult: a 10-year card, and the certificate still ends on the 5th birthday.
    card = shared_validity.card_expiry(born, date(2026, 3, 1))
    assert card == date(2036, 2, 29)
    validity = certificate_validity(SIG, born, at_jst(2026, 3, 1), card)
    assert validity.not_after.astimezone(JST).date() == date(2031, 2, 28)


def test_card_expiry_caps_validity() -> None:
    validity = certificate_validity(SIG, date(1990, 6, 10), at_jst(2026, 7, 1), date(2029, 3, 31))
    assert validity.capped_by_card
    assert validity.not_after == end_of_day_utc(date(2029, 3, 31))


def test_card_expiring_today_still_gets_today() -> None:
    validity = certificate_validity(AUTH, date(1990, 6, 10), at_jst(2026, 7, 1, 9), date(2026, 7, 1))
    assert validity.not_after.astimezone(JST).date() == date(2026, 7, 1)
    assert validity.not_after > validity.not_before


def test_expired_card_is_refused() -> None:
    with pytest.raises(ValidityError, match="expired"):
        certificate_validity(AUTH, date(1990, 6, 10), at_jst(2026, 7, 2), date(2026, 7, 1))


def test_under_15_gets_no_signature_certificate_but_an_auth_certificate() -> None:
    born = date(2012, 5, 1)
    with pytest.raises(UnderAgeError, match="15") as info:
        certificate_validity(SIG, born, at_jst(2027, 4, 30), FAR)
    assert "2027-05-01" in str(info.value)
    assert certificate_validity(SIG, born, at_jst(2027, 5, 1), FAR)
    assert certificate_validity(AUTH, born, at_jst(2020, 1, 1), FAR)


def test_birth_in_future_and_naive_time() -> None:
    with pytest.raises(ValidityError):
        certificate_validity(AUTH, date(2030, 1, 1), at_jst(2026, 1, 1), FAR)
    with pytest.raises(ValueError, match="aware"):
        certificate_validity(AUTH, date(1990, 1, 1), datetime(2026, 1, 1), FAR)


@given(
    born=st.dates(min_value=date(1920, 1, 1), max_value=date(2010, 12, 31)),
    issued=st.dates(min_value=date(2026, 1, 1), max_value=date(2040, 12, 31)),
)
def test_fifth_birthday_properties(born: date, issued: date) -> None:
    fifth = nth_birthday_after(born, issued, 5)
    assert fifth > issued
    assert (fifth.month, fifth.day) in {(born.month, born.day), (2, 28)}
    assert 4 * 365 < (fifth - issued).days <= 5 * 366
    # exactly five birthdays fall in (issued, fifth]
    years = [y for y in range(issued.year, fifth.year + 1) if issued < birthday_in(born, y) <= fifth]
    assert len(years) == 5
    # Five years older the day after expiry. A 29 Feb birth ages on 1 March in common years, the day after its
    # expiry birthday: issued on such a 28 February, the holder is still a year younger that day.
    leap_edge = (born.month, born.day) == (2, 29) and (issued.month, issued.day) == (2, 28)
    leap_edge = leap_edge and not calendar.isleap(issued.year)
    assert age_on(born, fifth + timedelta(days=1)) == age_on(born, issued) + (6 if leap_edge else 5)


def test_fifth_birthday_age_at_the_leap_edges() -> None:
    born = date(2000, 2, 29)
    for issued in (date(2027, 2, 28), date(2028, 2, 28), date(2028, 2, 29), date(2027, 3, 1)):
        test_fifth_birthday_properties.hypothesis.inner_test(born, issued)
