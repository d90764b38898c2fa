"""Erlang C against closed forms and a textbook example; the discrete-event simulation against Erlang C."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from jpki_remote.analytics.queueing import Overloaded, erlang_b, erlang_c, mean_wait_or_inf, mmc, servers_needed
from jpki_remote.analytics.simulation import simulate_days, simulate_steady_state


def _erlang_c_by_sum(servers: int, offered: Fraction) -> Fraction:
    """Independent textbook form: C = (a^c / c!) · c/(c−a) / (Σ_{k<c} a^k/k! + a^c/c! · c/(c−a)), exact rationals."""
    top = offered**servers / math.factorial(servers) * Fraction(servers) / (servers - offered)
    bottom = sum(offered**k / math.factorial(k) for k in range(servers)) + top
    return top / bottom


@pytest.mark.parametrize(("arrival", "service"), [(0.5, 1.0), (0.9, 1.0), (2.0, 3.0), (0.1, 0.25)])
def test_single_server_reduces_to_mm1(arrival: float, service: float) -> None:
    rho = arrival / service
    metrics = mmc(arrival, service, 1)
    assert metrics.probability_of_waiting == pytest.approx(rho)
    assert metrics.mean_wait == pytest.approx(rho / (service - arrival))  # Wq = ρ/(μ−λ)
    assert metrics.mean_time_in_system == pytest.approx(1 / (service - arrival))


def test_hillier_lieberman_county_hospital_example() -> None:
    # Hillier & Lieberman, Introduction to Operations Research, "County Hospital" emergency room:
    # λ = 2 patients/h, μ = 3 patients/h. One doctor: Wq = 2/3 h; two doctors: P0 = 1/2, Lq = 1/12, Wq = 1/24 h.
    one = mmc(2.0, 3.0, 1)
    assert one.mean_wait == pytest.approx(2 / 3)
    two = mmc(2.0, 3.0, 2)
    assert two.mean_wait == pytest.approx(1 / 24)
    assert two.mean_queue_length == pytest.approx(1 / 12)
    assert two.utilisation == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("servers", "offered"), [(2, Fraction(1)), (3, Fraction(12, 5)), (5, Fraction(3)), (10, 8), (20, 17)]
)
def test_erlang_c_recursion_matches_the_sum_formula(servers: int, offered: Fraction) -> None:
    assert erlang_c(servers, float(offered)) == pytest.approx(float(_erlang_c_by_sum(servers, Fraction(offered))))


def test_two_servers_offered_one_erlang() -> None:
    # M/M/2, a = 1: P0 = 1/3, C = 1/3, Wq = C / (2μ − λ) = 1/3 with μ = λ = 1
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert mmc(1.0, 1.0, 2).mean_wait == pytest.approx(1 / 3)


def test_erlang_b_known_value_and_limits() -> None:
    assert erlang_b(1, 1.0) == pytest.approx(0.5)  # B(1, a) = a / (1 + a)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)  # (a²/2) / (1 + a + a²/2)
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_c(3, 0.0) == 0.0
    assert erlang_c(3, 3.0) == 1.0


def test_overload_has_no_steady_state() -> None:
    with pytest.raises(Overloaded):
        mmc(3.0, 1.0, 3)
    with pytest.raises(ValueError):
        mmc(1.0, 0.0, 1)
    with pytest.raises(ValueError):
        mmc(1.0, 1.0, 0)


def test_wait_tail_probability() -> None:
    metrics = mmc(2.0, 3.0, 2)
    assert metrics.wait_exceeds(0.0) == pytest.approx(metrics.probability_of_waiting)
    assert metrics.wait_exceeds(1.0) == pytest.approx(metrics.probability_of_waiting * math.exp(-4.0))


def test_servers_needed_is_the_smallest_that_meets_the_target() -> None:
    assert servers_needed(2.0, 3.0, 1.0) == 1
    assert servers_needed(2.0, 3.0, 0.05) == 2
    assert servers_needed(0.0, 1.0, 1.0) == 0
    c = servers_needed(50.0, 1.0, 0.01)
    assert mmc(50.0, 1.0, c).mean_wait <= 0.01 < mmc(50.0, 1.0, c - 1).mean_wait


@pytest.mark.parametrize(("arrival", "service", "servers"), [(0.5, 1.0, 1), (2.4, 1.0, 3), (8.0, 1.0, 10)])
def test_simulation_converges_to_erlang_c(arrival: float, service: float, servers: int) -> None:
    exact = mmc(arrival, service, servers)
    simulated = simulate_steady_state(arrival, service, servers, customers=120_000, seed=7)
    assert simulated.mean_wait == pytest.approx(exact.mean_wait, rel=0.06)
    assert simulated.probability_of_waiting == pytest.approx(exact.probability_of_waiting, abs=0.015)
    assert simulated.utilisation == pytest.approx(exact.utilisation, rel=0.02)


def test_fixed_service_times_wait_less_than_exponential() -> None:
    # M/D/1 waits half as long as M/M/1 (Pollaczek–Khinchine): a check that the service-time variation matters.
    mm1 = simulate_steady_state(0.8, 1.0, 1, customers=100_000, seed=3)
    md1 = simulate_steady_state(0.8, 1.0, 1, customers=100_000, seed=3, service_cv=0.0)
    assert md1.mean_wait == pytest.approx(mm1.mean_wait / 2, rel=0.12)


def test_counter_days_are_reproducible_and_conserve_people() -> None:
    demand = [20.0] * 3 + [200.0] * 5 + [20.0] * 10
    first = simulate_days(demand, 30.0, 2, 525.0, seed=11)
    again = simulate_days(demand, 30.0, 2, 525.0, seed=11)
    assert first == again
    arrived = sum(d.arrivals for d in first)
    assert arrived == sum(d.served for d in first) + first[-1].carried_out
    for previous, day in itertools.pairwise(first):
        assert day.carried_in == previous.carried_out


def test_overload_builds_a_backlog_day_by_day() -> None:
    days = simulate_days([20.0] * 2 + [200.0] * 6, 30.0, 2, 525.0, seed=5)
    backlog = [d.carried_out for d in days]
    assert max(backlog[:2]) < 10  # a normal day: at most a few late arrivals are left at closing
    assert all(later > earlier for earlier, later in itertools.pairwise(backlog[2:]))
    # two windows serve at most ~35 people a day at 30 minutes; the rest of 200 stay in line
    assert backlog[-1] > 5 * 150


def test_overtime_policy_serves_everyone_the_same_day() -> None:
    days = simulate_days([20.0, 200.0, 20.0], 30.0, 2, 525.0, seed=5, close_policy="overtime")
    assert all(d.carried_out == 0 and d.served == d.arrivals for d in days)
    assert days[1].overtime > 60 * 30  # 200 people × 30 min on 2 windows ≈ 50 h, ≈ 41 h past closing


def test_bad_simulation_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        simulate_days([1.0], 30.0, 0, 525.0, seed=1)
    with pytest.raises(ValueError):
        simulate_days([-1.0], 30.0, 1, 525.0, seed=1)
    with pytest.raises(ValueError):
        simulate_days([1.0], 30.0, 1, 525.0, seed=1, close_policy="nap")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        simulate_steady_state(1.0, 1.0, 1, customers=0, seed=1)


def test_utilisation_just_below_one_lost_to_rounding_is_overloaded_not_a_crash() -> None:
    """ρ < 1 by the ratio but cμ − λ rounds to 0 (found by fuzzing /api/analytics/load, finding S-7)."""
    arrival, service, servers = 0.26063988832390655, 0.0021902511623857696, 119
    assert arrival / service / servers < 1.0 and servers * service - arrival == 0.0
    with pytest.raises(Overloaded):
        mmc(arrival, service, servers)
    assert mean_wait_or_inf(arrival, service, servers) == math.inf
    assert 0.0 <= erlang_c(servers, arrival / service) <= 1.0
