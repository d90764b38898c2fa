"""The demo residents are in the situation they are meant to show, by the same rules the engine and the CA apply."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.validity import age_on, certificate_validity
from jpki_remote.demo.provision import demo_mobile, my_number_with_check_digit
from jpki_remote.demo.residents import RESIDENTS, WAITING, Situation, card_dates
from jpki_remote.procedures.policy import default_policy
from jpki_remote.registry.service import normalise_contact

DAYS = [date(2026, 12, 4), date(2028, 2, 29), date(2027, 1, 1), date(2026, 6, 30)]


@pytest.mark.parametrize("today", DAYS, ids=str)
@pytest.mark.parametrize("spec", RESIDENTS, ids=lambda s: s.key)
def test_each_resident_is_in_their_situation(spec, today: date) -> None:
    dates = card_dates(spec, today)
    policy = default_policy()
    # the CA computes the same last day from birth date, issuance and card expiry
    kind = AuthorityKind.AUTHENTICATION
    validity = certificate_validity(kind, dates.birth_date, dates.issued_at.astimezone(UTC), dates.card_expiry)
    assert validity.not_after.astimezone(UTC).date() in (
        dates.certificate_last_day,
        dates.certificate_last_day - timedelta(days=1),
    )
    assert dates.issued_at.date() <= today < dates.card_expiry
    open_ = policy.renewal_open(dates.certificate_last_day, dates.card_expiry, today)
    if spec.situation is Situation.NEAR_EXPIRY:
        assert open_ and today <= dates.certificate_last_day
    elif spec.situation is Situation.EXPIRED:
        assert open_ and dates.certificate_last_day < today
    else:
        assert not open_
    if spec.situation is Situation.MINOR:
        assert age_on(dates.birth_date, today) < 15
    else:
        assert age_on(dates.birth_date, dates.issued_at.date()) >= 15


def test_every_pin_kind_is_locked_on_exactly_one_card() -> None:
    locked = sorted(s.locked for s in RESIDENTS if s.locked)
    assert locked == ["auth_pin", "residence_pin", "sign_password", "text_pin"]


def test_keys_and_contacts_are_unique_and_valid() -> None:
    keys = [s.key for s in RESIDENTS] + [WAITING.key]
    assert len(set(keys)) == len(keys)
    mobiles = {normalise_contact("mobile", demo_mobile(k))[1] for k in keys}
    assert len(mobiles) == len(keys)
    for spec in RESIDENTS:
        normalise_contact("email", spec.email)


def test_my_number_check_digit() -> None:
    assert my_number_with_check_digit("12345678901") == "123456789018"  # the example number of the card package
    assert all(len(my_number_with_check_digit(f"{n:011d}")) == 12 for n in (0, 1, 99999999999))


def test_issued_at_is_aware() -> None:
    assert card_dates(RESIDENTS[0], date(2026, 12, 4)).issued_at.tzinfo is not None
    assert datetime.now(UTC) > card_dates(RESIDENTS[0], date.today()).issued_at
