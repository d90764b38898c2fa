"""Counter-load model: visits per day by procedure, staff hours, waiting times, and the kiosk/online what-if.

Input is an expiry :class:`~jpki_remote.analytics.forecast.Forecast` (certificate renewals, card replacements and
new cards per month) plus rates for the procedures that do not follow from expiry dates (PIN resets and changes, per
1,000 cards in force per year). A share of the *shiftable* procedures — certificate renewal, PIN reset, PIN change —
moves to kiosk/online; card replacement and new issuance stay at the counter (face-to-face issuance by design).

Per month: visits per opening day = counter visits / weekdays of the month (national holidays are not subtracted, so
days are slightly overcounted and waits slightly optimistic); staff hours = visits × minutes per visit; the mean wait
is Erlang C for the month's average day (λ = visits per day / opening minutes, μ = 1 / mean minutes per visit),
``inf`` when the windows cannot keep up (ρ ≥ 1). Peaks within a month (Mondays, the days after a notice letter) are
not in the monthly average; :func:`simulate_surge` shows what a peak does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from jpki_remote.analytics.forecast import Forecast
from jpki_remote.analytics.months import fiscal_year, month_label, weekdays_in_month
from jpki_remote.analytics.queueing import mean_wait_or_inf, servers_needed
from jpki_remote.analytics.simulation import ClosePolicy, DayResult, simulate_days


class Procedure(StrEnum):
    CERTIFICATE_RENEWAL = "certificate_renewal"
    CARD_REPLACEMENT = "card_replacement"
    PIN_RESET = "pin_reset"
    PIN_CHANGE = "pin_change"
    NEW_ISSUANCE = "new_issuance"


PROCEDURE_LABELS: dict[Procedure, tuple[str, str]] = {
    Procedure.CERTIFICATE_RENEWAL: ("電子証明書の更新", "certificate renewal"),
    Procedure.CARD_REPLACEMENT: ("カードの更新（再交付）", "card replacement"),
    Procedure.PIN_RESET: ("パスワードの初期化・再設定", "PIN reset"),
    Procedure.PIN_CHANGE: ("パスワードの変更", "PIN change"),
    Procedure.NEW_ISSUANCE: ("カードの新規交付", "new issuance"),
}
#: Procedures jpki-remote can take off the counter (kiosk / online).
SHIFTABLE = frozenset({Procedure.CERTIFICATE_RENEWAL, Procedure.PIN_RESET, Procedure.PIN_CHANGE})


@dataclass(frozen=True)
class CounterSetup:
    """The counter: windows, opening hours, and how long a visit takes."""

    windows: int = 4
    opening_minutes: float = 525.0  # 8:30–17:15
    #: The seed: 30 minutes to 1 hour per person; its own arithmetic (4万人×1時間) uses 1 hour.
    minutes_per_visit: float = 60.0
    #: Per-procedure overrides of ``minutes_per_visit``.
    minutes_by_procedure: Mapping[str, float] = field(default_factory=dict)
    target_mean_wait_minutes: float = 15.0

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise ValueError("at least one counter window is needed")
        if not 0 < self.opening_minutes <= 24 * 60:
            raise ValueError("opening minutes must be within a day")
        if self.minutes_per_visit <= 0 or any(v <= 0 for v in self.minutes_by_procedure.values()):
            raise ValueError("minutes per visit must be positive")
        unknown = set(self.minutes_by_procedure) - {p.value for p in Procedure}
        if unknown:
            raise ValueError(f"unknown procedure(s) {', '.join(sorted(unknown))}")
        if self.target_mean_wait_minutes < 0:
            raise ValueError("the target wait must not be negative")

    def minutes(self, procedure: Procedure) -> float:
        return float(self.minutes_by_procedure.get(procedure.value, self.minutes_per_visit))


@dataclass(frozen=True)
class DemandRates:
    """Procedures that do not follow from expiry dates, per 1,000 cards in force per year (assumptions; set them
    from your own counter statistics — the live statistics of jpki-remote count them)."""

    pin_resets_per_1000_cards: float = 20.0
    pin_changes_per_1000_cards: float = 5.0

    def __post_init__(self) -> None:
        if self.pin_resets_per_1000_cards < 0 or self.pin_changes_per_1000_cards < 0:
            raise ValueError("rates must not be negative")


@dataclass(frozen=True)
class MonthLoad:
    month: int
    open_days: int
    demand: dict[str, float]  # all procedures, before the shift
    counter_visits: dict[str, float]  # what stays at the counter
    shifted_visits: float  # moved to kiosk/online
    staff_hours: float
    visits_per_day: float
    utilisation: float
    mean_wait_minutes: float  # inf when the counter cannot keep up
    windows_needed: int

    @property
    def label(self) -> str:
        return month_label(self.month)

    @property
    def total_counter_visits(self) -> float:
        return sum(self.counter_visits.values())


@dataclass(frozen=True)
class LoadSummary:
    share_moved: float
    counter_visits: float
    staff_hours: float
    hours_saved: float  # against nothing moved
    peak_month: str
    peak_visits_per_day: float
    peak_mean_wait_minutes: float
    peak_windows_needed: int
    months_over_target: int  # months whose mean wait exceeds the target with the given windows


def _check_share(share: float) -> None:
    if not 0.0 <= share <= 1.0 or math.isnan(share):
        raise ValueError(f"the share moved to kiosk/online must be between 0 and 1, got {share}")


@dataclass(frozen=True)
class LoadModel:
    setup: CounterSetup = field(default_factory=CounterSetup)
    rates: DemandRates = field(default_factory=DemandRates)

    def demand(self, forecast: Forecast) -> list[tuple[int, dict[Procedure, float]]]:
        rows = []
        for item in forecast.months:
            per_month = item.cards_in_force / 1000 / 12
            rows.append(
                (
                    item.month,
                    {
                        Procedure.CERTIFICATE_RENEWAL: item.certificate_renewals,
                        Procedure.CARD_REPLACEMENT: item.card_replacements,
                        Procedure.PIN_RESET: per_month * self.rates.pin_resets_per_1000_cards,
                        Procedure.PIN_CHANGE: per_month * self.rates.pin_changes_per_1000_cards,
                        Procedure.NEW_ISSUANCE: item.new_cards,
                    },
                )
            )
        return rows

    def monthly(self, forecast: Forecast, share_moved: float = 0.0) -> list[MonthLoad]:
        _check_share(share_moved)
        setup = self.setup
        result = []
        for month, demand in self.demand(forecast):
            counter = {p: v * (1 - share_moved) if p in SHIFTABLE else v for p, v in demand.items()}
            visits = sum(counter.values())
            minutes = sum(v * setup.minutes(p) for p, v in counter.items())
            days = weekdays_in_month(month)
            per_day = visits / days
            mean_minutes = minutes / visits if visits > 0 else setup.minutes_per_visit
            arrival_rate = per_day / setup.opening_minutes
            utilisation = arrival_rate * mean_minutes / setup.windows
            wait = mean_wait_or_inf(arrival_rate, 1 / mean_minutes, setup.windows) if visits > 0 else 0.0
            needed = servers_needed(arrival_rate, 1 / mean_minutes, setup.target_mean_wait_minutes)
            result.append(
                MonthLoad(
                    month,
                    days,
                    {p.value: v for p, v in demand.items()},
                    {p.value: v for p, v in counter.items()},
                    sum(demand.values()) - visits,
                    minutes / 60,
                    per_day,
                    utilisation,
                    wait,
                    needed,
                )
            )
        return result

    def summary(self, forecast: Forecast, share_moved: float, months: Sequence[MonthLoad] | None = None) -> LoadSummary:
        rows = list(months) if months is not None else self.monthly(forecast, share_moved)
        baseline_hours = sum(m.staff_hours for m in self.monthly(forecast, 0.0)) if share_moved else None
        hours = sum(m.staff_hours for m in rows)
        peak = max(rows, key=lambda m: m.visits_per_day)
        return LoadSummary(
            share_moved,
            sum(m.total_counter_visits for m in rows),
            hours,
            (baseline_hours - hours) if baseline_hours is not None else 0.0,
            peak.label,
            peak.visits_per_day,
            peak.mean_wait_minutes,
            peak.windows_needed,
            sum(1 for m in rows if m.mean_wait_minutes > self.setup.target_mean_wait_minutes),
        )

    def what_if(
        self, forecast: Forecast, shares: Sequence[float] = tuple(i / 10 for i in range(11))
    ) -> list[LoadSummary]:
        return [self.summary(forecast, share) for share in shares]


def by_fiscal_year(months: Sequence[MonthLoad]) -> list[dict[str, float]]:
    """Counter visits, shifted visits and staff hours per fiscal year."""
    totals: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for m in months:
        row = totals[fiscal_year(m.month)]
        row["months"] += 1
        row["counter_visits"] += m.total_counter_visits
        row["shifted_visits"] += m.shifted_visits
        row["staff_hours"] += m.staff_hours
        row["peak_mean_wait_minutes"] = max(row["peak_mean_wait_minutes"], m.mean_wait_minutes)
        for p, v in m.counter_visits.items():
            row[p] += v
    return [{"fiscal_year": fy, **values} for fy, values in sorted(totals.items())]


def sized_windows(loads: Sequence[MonthLoad]) -> int:
    """Windows a counter sized for the average month of ``loads`` (mean wait within target) has."""
    return max(1, round(sum(m.windows_needed for m in loads) / len(loads))) if loads else 1


@dataclass(frozen=True)
class SurgeScenario:
    """A sudden surge of one procedure on top of normal counter traffic (Toyota, May 2020: 10× PIN resets)."""

    normal_visits_per_day: Mapping[str, float]
    surge_procedure: str = Procedure.PIN_RESET.value
    factor: float = 10.0
    days_before: int = 5
    surge_days: int = 10  # two weeks of opening days
    days_after: int = 15

    def __post_init__(self) -> None:
        if self.factor < 0 or min(self.days_before, self.surge_days, self.days_after) < 0:
            raise ValueError("factor and day counts must not be negative")
        if self.surge_procedure not in {p.value for p in Procedure}:
            raise ValueError(f"unknown procedure {self.surge_procedure!r}")

    def daily_demand(self) -> list[dict[str, float]]:
        days = []
        total = self.days_before + self.surge_days + self.days_after
        for day in range(total):
            surging = self.days_before <= day < self.days_before + self.surge_days
            demand = dict(self.normal_visits_per_day)
            if surging:
                demand[self.surge_procedure] = demand.get(self.surge_procedure, 0.0) * self.factor
            days.append(demand)
        return days


@dataclass(frozen=True)
class SurgeResult:
    share_moved: float
    days: list[DayResult]
    surge_start: int
    surge_end: int  # exclusive
    close_policy: ClosePolicy = "carry_over"

    @property
    def peak_backlog(self) -> int:
        return max((d.carried_out for d in self.days), default=0)

    @property
    def peak_mean_wait(self) -> float:
        return max((d.mean_wait for d in self.days), default=0.0)

    @property
    def days_to_clear(self) -> int | None:
        """Opening days after the surge ends until nobody is sent home; None if not within the simulated days."""
        for d in self.days[self.surge_end :]:
            if d.carried_out == 0:
                return d.day - self.surge_end + 1
        return None

    @property
    def overtime_hours(self) -> float:
        return sum(d.overtime for d in self.days) / 60

    def to_dict(self) -> dict[str, object]:
        return {
            "share_moved": self.share_moved,
            "surge_start": self.surge_start,
            "surge_end": self.surge_end,
            "close_policy": self.close_policy,
            "peak_backlog": self.peak_backlog,
            "peak_mean_wait": self.peak_mean_wait,
            "days_to_clear": self.days_to_clear,
            "overtime_hours": self.overtime_hours,
            "days": [asdict(d) for d in self.days],
        }


def simulate_surge(
    scenario: SurgeScenario,
    setup: CounterSetup,
    share_moved: float,
    *,
    seed: int = 2020,
    close_policy: ClosePolicy = "carry_over",
) -> SurgeResult:
    """Day-by-day discrete-event simulation of ``scenario`` with ``share_moved`` of shiftable procedures off the
    counter (the same seed for every share, so the runs differ only by the share)."""
    _check_share(share_moved)
    arrivals, service = [], []
    for demand in scenario.daily_demand():
        counter = {p: v * (1 - share_moved) if Procedure(p) in SHIFTABLE else v for p, v in demand.items()}
        visits = sum(counter.values())
        arrivals.append(visits)
        minutes = sum(v * setup.minutes(Procedure(p)) for p, v in counter.items())
        service.append(minutes / visits if visits else setup.minutes_per_visit)
    weights = sum(arrivals)
    mean_service = sum(a * s for a, s in zip(arrivals, service, strict=True)) / weights if weights else 1.0
    days = simulate_days(
        arrivals, mean_service, setup.windows, setup.opening_minutes, seed=seed, close_policy=close_policy
    )
    start = scenario.days_before
    return SurgeResult(share_moved, days, start, start + scenario.surge_days, close_policy)
