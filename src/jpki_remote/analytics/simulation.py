"""Discrete-event simulation of a municipal counter: ``c`` windows, one first-come-first-served queue.

Two uses:

* :func:`simulate_steady_state` — an open M/M/c (or M/G/c) queue run for many customers, to check the model
  against Erlang C where a steady state exists.
* :func:`simulate_days` — the counter as it is: arrivals only during opening hours, day after day. When more people
  come than the windows can serve, the queue does not settle; the simulation shows it building up. At closing time
  the windows finish the people already being served; the others either go home and come back the next opening day,
  first in line (``carry_over``), or are served after hours (``overtime``, as Toyota did in May 2020:
  「夜間まで対応に追われる」).

The random numbers come from a seeded :class:`random.Random`: this is a model whose runs must be reproducible,
not a secret.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ClosePolicy = Literal["carry_over", "overtime"]


@dataclass(frozen=True)
class DayResult:
    day: int  # 0-based index of the opening day
    arrivals: int  # people who came that day
    carried_in: int  # people sent home the day before, back first in line
    served: int
    carried_out: int  # people still waiting at closing, sent home (carry_over policy)
    mean_wait: float  # minutes waited (over all days) by the people served that day; 0 if none
    max_wait: float
    overtime: float  # minutes after closing until the last window is free
    busy_minutes: float  # window-minutes spent serving


@dataclass(frozen=True)
class SteadyStateResult:
    customers: int
    mean_wait: float
    probability_of_waiting: float
    utilisation: float


class _ServiceTimes:
    """Service times with a given mean and coefficient of variation (1 = exponential, 0 = fixed, else gamma)."""

    def __init__(self, rng: random.Random, mean: float, cv: float) -> None:
        if mean <= 0:
            raise ValueError("mean service time must be positive")
        if cv < 0:
            raise ValueError("coefficient of variation must not be negative")
        self.rng, self.mean, self.cv = rng, mean, cv

    def draw(self) -> float:
        if self.cv == 0:
            return self.mean
        if self.cv == 1:
            return self.rng.expovariate(1.0 / self.mean)
        shape = 1.0 / (self.cv * self.cv)
        return self.rng.gammavariate(shape, self.mean / shape)


def _poisson_arrivals(rng: random.Random, expected: float, horizon: float) -> list[float]:
    """Arrival times of a Poisson process on [0, horizon) with ``expected`` arrivals on average."""
    if expected <= 0:
        return []
    rate = expected / horizon
    times, t = [], rng.expovariate(rate)
    while t < horizon:
        times.append(t)
        t += rng.expovariate(rate)
    return times


def simulate_days(
    daily_arrivals: Sequence[float],
    mean_service_minutes: float,
    windows: int,
    opening_minutes: float,
    *,
    seed: int,
    service_cv: float = 1.0,
    close_policy: ClosePolicy = "carry_over",
) -> list[DayResult]:
    """Simulate consecutive opening days; ``daily_arrivals[d]`` is the expected number of visits on day ``d``."""
    if windows < 1:
        raise ValueError("at least one window is needed")
    if opening_minutes <= 0:
        raise ValueError("opening minutes must be positive")
    if close_policy not in ("carry_over", "overtime"):
        raise ValueError(f"unknown close policy {close_policy!r}")
    rng = random.Random(seed)  # noqa: S311 - a reproducible model, not a secret
    service = _ServiceTimes(rng, mean_service_minutes, service_cv)
    backlog: list[float] = []  # minutes already waited by people sent home, in queue order
    results = []
    for day, expected in enumerate(daily_arrivals):
        if expected < 0 or math.isnan(expected):
            raise ValueError(f"day {day}: expected arrivals must be ≥ 0")
        arrivals = _poisson_arrivals(rng, expected, opening_minutes)
        queue = [(0.0, waited) for waited in backlog] + [(t, 0.0) for t in arrivals]
        free = [0.0] * windows
        waits: list[float] = []
        busy = 0.0
        carried: list[float] = []
        for index, (arrived, waited_before) in enumerate(queue):
            start = max(free[0], arrived)
            if close_policy == "carry_over" and start >= opening_minutes:
                carried = [waited_before + max(0.0, opening_minutes - a) for a, waited_before in queue[index:]]
                break
            duration = service.draw()
            heapq.heapreplace(free, start + duration)
            waits.append(waited_before + start - arrived)
            busy += duration
        overtime = max(0.0, max(free) - opening_minutes)
        results.append(
            DayResult(
                day=day,
                arrivals=len(arrivals),
                carried_in=len(backlog),
                served=len(waits),
                carried_out=len(carried),
                mean_wait=sum(waits) / len(waits) if waits else 0.0,
                max_wait=max(waits, default=0.0),
                overtime=overtime,
                busy_minutes=busy,
            )
        )
        backlog = carried
    return results


def simulate_steady_state(
    arrival_rate: float,
    service_rate: float,
    servers: int,
    *,
    customers: int,
    seed: int,
    warmup: int | None = None,
    service_cv: float = 1.0,
) -> SteadyStateResult:
    """An open FCFS queue with Poisson arrivals; the first ``warmup`` customers (default 10 %) are discarded."""
    if arrival_rate <= 0 or service_rate <= 0 or servers < 1 or customers < 1:
        raise ValueError("rates must be positive, servers and customers at least 1")
    rng = random.Random(seed)  # noqa: S311 - a reproducible model, not a secret
    service = _ServiceTimes(rng, 1.0 / service_rate, service_cv)
    skip = customers // 10 if warmup is None else warmup
    free = [0.0] * servers
    t = 0.0
    total_wait = 0.0
    waited = 0
    busy = 0.0
    counted = 0
    first_arrival = 0.0
    for index in range(customers + skip):
        t += rng.expovariate(arrival_rate)
        start = max(free[0], t)
        duration = service.draw()
        heapq.heapreplace(free, start + duration)
        if index == skip:
            first_arrival = t
        if index >= skip:
            counted += 1
            total_wait += start - t
            waited += start > t
            busy += duration
    span = max(t - first_arrival, 1e-12)
    return SteadyStateResult(counted, total_wait / counted, waited / counted, busy / (servers * span))
