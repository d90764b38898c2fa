"""The procedures and the registry use the one copy of the validity rules (``jpki_remote.validity``)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki_remote import validity
from jpki_remote.analytics import validity as analytics_validity
from jpki_remote.procedures.policy import default_policy
from jpki_remote.registry import service as registry

days = st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31))


def test_leap_day_births_and_month_ends() -> None:
    born = date(2008, 2, 29)
    assert registry.age_on(born, date(2023, 2, 28)) == 14  # ages on 1 March in a non-leap year
    assert registry.age_on(born, date(2023, 3, 1)) == 15
    assert registry.age_on(born, date(2024, 2, 29)) == 16
    with pytest.raises(ValueError):
        registry.age_on(born, date(2008, 2, 28))
    policy = default_policy()
    assert policy.renewal_opens_on(date(2026, 5, 31)) == date(2026, 2, 28)
    assert policy.renewal_opens_on(date(2028, 5, 31)) == date(2028, 2, 29)
    assert analytics_validity.age_on is validity.age_on  # the analytics package sees the same rules


@settings(max_examples=300, deadline=None)
@given(not_after=days, card_extra=st.integers(0, 4000), offset=st.integers(-200, 200))
def test_renewal_window_is_the_shared_rule(not_after: date, card_extra: int, offset: int) -> None:
    policy = default_policy()
    card_expiry = not_after + timedelta(days=card_extra)
    today = not_after + timedelta(days=offset)
    shared = validity.can_renew_certificate(
        today, not_after, card_expiry, validity.ValidityPolicy(renewal_window_months=policy.months_before_expiry)
    )
    expected = shared and (today <= not_after or policy.after_expiry_while_card_valid)
    assert policy.renewal_open(not_after, card_expiry, today) is expected
    assert policy.renewal_opens_on(not_after) == validity.renewal_window_opens(not_after)
