"""The expiry forecast: consistent with the date-level validity rules, conserves cards, renews in cycles."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import pytest

from jpki_remote.analytics.forecast import AgeMix, ForecastParameters, forecast
from jpki_remote.analytics.history import parse_history_csv
from jpki_remote.analytics.months import days_in_month, month_index, month_of, month_of_date
from jpki_remote.analytics.validity import certificate_expiry

ADULTS = AgeMix(under_18_share=0.0, age_18_19_share=0.0)
FY2020 = range(month_index(2020, 4), month_index(2021, 3) + 1)


def test_month_level_model_matches_date_level_rules() -> None:
    """Sample people (uniform issue day within FY2020, uniform birthdays) through the exact date functions and
    compare the month of their first certificate expiry with the model's expected counts."""
    rng = random.Random(20)
    per_month = 2_000
    counts: Counter[int] = Counter()
    for month in FY2020:
        year, mon = month_of(month)
        for _ in range(per_month):
            issued = date(year, mon, rng.randint(1, days_in_month(month)))
            birth = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 4 + 1))  # 1960–63: one leap year
            counts[month_of_date(certificate_expiry(birth, issued))] += 1
    history = {m: float(per_month) for m in FY2020}
    params = ForecastParameters(start=month_index(2024, 1), months=48, age_mix=ADULTS)
    model = {m.month: m.certificate_expiries for m in forecast(history, params).months}
    total = per_month * len(FY2020)
    assert sum(model.values()) == pytest.approx(total)  # every first certificate falls due in 2024–2027
    assert sum(counts.values()) == total
    for month, expected in model.items():
        tolerance = 5 * max(expected, 1.0) ** 0.5 + 3  # ≈ 5 σ of a Poisson count
        assert abs(counts[month] - expected) <= tolerance, (month, counts[month], expected)


def test_minors_certificates_expire_with_their_cards() -> None:
    history = {month_index(2023, 6): 1000.0}
    minors = AgeMix(under_18_share=1.0, age_18_19_share=0.0)
    fc = forecast(history, ForecastParameters(start=month_index(2023, 6), months=72, age_mix=minors))
    assert sum(m.certificate_expiries for m in fc.months) == 0
    assert sum(m.card_expiries for m in fc.months) == pytest.approx(1000)
    due = [m.label for m in fc.months if m.card_expiries > 0]
    assert due[0] == "2027-06" and due[-1] == "2028-06"  # the 5th birthday after June 2023


def test_adult_card_runs_two_certificate_periods_then_is_replaced() -> None:
    history = {month_index(2016, 3): 1200.0}
    params = ForecastParameters(start=month_index(2016, 3), months=12 * 11, age_mix=ADULTS, early_renewal_share=0.0)
    fc = forecast(history, params)
    certs = {m.month: m.certificate_expiries for m in fc.months if m.certificate_expiries > 1e-9}
    cards = {m.month: m.card_expiries for m in fc.months if m.card_expiries > 1e-9}
    assert sum(certs.values()) == pytest.approx(1200)  # one renewal per card, the second period ends with the card
    assert sum(cards.values()) == pytest.approx(1200)
    # renewed on the expiry date → the next certificate ends on the 5th birthday, i.e. with the card, 60 months on
    assert {m + 60 for m in certs} == set(cards)
    renewals = sum(m.certificate_renewals for m in fc.months)
    assert renewals == pytest.approx(1200)


def test_early_renewal_gives_a_four_year_certificate() -> None:
    history = {month_index(2016, 3): 1200.0}
    params = ForecastParameters(start=month_index(2016, 3), months=12 * 11, age_mix=ADULTS, early_renewal_share=1.0)
    fc = forecast(history, params)
    certs = sorted(m.month for m in fc.months if m.certificate_expiries > 1e-9)
    first = [m for m in certs if m < month_index(2022, 1)]
    second = [m for m in certs if m >= month_index(2022, 1)]
    assert {m + 48 for m in first} == set(second)  # the renewed certificate runs four years
    assert sum(m.certificate_expiries for m in fc.months) == pytest.approx(2400)


def test_rates_and_conservation() -> None:
    history = {month_index(2020, 5): 500.0}
    none = forecast(
        history,
        ForecastParameters(start=month_index(2020, 5), months=121, certificate_renewal_rate=0, card_renewal_rate=0),
    )
    assert sum(m.certificate_renewals + m.card_replacements for m in none.months) == 0
    assert none.months[0].cards_in_force == pytest.approx(500)
    assert none.months[-1].cards_in_force == pytest.approx(
        0, abs=1e-6
    )  # the last 10th birthday after May 2020 is in May 2030
    full = forecast(history, ForecastParameters(start=month_index(2020, 5), months=121))
    assert full.months[-1].cards_in_force == pytest.approx(500)  # everyone replaced their card


def test_fiscal_years_and_dict() -> None:
    history = parse_history_csv("municipality_code,period,cards_issued\n13103,FY2020,1200\n")
    fc = forecast(history, ForecastParameters(start=month_index(2024, 4), months=36))
    years = fc.by_fiscal_year()
    assert [y.fiscal_year for y in years] == [2024, 2025, 2026]
    assert sum(y.certificate_expiries for y in years) == pytest.approx(sum(m.certificate_expiries for m in fc.months))
    data = fc.to_dict()
    assert data["months"][0]["month"] == "2024-04"
    assert data["parameters"]["start"] == "2024-04"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"months": 0},
        {"certificate_renewal_rate": 1.5},
        {"early_renewal_share": -0.1},
        {"new_cards_per_month": -1},
        {"issuance_profile": (1.0,) * 11},
    ],
)
def test_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ForecastParameters(start=month_index(2024, 1), **kwargs)  # type: ignore[arg-type]


def test_bad_age_mix() -> None:
    with pytest.raises(ValueError):
        AgeMix(under_18_share=0.9, age_18_19_share=0.2)
    with pytest.raises(ValueError):
        AgeMix(birthday_profile=(0.0,) * 12)
