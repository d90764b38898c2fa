"""Live statistics of the procedures actually run: channels, outcomes, visits avoided, failures, times of day.

The input is a plain typed record (:class:`ProcedureRecord`), so the statistics do not depend on the procedures
package's schema; :mod:`jpki_remote.analytics.live_db` reads the live ``procedures`` table into these records.

Definitions:

* **counter visit avoided** — a procedure of a kind that otherwise needs the counter (renewal, PIN reset, PIN change,
  revocation, loss report) *completed* on a kiosk or online. Each is one visit of ``minutes_per_visit`` staff time
  (the seed: 30 minutes to 1 hour; 60 by default) → **staff hours saved**.
* **face / code failure rate** — among kiosk and online procedures, the share with at least one failed face match /
  one wrong security code (and the mean number of failures per procedure).
* **times** are counted in Japan time (JST, UTC+9). **Outside counter hours** — started when the counter is closed:
  before opening or after closing on an opening day (``night``), or on a closed day (``weekend``: Saturdays, Sundays
  and the listed holidays; national holidays are not built in — pass them in ``CounterHours.holidays``).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

JST = timezone(timedelta(hours=9), "JST")
CHANNELS = ("kiosk", "online", "counter")
REMOTE_CHANNELS = frozenset({"kiosk", "online"})
#: Procedure kinds that need a counter visit when not done remotely.
COUNTER_KINDS = frozenset({"renewal", "pin_reset", "pin_change", "revocation", "loss_report"})
COMPLETED = "completed"


@dataclass(frozen=True)
class ProcedureRecord:
    kind: str  # renewal, pin_reset, pin_change, issuance, revocation, …
    channel: str  # kiosk, online, counter
    outcome: str  # completed, failed, referred_to_counter, cancelled, rolled_back, in_progress, …
    municipality_code: str
    started_at: datetime  # timezone-aware (naive values are taken as UTC)
    finished_at: datetime | None = None
    face_failures: int = 0
    code_failures: int = 0


@dataclass(frozen=True)
class CounterHours:
    """When the municipal counter is open (Japan time)."""

    opens: time = time(8, 30)
    closes: time = time(17, 15)
    open_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    holidays: frozenset[date] = frozenset()

    def is_open_day(self, day: date) -> bool:
        return day.weekday() in self.open_weekdays and day not in self.holidays

    def is_open(self, moment: datetime) -> bool:
        local = to_jst(moment)
        return self.is_open_day(local.date()) and self.opens <= local.time() < self.closes


def to_jst(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # noqa: UP017 - explicit about the assumption
    return moment.astimezone(JST)


@dataclass
class _Tally:
    total: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_channel_outcome: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    avoided: int = 0
    remote: int = 0
    remote_face_failed: int = 0
    remote_code_failed: int = 0
    remote_face_failures: int = 0
    remote_code_failures: int = 0
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    by_weekday: list[int] = field(default_factory=lambda: [0] * 7)
    night: int = 0
    closed_day: int = 0
    remote_outside_hours: int = 0
    durations: list[float] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None

    def add(self, record: ProcedureRecord, hours: CounterHours) -> None:
        self.total += 1
        channel, outcome = record.channel, record.outcome
        self.by_channel[channel] += 1
        self.by_outcome[outcome] += 1
        self.by_kind[record.kind] += 1
        self.by_channel_outcome[channel][outcome] += 1
        remote = channel in REMOTE_CHANNELS
        if remote:
            self.remote += 1
            self.remote_face_failed += record.face_failures > 0
            self.remote_code_failed += record.code_failures > 0
            self.remote_face_failures += max(record.face_failures, 0)
            self.remote_code_failures += max(record.code_failures, 0)
            if outcome == COMPLETED and record.kind in COUNTER_KINDS:
                self.avoided += 1
        local = to_jst(record.started_at)
        self.by_hour[local.hour] += 1
        self.by_weekday[local.weekday()] += 1
        if not hours.is_open(local):
            if hours.is_open_day(local.date()):
                self.night += 1
            else:
                self.closed_day += 1
            self.remote_outside_hours += remote
        if record.finished_at is not None and record.finished_at >= record.started_at:
            self.durations.append((to_jst(record.finished_at) - local).total_seconds() / 60)
        self.first = local if self.first is None or local < self.first else self.first
        self.last = local if self.last is None or local > self.last else self.last

    def to_dict(self, minutes_per_visit: float) -> dict[str, Any]:
        outside = self.night + self.closed_day
        return {
            "total": self.total,
            "by_channel": {
                c: self.by_channel.get(c, 0) for c in (*CHANNELS, *sorted(set(self.by_channel) - set(CHANNELS)))
            },
            "by_outcome": dict(sorted(self.by_outcome.items())),
            "by_kind": dict(sorted(self.by_kind.items())),
            "by_channel_outcome": {c: dict(sorted(v.items())) for c, v in sorted(self.by_channel_outcome.items())},
            "remote": self.remote,
            "counter_visits_avoided": self.avoided,
            "staff_hours_saved": self.avoided * minutes_per_visit / 60,
            "face_failure_rate": _rate(self.remote_face_failed, self.remote),
            "code_failure_rate": _rate(self.remote_code_failed, self.remote),
            "face_failures_per_procedure": _rate(self.remote_face_failures, self.remote),
            "code_failures_per_procedure": _rate(self.remote_code_failures, self.remote),
            "by_hour_jst": list(self.by_hour),
            "by_weekday_jst": list(self.by_weekday),
            "outside_counter_hours": outside,
            "outside_counter_hours_share": _rate(outside, self.total),
            "night": self.night,
            "closed_days": self.closed_day,
            "remote_outside_counter_hours_share": _rate(self.remote_outside_hours, self.remote),
            "median_minutes": statistics.median(self.durations) if self.durations else None,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
        }


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class LiveStatistics:
    minutes_per_visit: float
    overall: dict[str, Any]
    municipalities: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"minutes_per_visit": self.minutes_per_visit, **self.overall, "municipalities": self.municipalities}


def live_statistics(
    records: Iterable[ProcedureRecord],
    *,
    minutes_per_visit: float = 60.0,
    counter_hours: CounterHours | None = None,
    municipality_names: Mapping[str, str] | None = None,
) -> LiveStatistics:
    """Statistics over ``records`` overall and per municipality (one pass; records may be a generator)."""
    if minutes_per_visit <= 0:
        raise ValueError("minutes per visit must be positive")
    hours = counter_hours or CounterHours()
    overall = _Tally()
    per: dict[str, _Tally] = defaultdict(_Tally)
    for record in records:
        overall.add(record, hours)
        per[record.municipality_code or "unknown"].add(record, hours)
    names = municipality_names or {}
    municipalities = {
        code: {"name": names.get(code, ""), **tally.to_dict(minutes_per_visit)} for code, tally in sorted(per.items())
    }
    return LiveStatistics(minutes_per_visit, overall.to_dict(minutes_per_visit), municipalities)
