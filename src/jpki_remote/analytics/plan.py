"""A municipal plan: forecast + counter load + what-if + surge, and the seed's two worked examples.

* :func:`build_plan` — from any issuance history (CSV or live database).
* :func:`minato_plan` — Minato ward's issuance table 2018–2022 (the seed) → the renewal wave and staff hours.
* :func:`toyota_plan` — Toyota city's May 2020 surge of PIN resets (≈ 250 a day, 10× the month before).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from importlib import resources

from jpki_remote.analytics.forecast import AgeMix, Forecast, ForecastParameters, forecast
from jpki_remote.analytics.history import IssuanceHistory, parse_history_csv
from jpki_remote.analytics.load import (
    CounterSetup,
    DemandRates,
    LoadModel,
    LoadSummary,
    MonthLoad,
    Procedure,
    SurgeResult,
    SurgeScenario,
    by_fiscal_year,
    simulate_surge,
)
from jpki_remote.analytics.months import fiscal_year, month_index, parse_month
from jpki_remote.analytics.queueing import servers_needed

DATA = resources.files("jpki_remote.analytics") / "data"
EXAMPLES = ("minato", "toyota")
WHAT_IF_SHARES = tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class PlanOptions:
    start: int | None = None  # first month of the forecast; default: the month after the history
    years: int = 10
    share_moved: float = 0.7  # the what-if shown next to "nothing moved"
    windows: int | None = None  # default: sized for the first full fiscal year of the forecast
    setup: CounterSetup = field(default_factory=CounterSetup)
    rates: DemandRates = field(default_factory=DemandRates)
    age_mix: AgeMix = field(default_factory=AgeMix)
    certificate_renewal_rate: float = 1.0
    card_renewal_rate: float = 1.0
    early_renewal_share: float = 0.5
    issuance_profile: tuple[float, ...] | None = None
    new_cards_per_month: float = 0.0
    surge_factor: float = 10.0
    surge_days: int = 10
    seed: int = 2020


@dataclass(frozen=True)
class Plan:
    key: str
    title: str  # Japanese
    title_en: str
    municipality_code: str
    source: str
    options: PlanOptions
    setup: CounterSetup
    forecast: Forecast | None
    loads: list[MonthLoad]  # nothing moved
    loads_moved: list[MonthLoad]  # options.share_moved moved to kiosk/online
    what_if: list[LoadSummary]
    surge: list[SurgeResult]
    figures: dict[str, float]
    headline: list[str]  # lines for the terminal / README

    def fiscal_years(self, moved: bool = False) -> list[dict[str, float]]:
        return by_fiscal_year(self.loads_moved if moved else self.loads)


def load_example_history(name: str = "minato") -> IssuanceHistory:
    resource = DATA / f"{name}.csv"
    return parse_history_csv(resource.read_text(encoding="utf-8"), source=f"jpki_remote/analytics/data/{name}.csv")


def _forecast_params(options: PlanOptions, start: int) -> ForecastParameters:
    return ForecastParameters(
        start=start,
        months=12 * options.years,
        age_mix=options.age_mix,
        certificate_renewal_rate=options.certificate_renewal_rate,
        card_renewal_rate=options.card_renewal_rate,
        early_renewal_share=options.early_renewal_share,
        issuance_profile=options.issuance_profile,
        new_cards_per_month=options.new_cards_per_month,
    )


def build_plan(
    history: IssuanceHistory,
    options: PlanOptions,
    *,
    key: str = "plan",
    title: str = "",
    title_en: str = "",
) -> Plan:
    """Forecast, counter load (nothing moved and ``options.share_moved`` moved), what-if sweep, surge."""
    start = options.start if options.start is not None else history.last_month + 1
    fc = forecast(history, _forecast_params(options, start))
    setup = options.setup
    if options.windows is None:
        # Today's counter: sized for the first full fiscal year of the forecast with nothing moved.
        probe = LoadModel(setup, options.rates).monthly(fc, 0.0)
        first_full = [y for y in fc.by_fiscal_year(complete_only=True)]
        fy = first_full[0].fiscal_year if first_full else fiscal_year(start)
        year = [m for m in probe if fiscal_year(m.month) == fy]
        windows = _windows_for_average_day(year, setup)
    else:
        windows = options.windows
    setup = replace(setup, windows=windows)
    model = LoadModel(setup, options.rates)
    loads = model.monthly(fc, 0.0)
    moved = model.monthly(fc, options.share_moved)
    what_if = model.what_if(fc, WHAT_IF_SHARES)
    busiest = max(loads, key=lambda m: m.visits_per_day)
    normal = {p: v / busiest.open_days for p, v in _quietest_full_year_average(loads).items()}
    scenario = SurgeScenario(normal, factor=options.surge_factor, surge_days=options.surge_days)
    surge = [simulate_surge(scenario, setup, s, seed=options.seed) for s in (0.0, options.share_moved)]
    names = history.municipalities()
    code = next(iter(names)) if len(names) == 1 else "+".join(sorted(names))
    name = names.get(code, "") if len(names) == 1 else ""
    plan = Plan(
        key,
        title or f"{name or code} 電子証明書更新の見通しと窓口負荷",
        title_en or f"{code}: certificate renewal outlook and counter load",
        code,
        history.source,
        options,
        setup,
        fc,
        loads,
        moved,
        what_if,
        surge,
        {},
        [],
    )
    figures = _figures(plan)
    return replace(plan, figures=figures, headline=_headline(plan, figures))


def _windows_for_average_day(months: list[MonthLoad], setup: CounterSetup) -> int:
    if not months:
        return setup.windows
    visits = sum(m.total_counter_visits for m in months)
    days = sum(m.open_days for m in months)
    minutes = sum(m.staff_hours for m in months) * 60
    if visits == 0:
        return 1
    rate = visits / days / setup.opening_minutes
    return max(1, servers_needed(rate, visits / minutes, setup.target_mean_wait_minutes))


def _quietest_full_year_average(loads: list[MonthLoad]) -> dict[str, float]:
    """Average monthly counter demand by procedure over the first 12 months (the 'normal' before a surge)."""
    first = loads[:12] or loads
    totals: dict[str, float] = {}
    for m in first:
        for p, v in m.demand.items():
            totals[p] = totals.get(p, 0.0) + v / len(first)
    return totals


def _figures(plan: Plan) -> dict[str, float]:
    years = plan.forecast.by_fiscal_year(complete_only=True) if plan.forecast else []
    fy = {y.fiscal_year: y for y in years}
    load_fy = {int(r["fiscal_year"]): r for r in plan.fiscal_years()}
    moved_fy = {int(r["fiscal_year"]): r for r in plan.fiscal_years(moved=True)}
    figures: dict[str, float] = {"windows": plan.setup.windows, "share_moved": plan.options.share_moved}
    if years:
        peak = max(years, key=lambda y: y.certificate_renewals)
        figures["peak_renewal_fy"] = peak.fiscal_year
        figures["peak_certificate_renewals"] = peak.certificate_renewals
        figures["peak_card_replacements"] = peak.card_replacements
        figures["peak_counter_visits"] = load_fy[peak.fiscal_year]["counter_visits"]
        figures["peak_staff_hours"] = load_fy[peak.fiscal_year]["staff_hours"]
        figures["peak_staff_hours_moved"] = moved_fy[peak.fiscal_year]["staff_hours"]
        wave = [fy[y] for y in (2024, 2025, 2026) if y in fy]
        if wave:
            figures["wave_mean_certificate_renewals"] = sum(y.certificate_renewals for y in wave) / len(wave)
        for y in years:
            figures[f"certificate_renewals_fy{y.fiscal_year}"] = y.certificate_renewals
            figures[f"card_replacements_fy{y.fiscal_year}"] = y.card_replacements
        total_base = sum(r["staff_hours"] for r in load_fy.values())
        total_moved = sum(r["staff_hours"] for r in moved_fy.values())
        figures["hours_saved_total"] = total_base - total_moved
        figures["hours_saved_per_year"] = (total_base - total_moved) / (len(plan.loads) / 12)
        figures["renewal_hours_at_1h_peak"] = peak.certificate_renewals * 1.0
    base, moved = plan.surge
    figures["surge_peak_backlog"] = base.peak_backlog
    figures["surge_peak_backlog_moved"] = moved.peak_backlog
    figures["surge_peak_wait_minutes"] = base.peak_mean_wait
    figures["surge_peak_wait_minutes_moved"] = moved.peak_mean_wait
    return figures


def _fmt(value: float) -> str:
    return f"{value:,.0f}"


def _headline(plan: Plan, f: dict[str, float]) -> list[str]:
    lines = [f"{plan.title} / {plan.title_en}"]
    if plan.forecast:
        fy = int(f["peak_renewal_fy"])
        waves = [
            f"FY{y.fiscal_year} {_fmt(y.certificate_renewals)}"
            for y in plan.forecast.by_fiscal_year(complete_only=True)
            if y.fiscal_year >= 2024 and y.fiscal_year <= fy + 2
        ]
        lines += [
            f"電子証明書の更新 certificate renewals per fiscal year: {', '.join(waves)}",
            f"ピーク peak FY{fy}: {_fmt(f['peak_certificate_renewals'])} renewals + "
            f"{_fmt(f['peak_card_replacements'])} card replacements = {_fmt(f['peak_counter_visits'])} counter visits "
            f"incl. PIN resets/changes",
            f"窓口の職員時間 staff hours FY{fy} at {plan.setup.minutes_per_visit:.0f} min/visit: "
            f"{_fmt(f['peak_staff_hours'])} h (certificate renewals alone: {_fmt(f['renewal_hours_at_1h_peak'])} h "
            f"at 1 h/visit)",
            f"キオスク・オンラインへ {plan.options.share_moved:.0%} moved to kiosk/online: FY{fy} "
            f"{_fmt(f['peak_staff_hours_moved'])} h, saving {_fmt(f['hours_saved_per_year'])} h a year on average",
        ]
    base, moved = plan.surge
    lines.append(
        f"急増 surge {plan.options.surge_factor:.0f}× PIN resets for {plan.options.surge_days} opening days "
        f"({plan.setup.windows} windows): backlog peaks at {_fmt(base.peak_backlog)} people sent home, "
        f"{_fmt(moved.peak_backlog)} with {plan.options.share_moved:.0%} moved"
    )
    return lines


def minato_plan(options: PlanOptions | None = None) -> Plan:
    """The seed's Minato ward table → renewal wave and staff hours (forecast from June 2022, the table's date)."""
    opts = options or PlanOptions()
    if opts.start is None:
        opts = replace(opts, start=month_index(2022, 6))
    history = load_example_history("minato")
    return build_plan(
        history,
        opts,
        key="minato",
        title="港区 電子証明書更新の波と窓口負荷（令和4年6月1日現在の交付状況から）",
        title_en="Minato ward: the certificate renewal wave and counter load (from issuance up to 1 June 2022)",
    )


@dataclass(frozen=True)
class ToyotaFacts:
    municipality_code: str
    municipality_name: str
    source: str
    quote: str
    surge_resets_per_day: float
    surge_factor: float
    surge_month: int
    surge_working_days: int

    @property
    def normal_resets_per_day(self) -> float:
        return self.surge_resets_per_day / self.surge_factor


def toyota_facts() -> ToyotaFacts:
    raw = json.loads((DATA / "toyota.json").read_text(encoding="utf-8"))
    return ToyotaFacts(
        raw["municipality_code"],
        raw["municipality_name"],
        raw["source"],
        raw["quote"],
        float(raw["surge_resets_per_day"]),
        float(raw["surge_factor"]),
        parse_month(raw["surge_month"]),
        int(raw["surge_working_days"]),
    )


def toyota_plan(options: PlanOptions | None = None) -> Plan:
    """Toyota city, May 2020: PIN resets from ≈ 25 a day to ≈ 250 a day for two weeks, with and without
    kiosk/online reset. The counter is sized for the normal ≈ 25 a day (mean wait within the target)."""
    facts = toyota_facts()
    opts = options or PlanOptions(setup=CounterSetup(minutes_per_visit=30.0))
    setup = opts.setup
    normal = {Procedure.PIN_RESET.value: facts.normal_resets_per_day}
    minutes = setup.minutes(Procedure.PIN_RESET)
    windows = opts.windows or servers_needed(
        facts.normal_resets_per_day / setup.opening_minutes, 1 / minutes, setup.target_mean_wait_minutes
    )
    setup = replace(setup, windows=windows)
    scenario = SurgeScenario(normal, factor=facts.surge_factor, surge_days=facts.surge_working_days)
    shares = sorted({0.0, 0.5, opts.share_moved})
    surge = [simulate_surge(scenario, setup, s, seed=opts.seed) for s in shares]
    overtime = [simulate_surge(scenario, setup, s, seed=opts.seed, close_policy="overtime") for s in shares]
    surge_load = facts.surge_resets_per_day / setup.opening_minutes
    figures: dict[str, float] = {
        "normal_resets_per_day": facts.normal_resets_per_day,
        "surge_resets_per_day": facts.surge_resets_per_day,
        "windows": windows,
        "share_moved": opts.share_moved,
        "surge_windows_needed": servers_needed(surge_load, 1 / minutes, setup.target_mean_wait_minutes),
        "surge_staff_hours_per_day": facts.surge_resets_per_day * minutes / 60,
        "normal_staff_hours_per_day": facts.normal_resets_per_day * minutes / 60,
    }
    for result, extra in zip(surge, overtime, strict=True):
        tag = f"{round(result.share_moved * 100)}"
        figures[f"peak_backlog_{tag}"] = result.peak_backlog
        figures[f"peak_wait_minutes_{tag}"] = result.peak_mean_wait
        figures[f"overtime_hours_{tag}"] = extra.overtime_hours
        figures[f"surge_windows_needed_{tag}"] = (
            servers_needed(surge_load * (1 - result.share_moved), 1 / minutes, setup.target_mean_wait_minutes)
            if result.share_moved < 1
            else 0
        )
    base, best = surge[0], surge[-1]
    headline = [
        "豊田市 パスワード初期化・再設定の急増（2020年5月） / Toyota city: the May 2020 surge of PIN resets",
        f"平常 normal ≈ {facts.normal_resets_per_day:.0f}/day → 急増 surge ≈ {facts.surge_resets_per_day:.0f}/day "
        f"({facts.surge_factor:.0f}×) for {facts.surge_working_days} opening days; {minutes:.0f} min per reset",
        f"窓口 {windows} windows (enough for the normal day): staff time "
        f"{figures['normal_staff_hours_per_day']:.1f} h/day → {figures['surge_staff_hours_per_day']:.0f} h/day; "
        f"{figures['surge_windows_needed']} windows would be needed during the surge",
        f"対面のみ counter only: {_fmt(base.peak_backlog)} people sent home at the worst closing, "
        f"or {extra_hours(overtime[0]):,.0f} h of overtime if served into the night",
        f"{best.share_moved:.0%} キオスク・オンライン moved to kiosk/online: {_fmt(best.peak_backlog)} sent home, "
        f"{extra_hours(overtime[-1]):,.0f} h overtime",
    ]
    return Plan(
        "toyota",
        "豊田市 パスワード初期化・再設定の急増（2020年5月）",
        "Toyota city: the May 2020 surge of PIN resets",
        facts.municipality_code,
        facts.source,
        replace(opts, windows=windows),
        setup,
        None,
        [],
        [],
        [],
        surge + overtime,
        figures,
        headline,
    )


def extra_hours(result: SurgeResult) -> float:
    return result.overtime_hours
