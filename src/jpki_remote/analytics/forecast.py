"""Expiry forecast: certificates and cards falling due per month, from the issuance history.

The model follows every issued card through the validity rules of :mod:`jpki_remote.analytics.validity` at month
resolution (expected values, not random draws):

* A card issued in month *i* to a holder with a birthday in month *b* has its first birthday after issuance in the
  same year when *b* > *i*, in the next year when *b* < *i*, and, when *b* = *i*, in the same year with probability
  (D − 1) / 2D (issue day and birthday uniform over the D days of the month, the birthday strictly later).
  The n-th birthday after issuance then falls 12·(n − 1) months after the first.
* Adults get a 10-birthday card with a 5-birthday certificate; minors (under the adult age in force on the issue
  date: 20 before April 2022, 18 since) a 5-birthday card whose certificates expire with it.
* A certificate falling due on a valid card is renewed by a share ``certificate_renewal_rate`` of holders; of them
  ``early_renewal_share`` renew inside the window before the expiry date (visits spread evenly over the expiry month
  and the two before it) and — since the coming birthday then counts as the first — get a certificate that runs
  four years; the rest renew on or after the expiry date (visit counted in the expiry month) and get five years.
  A renewed certificate never outlives the card: if it would, it expires with the card.
* An expiring card is replaced (new card, new certificates, at the counter) by ``card_renewal_rate`` of holders, with
  the same early/late split; a minor's replacement card is an adult card when the holder has reached the adult age.

Ages of minors are uniform over 0–17 within ``under_18_share``; ``age_18_19_share`` are 18 or 19 (minors for cards
issued before 2022-04-01). Birthdays are uniform over the days of the year unless a 12-month profile is given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date

from jpki_remote.analytics.history import IssuanceHistory, validate_profile
from jpki_remote.analytics.months import days_in_month, fiscal_year, month_label, month_of
from jpki_remote.analytics.validity import DEFAULT_POLICY, ValidityPolicy

#: Share of days of the year in each month (February 28.25 days), the default birthday distribution.
UNIFORM_BIRTHDAYS = tuple(d / 365.25 for d in (31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31))
#: Age above which an age is no longer tracked (always an adult for every rule we know).
_ADULT_FOR_EVERY_RULE = 20


@dataclass(frozen=True)
class AgeMix:
    """Who the cards were issued to.

    Defaults: Japan's population shares (総務省統計局 人口推計, 2022年10月1日, rounded): 0–17 years ≈ 14 %,
    18–19 years ≈ 1.8 %. Card take-up differs by age, so a municipality that knows its own mix should set it.
    """

    under_18_share: float = 0.14
    age_18_19_share: float = 0.018
    #: 12 weights, January…December, for the holders' birthday months; ``None`` = uniform over the days of the year.
    birthday_profile: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("under_18_share", "age_18_19_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.under_18_share + self.age_18_19_share > 1.0:
            raise ValueError("under_18_share + age_18_19_share must not exceed 1")
        validate_profile(self.birthday_profile)

    def birthday_weights(self) -> tuple[float, ...]:
        profile = validate_profile(self.birthday_profile)
        if profile is None:
            return UNIFORM_BIRTHDAYS
        total = sum(profile)
        return tuple(w / total for w in profile)

    def age_groups(self) -> list[tuple[int | None, float]]:
        """``(age at issuance, share)``; ``None`` stands for 20 and over."""
        groups: list[tuple[int | None, float]] = [(age, self.under_18_share / 18) for age in range(18)]
        groups += [(18, self.age_18_19_share / 2), (19, self.age_18_19_share / 2)]
        groups.append((None, 1.0 - self.under_18_share - self.age_18_19_share))
        return [(age, share) for age, share in groups if share > 0]


@dataclass(frozen=True)
class ForecastParameters:
    start: int  # first month of the horizon (month index)
    months: int = 120
    age_mix: AgeMix = field(default_factory=AgeMix)
    policy: ValidityPolicy = DEFAULT_POLICY
    certificate_renewal_rate: float = 1.0
    card_renewal_rate: float = 1.0
    early_renewal_share: float = 0.5
    #: 12 weights (January…December) to spread counts of periods longer than a month; ``None`` = uniform.
    issuance_profile: tuple[float, ...] | None = None
    #: New cards per month in the horizon beyond the history (first issuance, not replacements).
    new_cards_per_month: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.months <= 600:
            raise ValueError("months must be 1–600")
        for name in ("certificate_renewal_rate", "card_renewal_rate", "early_renewal_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.new_cards_per_month < 0:
            raise ValueError("new_cards_per_month must not be negative")
        validate_profile(self.issuance_profile)


@dataclass(frozen=True)
class MonthForecast:
    month: int
    new_cards: float
    certificate_expiries: float  # certificates reaching their 5th-birthday expiry on a card that stays valid
    card_expiries: float  # cards reaching expiry (their certificates expire with them)
    certificate_renewals: float  # renewal procedures (visits today), placed in the month they happen
    card_replacements: float  # new cards for expiring ones (always at the counter)
    cards_in_force: float

    @property
    def label(self) -> str:
        return month_label(self.month)

    @property
    def fiscal_year(self) -> int:
        return fiscal_year(self.month)


@dataclass(frozen=True)
class YearForecast:
    fiscal_year: int
    months: int
    new_cards: float
    certificate_expiries: float
    card_expiries: float
    certificate_renewals: float
    card_replacements: float


@dataclass(frozen=True)
class Forecast:
    parameters: ForecastParameters
    months: tuple[MonthForecast, ...]

    def by_fiscal_year(self, complete_only: bool = False) -> list[YearForecast]:
        groups: dict[int, list[MonthForecast]] = defaultdict(list)
        for item in self.months:
            groups[item.fiscal_year].append(item)
        years = []
        for fy, items in sorted(groups.items()):
            if complete_only and len(items) < 12:
                continue
            years.append(
                YearForecast(
                    fy,
                    len(items),
                    *(
                        sum(getattr(m, name) for m in items)
                        for name in (
                            "new_cards",
                            "certificate_expiries",
                            "card_expiries",
                            "certificate_renewals",
                            "card_replacements",
                        )
                    ),
                )
            )
        return years

    def to_dict(self) -> dict[str, object]:
        params = asdict(self.parameters)
        params["start"] = month_label(self.parameters.start)
        return {
            "parameters": params,
            "months": [{**asdict(m), "month": m.label, "fiscal_year": m.fiscal_year} for m in self.months],
            "fiscal_years": [asdict(y) for y in self.by_fiscal_year()],
        }


class _Model:
    """Month-level bookkeeping of cohorts; every quantity is an expected count."""

    def __init__(self, params: ForecastParameters, end: int) -> None:
        self.params = params
        self.end = end
        self.birthdays = params.age_mix.birthday_weights()
        self.cert_due: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))  # E -> C -> count
        self.card_due: dict[int, dict[int | None, float]] = defaultdict(lambda: defaultdict(float))  # C -> age -> n
        self.certificate_expiries: dict[int, float] = defaultdict(float)
        self.card_expiries: dict[int, float] = defaultdict(float)
        self.renewals: dict[int, float] = defaultdict(float)
        self.replacements: dict[int, float] = defaultdict(float)
        self.issued: dict[int, float] = defaultdict(float)

    def issue_new_cards(self, month: int, count: float) -> None:
        """First issuance in ``month``: split by birthday month and age group."""
        self.issued[month] += count
        _, issue_month = month_of(month)
        same_month_later = (days_in_month(month) - 1) / (2 * days_in_month(month))
        for age, age_share in self.params.age_mix.age_groups():
            for b in range(1, 13):
                n = count * age_share * self.birthdays[b - 1]
                if n <= 0:
                    continue
                this_year = month - issue_month + b  # month index of birthday month b in the issue year
                if b > issue_month:
                    self._schedule(this_year, n, age, month)
                elif b < issue_month:
                    self._schedule(this_year + 12, n, age, month)
                else:
                    self._schedule(this_year, n * same_month_later, age, month)
                    self._schedule(this_year + 12, n * (1 - same_month_later), age, month)

    def _schedule(self, first_birthday: int, count: float, age: int | None, issued: int) -> None:
        """A card (with certificates) whose first birthday after issuance is in month ``first_birthday``."""
        policy = self.params.policy
        year, month = month_of(issued)
        adult = age is None or age >= policy.adult_age_on(date(year, month, 1))
        card_n = policy.adult_card_birthdays if adult else policy.minor_card_birthdays
        card = first_birthday + 12 * (card_n - 1)
        cert = first_birthday + 12 * (policy.certificate_birthdays - 1)
        if card > self.end and cert > self.end:
            return
        if cert < card:
            self.cert_due[cert][card] += count
        age_then = None if age is None or age + card_n >= _ADULT_FOR_EVERY_RULE else age + card_n
        self.card_due[card][age_then] += count

    def _visits(self, month: int, count: float, into: dict[int, float]) -> None:
        early = count * self.params.early_renewal_share
        for offset in (2, 1, 0):
            into[month - offset] += early / 3
        into[month] += count - early

    def certificates_due(self, month: int) -> None:
        policy = self.params.policy
        cert_years = policy.certificate_birthdays
        for card, count in self.cert_due.pop(month, {}).items():
            self.certificate_expiries[month] += count
            renewed = count * self.params.certificate_renewal_rate
            self._visits(month, renewed, self.renewals)
            early = renewed * self.params.early_renewal_share
            # early: the birthday in this month is the 1st after renewal; late: the one a year later is.
            for next_due, n in ((month + 12 * (cert_years - 1), early), (month + 12 * cert_years, renewed - early)):
                if next_due < card and n > 0:
                    self.cert_due[next_due][card] += n

    def cards_due(self, month: int) -> None:
        for age, count in self.card_due.pop(month, {}).items():
            self.card_expiries[month] += count
            replaced = count * self.params.card_renewal_rate
            self._visits(month, replaced, self.replacements)
            early = replaced * self.params.early_renewal_share
            if early > 0:
                self._schedule(month, early, age, month)
            if replaced - early > 0:
                self._schedule(month + 12, replaced - early, age, month)


def forecast(history: IssuanceHistory | dict[int, float], params: ForecastParameters) -> Forecast:
    """Certificates and cards falling due per month over ``params.months`` months from ``params.start``."""
    monthly = history.monthly(params.issuance_profile) if isinstance(history, IssuanceHistory) else dict(history)
    end = params.start + params.months - 1
    first = min([*monthly, params.start])
    last_history = max(monthly) if monthly else params.start - 1
    model = _Model(params, end)
    for month in range(first, end + 1):
        count = monthly.get(month, 0.0)
        if month > last_history and month >= params.start:
            count += params.new_cards_per_month
        if count > 0:
            model.issue_new_cards(month, count)
        model.certificates_due(month)
        model.cards_due(month)
    in_force = 0.0
    rows = []
    for month in range(first, end + 1):
        in_force += model.issued[month] - model.card_expiries[month] + model.replacements[month]
        if month >= params.start:
            rows.append(
                MonthForecast(
                    month,
                    model.issued[month],
                    model.certificate_expiries[month],
                    model.card_expiries[month],
                    model.renewals[month],
                    model.replacements[month],
                    in_force,
                )
            )
    return Forecast(params, tuple(rows))


def issuance_by_fiscal_year(history: IssuanceHistory, profile: Sequence[float] | None = None) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    for month, count in history.monthly(profile).items():
        totals[fiscal_year(month)] += count
    return dict(sorted(totals.items()))
