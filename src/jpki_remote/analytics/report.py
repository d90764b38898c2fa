"""Report files of a plan: a self-contained HTML page (inline SVG charts, inline CSS, no script, no network),
CSV tables (monthly forecast and load, surge day by day), and optionally PNG charts."""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from jpki_remote import __version__
from jpki_remote.analytics.charts import charts_for, render_png, render_svg
from jpki_remote.analytics.load import PROCEDURE_LABELS, Procedure, SurgeResult
from jpki_remote.analytics.months import fiscal_year, month_label, reiwa_label
from jpki_remote.analytics.plan import Plan

FORMATS = ("html", "csv", "png")

CSS = """
body{font-family:"Noto Sans CJK JP","Hiragino Sans","Yu Gothic",sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#222;line-height:1.5}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #ccc}
.en{color:#555;font-weight:normal;font-size:.9em}
table{border-collapse:collapse;font-size:.85rem;margin:.8rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
.headline li{margin:.3rem 0}.note{color:#555;font-size:.85rem}
svg{max-width:100%;height:auto}
.over{color:#b00;font-weight:bold}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def fmt_wait(minutes: float) -> str:
    if math.isinf(minutes):
        return '<span class="over">過負荷 overloaded</span>'
    if minutes < 120:
        return f"{minutes:,.0f} 分 min"
    return f"{minutes / 60:,.1f} 時間 h"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], caption: str = "") -> str:
    head = "".join(f"<th scope='col'>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fiscal_year_table(plan: Plan) -> str:
    assert plan.forecast is not None
    base = {int(r["fiscal_year"]): r for r in plan.fiscal_years()}
    moved = {int(r["fiscal_year"]): r for r in plan.fiscal_years(moved=True)}
    rows = []
    for year in plan.forecast.by_fiscal_year():
        b, m = base[year.fiscal_year], moved[year.fiscal_year]
        label = f"{reiwa_label(year.fiscal_year)} FY{year.fiscal_year}"
        if year.months < 12:
            label += f" ({year.months}か月 months)"
        rows.append(
            [
                label,
                fmt_int(year.certificate_expiries),
                fmt_int(year.card_expiries),
                fmt_int(year.certificate_renewals),
                fmt_int(year.card_replacements),
                fmt_int(b["counter_visits"]),
                fmt_int(b["staff_hours"]),
                fmt_int(m["staff_hours"]),
                fmt_wait(b["peak_mean_wait_minutes"]),
                fmt_wait(m["peak_mean_wait_minutes"]),
            ]
        )
    share = f"{plan.options.share_moved:.0%}"
    headers = [
        "年度 FY",
        "証明書の期限到来 certificates due",
        "カードの期限到来 cards due",
        "証明書の更新 renewals",
        "カードの更新 card replacements",
        "来庁 counter visits",
        "職員時間 staff h",
        f"職員時間（{share}移行）staff h, {share} moved",
        "最長月の平均待ち peak-month mean wait",
        f"同（{share}移行）same, {share} moved",
    ]
    return _table(headers, rows)


def _what_if_table(plan: Plan) -> str:
    years = len(plan.loads) / 12
    rows = [
        [
            f"{s.share_moved:.0%}",
            fmt_int(s.counter_visits / years),
            fmt_int(s.staff_hours / years),
            fmt_int(s.hours_saved / years),
            f"{s.peak_month} ({s.peak_visits_per_day:,.0f}/日 day)",
            fmt_wait(s.peak_mean_wait_minutes),
            str(s.peak_windows_needed),
            f"{s.months_over_target} / {len(plan.loads)}",
        ]
        for s in plan.what_if
    ]
    headers = [
        "移行割合 share moved",
        "来庁／年 visits/yr",
        "職員時間／年 staff h/yr",
        "削減時間／年 hours saved/yr",
        "ピーク月 peak month",
        f"ピーク月の平均待ち（{plan.setup.windows}席）peak mean wait",
        f"必要窓口数 windows for ≤ {plan.setup.target_mean_wait_minutes:.0f} min",
        "目標超過の月 months over target",
    ]
    return _table(headers, rows)


def _surge_table(plan: Plan) -> str:
    results = [r for r in plan.surge if r.close_policy == "carry_over"]
    overtime = {r.share_moved: r for r in plan.surge if r.close_policy == "overtime"}
    rows = []
    for r in results:
        clear = r.days_to_clear
        extra = overtime.get(r.share_moved)
        rows.append(
            [
                f"{r.share_moved:.0%}",
                fmt_int(sum(d.arrivals for d in r.days)),
                fmt_int(r.peak_backlog),
                fmt_wait(r.peak_mean_wait),
                "—" if clear is None else f"{clear}",
                "—" if extra is None else f"{extra.overtime_hours:,.0f}",
            ]
        )
    headers = [
        "移行割合 share moved",
        "来庁 counter visits",
        "閉庁時の最大積み残し peak backlog at closing",
        "1日の平均待ちの最大 worst daily mean wait",
        "急増後、解消までの開庁日 days to clear after the surge",
        "残業で対応した場合の残業時間 overtime h if served after hours",
    ]
    table = _table(headers, rows)
    days = []
    for index in range(len(results[0].days)):
        cells = [str(index + 1) + (" ⚡" if results[0].surge_start <= index < results[0].surge_end else "")]
        for r in results:
            d = r.days[index]
            cells += [fmt_int(d.arrivals + d.carried_in), fmt_int(d.served), fmt_int(d.carried_out)]
        days.append(cells)
    day_headers = ["開庁日 day"]
    for r in results:
        tag = f"{r.share_moved:.0%}"
        day_headers += [f"{tag}: 待ち行列 in line", f"{tag}: 対応 served", f"{tag}: 積み残し sent home"]
    return table + "<details><summary>日別 day by day</summary>" + _table(day_headers, days) + "</details>"


def _assumptions(plan: Plan) -> str:
    o, s = plan.options, plan.setup
    items = [
        f"窓口 counter: {s.windows} 席 windows, 開庁 {s.opening_minutes / 60:.2f} 時間/日 h/day (平日 weekdays), "
        f"1件 {s.minutes_per_visit:.0f} 分 min per visit"
        + (f" (overrides: {_e(dict(s.minutes_by_procedure))})" if s.minutes_by_procedure else "")
        + f", 目標平均待ち target mean wait {s.target_mean_wait_minutes:.0f} 分 min",
        f"キオスク・オンラインへ移す割合 share moved (renewal, PIN reset, PIN change): {o.share_moved:.0%}; "
        "カードの交付・更新は窓口 card issuance and replacement stay at the counter",
    ]
    if plan.forecast is not None:
        mix = o.age_mix
        items += [
            "有効期間 validity: 証明書 certificate = 発行日後5回目の誕生日 (5th birthday after issuance, capped by the "
            "card); カード card = 10回目 (adults) / 5回目 (minors: under 20 before 2022-04-01, under 18 since); "
            "2/29生まれは平年2/28 (29 Feb birthdays on 28 Feb in non-leap years)",
            f"年齢構成 age mix: 18歳未満 under 18 {mix.under_18_share:.1%}, 18–19歳 {mix.age_18_19_share:.1%}; "
            f"誕生月 birthdays {'uniform' if mix.birthday_profile is None else 'profile ' + _e(mix.birthday_profile)}",
            f"更新率 renewal rates: certificates {o.certificate_renewal_rate:.0%}, cards {o.card_renewal_rate:.0%}; "
            f"期限前更新 renewing before the expiry date {o.early_renewal_share:.0%} (their next certificate runs "
            "4 years, as the coming birthday counts as the first)",
            f"PIN: 初期化 resets {o.rates.pin_resets_per_1000_cards:g}, 変更 changes "
            f"{o.rates.pin_changes_per_1000_cards:g} per 1,000 cards in force per year (assumption)",
            "待ち時間 waits: Erlang C (M/M/c) for the average day of each month; "
            "過負荷 overloaded = utilisation ≥ 100 % (no steady state). "
            "急増 surge: discrete-event simulation, day by day, seed "
            f"{o.seed}; people still waiting at closing come back first in line the next opening day",
        ]
    items.append(f"出典 source: {_e(plan.source)}")
    return "<ul class='note'>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def render_html(plan: Plan) -> str:
    charts = {name: render_svg(name, build, plan) for name, build in charts_for(plan).items()}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ja"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(plan.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(plan.title)}</h1><p class='en'>{_e(plan.title_en)}</p>",
        "<h2>要点 <span class='en'>Headline</span></h2><ul class='headline'>",
        *(f"<li>{_e(line)}</li>" for line in plan.headline[1:]),
        "</ul>",
    ]
    if plan.forecast is not None:
        parts += [
            "<h2>有効期限到来の見通し <span class='en'>Expiry forecast and counter procedures</span></h2>",
            f"<figure aria-label='月別の窓口手続見込み Counter procedures per month'>{charts['forecast']}</figure>",
            _fiscal_year_table(plan),
            "<h2>窓口の稼働率 <span class='en'>Counter utilisation</span></h2>",
            f"<figure aria-label='窓口の稼働率 Utilisation'>{charts['utilisation']}</figure>",
            "<h2>キオスク・オンライン移行の効果 <span class='en'>What-if: moving renewals and resets off the counter"
            "</span></h2>",
            f"<figure aria-label='移行割合の効果 What-if'>{charts['what_if']}</figure>",
            _what_if_table(plan),
        ]
    parts += [
        "<h2>急増時の窓口 <span class='en'>A sudden surge, day by day</span></h2>",
        "<p class='note'>Erlang C has no steady state when more people come than the windows can serve; the "
        "simulation shows the queue building up instead. "
        "定常状態がないため離散事象シミュレーションで日ごとに示す。</p>",
        f"<figure aria-label='急増時の積み残し Backlog during a surge'>{charts['surge']}</figure>",
        _surge_table(plan),
        "<h2>前提 <span class='en'>Assumptions</span></h2>",
        _assumptions(plan),
        f"<p class='note'>jpki-remote {__version__} · {generated}</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


MONTHLY_COLUMNS = (
    "month",
    "fiscal_year",
    "new_cards",
    "certificate_expiries",
    "card_expiries",
    "certificate_renewals",
    "card_replacements",
    "pin_resets",
    "pin_changes",
    "cards_in_force",
    "open_days",
    "counter_visits",
    "visits_per_day",
    "staff_hours",
    "utilisation",
    "mean_wait_minutes",
    "windows_needed",
    "counter_visits_moved",
    "staff_hours_moved",
    "mean_wait_minutes_moved",
    "windows_needed_moved",
    *(f"{p.value}_per_day" for p in Procedure),
    *(f"{p.value}_per_day_moved" for p in Procedure),
)


def _num(value: float, digits: int = 1) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def write_monthly_csv(plan: Plan, path: Path) -> Path:
    assert plan.forecast is not None
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MONTHLY_COLUMNS)
        for item, base, moved in zip(plan.forecast.months, plan.loads, plan.loads_moved, strict=True):
            writer.writerow(
                [
                    month_label(item.month),
                    fiscal_year(item.month),
                    _num(item.new_cards),
                    _num(item.certificate_expiries),
                    _num(item.card_expiries),
                    _num(item.certificate_renewals),
                    _num(item.card_replacements),
                    _num(base.demand[Procedure.PIN_RESET.value]),
                    _num(base.demand[Procedure.PIN_CHANGE.value]),
                    _num(item.cards_in_force, 0),
                    base.open_days,
                    _num(base.total_counter_visits),
                    _num(base.visits_per_day),
                    _num(base.staff_hours),
                    _num(base.utilisation, 3),
                    _num(base.mean_wait_minutes),
                    base.windows_needed,
                    _num(moved.total_counter_visits),
                    _num(moved.staff_hours),
                    _num(moved.mean_wait_minutes),
                    moved.windows_needed,
                    *(_num(base.counter_visits[p.value] / base.open_days, 2) for p in Procedure),
                    *(_num(moved.counter_visits[p.value] / moved.open_days, 2) for p in Procedure),
                ]
            )
    return path


def write_surge_csv(results: Sequence[SurgeResult], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        fields = ["close_policy", "share_moved", "surge", *asdict(results[0].days[0]).keys()]
        writer.writerow(fields)
        for r in results:
            for d in r.days:
                row = asdict(d)
                surging = r.surge_start <= d.day < r.surge_end
                writer.writerow(
                    [r.close_policy, r.share_moved, int(surging)]
                    + [_num(v, 2) if isinstance(v, float) else v for v in row.values()]
                )
    return path


def write_report(plan: Plan, out_dir: Path, formats: Iterable[str] = ("html", "csv")) -> list[Path]:
    """Write the report files into ``out_dir`` (created); returns the paths written."""
    wanted = set(formats)
    unknown = wanted - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "html" in wanted:
        path = out_dir / f"{plan.key}-report.html"
        path.write_text(render_html(plan), encoding="utf-8")
        written.append(path)
    if "csv" in wanted:
        if plan.forecast is not None:
            written.append(write_monthly_csv(plan, out_dir / f"{plan.key}-monthly.csv"))
        written.append(write_surge_csv(plan.surge, out_dir / f"{plan.key}-surge-daily.csv"))
    if "png" in wanted:
        for name, build in charts_for(plan).items():
            written.append(render_png(name, build, plan, out_dir / f"{plan.key}-{name}.png"))
    return written


def procedure_label(kind: str) -> str:
    ja, en = PROCEDURE_LABELS[Procedure(kind)]
    return f"{ja} {en}"
