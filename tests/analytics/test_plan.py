"""The seed's worked examples (Minato, Toyota), the report files and `jpki-remote plan`."""

from __future__ import annotations

import csv
import itertools
import re
import warnings
from pathlib import Path

import pytest
from PIL import Image

from jpki_remote.analytics.plan import (
    PlanOptions,
    build_plan,
    load_example_history,
    minato_plan,
    toyota_plan,
)
from jpki_remote.analytics.report import write_report
from jpki_remote.cli import main

# The seed's table (港区, 令和4年6月1日現在): 交付枚数 FY2018–FY2022 and 累計 at the end of FY2018 and on 2022-06-01.
SEED_ISSUED = {2018: 11_151, 2019: 10_921, 2020: 34_781, 2021: 37_882, 2022: 4_326}
SEED_CUMULATIVE_FY2018 = 56_843
SEED_CUMULATIVE_2022_06 = 144_328


@pytest.fixture(scope="module")
def minato() -> object:
    return minato_plan()


def test_minato_data_file_is_the_seed_table() -> None:
    history = load_example_history("minato")
    by_line = {r.period_label: r.cards_issued for r in history.records}
    assert by_line["2018-04..2019-03"] == SEED_ISSUED[2018]
    assert by_line["2022-04..2022-05"] == SEED_ISSUED[2022]
    assert sum(SEED_ISSUED.values()) + by_line["2016-01..2018-03"] == history.total
    assert by_line["2016-01..2018-03"] == SEED_CUMULATIVE_FY2018 - SEED_ISSUED[2018]
    # the table's cumulative count is net of returned cards: within 0.5 % of the sum of issued cards
    assert history.total == pytest.approx(SEED_CUMULATIVE_2022_06, rel=0.005)


def test_minato_reproduces_the_seeds_renewal_wave(minato: object) -> None:
    f = minato.figures  # type: ignore[attr-defined]
    # 「港区では、6年度以降、電子証明書の更新等のために毎年約3万人～4万人の区民の来庁が想定」
    assert f["peak_renewal_fy"] == 2025
    assert 30_000 <= f["wave_mean_certificate_renewals"] <= 40_000
    for fy in (2024, 2025, 2026):
        assert 25_000 <= f[f"certificate_renewals_fy{fy}"] <= 42_000
    # 「およそ年間4万人×1時間＝40,000時間」
    assert f["renewal_hours_at_1h_peak"] == pytest.approx(40_000, rel=0.1)
    # the quiet years before and after the wave are far below it
    assert f["certificate_renewals_fy2023"] < f["peak_certificate_renewals"] / 3
    assert f["certificate_renewals_fy2027"] < f["peak_certificate_renewals"] / 3


def test_moving_work_off_the_counter_saves_hours_in_proportion(minato: object) -> None:
    what_if = minato.what_if  # type: ignore[attr-defined]
    assert what_if[0].share_moved == 0 and what_if[0].hours_saved == 0
    saved = [s.hours_saved for s in what_if]
    assert all(later > earlier for earlier, later in itertools.pairwise(saved))
    windows = [s.peak_windows_needed for s in what_if]
    assert all(later <= earlier for earlier, later in itertools.pairwise(windows))
    assert windows[-1] < windows[0]
    # the shiftable share of staff hours is the saving at 100 %
    base = minato.loads  # type: ignore[attr-defined]
    shiftable = sum(
        sum(v for p, v in m.demand.items() if p in ("certificate_renewal", "pin_reset", "pin_change")) for m in base
    )
    assert saved[-1] == pytest.approx(shiftable * 60 / 60)


def test_minato_surge_backlog_shrinks_with_kiosk_and_online(minato: object) -> None:
    base, moved = minato.surge  # type: ignore[attr-defined]
    assert base.peak_backlog > 5 * max(moved.peak_backlog, 1)


def test_toyota_surge_reproduces_the_seed_and_shows_the_build_up() -> None:
    plan = toyota_plan()
    f = plan.figures
    assert f["normal_resets_per_day"] == 25  # 「最大約250件／日（前月平均の10倍以上）」
    assert f["surge_resets_per_day"] == 250
    assert f["surge_windows_needed"] > 3 * f["windows"]
    counter_only = next(r for r in plan.surge if r.share_moved == 0 and r.close_policy == "carry_over")
    backlog = [d.carried_out for d in counter_only.days]
    surge = backlog[counter_only.surge_start : counter_only.surge_end]
    assert all(later > earlier for earlier, later in itertools.pairwise(surge))  # grows every day
    assert f["peak_backlog_70"] < f["peak_backlog_50"] < f["peak_backlog_0"]
    assert f["overtime_hours_70"] < f["overtime_hours_0"]


def test_report_files(tmp_path: Path, minato: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph (tofu) is a matplotlib warning: fail on it
        written = write_report(minato, tmp_path, ("html", "csv", "png"))  # type: ignore[arg-type]
    names = {p.name for p in written}
    assert {"minato-report.html", "minato-monthly.csv", "minato-surge-daily.csv", "minato-forecast.png"} <= names
    page = (tmp_path / "minato-report.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 4
    assert "電子証明書" in page and "Expiry forecast" in page
    # self-contained: no scripts, no stylesheets or images fetched from anywhere
    assert "<script" not in page and "<link" not in page and "<img" not in page
    urls = set(re.findall(r"https?://[^\"' )>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # namespace names only
    assert not re.search(r"(href|src)=[\"']https?:", page)
    with (tmp_path / "minato-monthly.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 120 and rows[0]["month"] == "2022-06" and rows[-1]["month"] == "2032-05"
    june = rows[0]
    per_day = sum(
        float(june[f"{p}_per_day"])
        for p in ("certificate_renewal", "card_replacement", "pin_reset", "pin_change", "new_issuance")
    )
    assert per_day == pytest.approx(float(june["visits_per_day"]), abs=0.1)  # printed rounded
    assert float(june["pin_reset_per_day_moved"]) == pytest.approx(0.3 * float(june["pin_reset_per_day"]), abs=0.01)
    assert sum(float(r["certificate_renewals"]) for r in rows if r["fiscal_year"] == "2025") == pytest.approx(
        minato.figures["certificate_renewals_fy2025"],
        rel=1e-3,  # type: ignore[attr-defined]
    )
    for png in tmp_path.glob("*.png"):
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 600 and image.height > 300
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 20  # not blank


def test_plan_from_csv_with_a_chosen_counter(tmp_path: Path) -> None:
    history_file = tmp_path / "h.csv"
    history_file.write_text("municipality_code,period,cards_issued\n23211,FY2020,24000\n23211,FY2021,12000\n")
    from jpki_remote.analytics.history import read_history_csv

    plan = build_plan(read_history_csv(history_file), PlanOptions(windows=5, share_moved=0.5))
    assert plan.setup.windows == 5
    assert plan.forecast is not None and plan.forecast.months[0].label == "2022-04"
    assert plan.figures["peak_staff_hours_moved"] < plan.figures["peak_staff_hours"]


def test_cli_plan_example_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--example", "minato", "--out", str(tmp_path), "--format", "html,csv,png"]) == 0
    out = capsys.readouterr().out
    assert "FY2025" in out and "wrote" in out
    assert (tmp_path / "minato-report.html").is_file() and (tmp_path / "minato-forecast.png").is_file()
    assert main(["plan", "--example", "toyota", "--json"]) == 0
    assert '"surge_resets_per_day": 250.0' in capsys.readouterr().out


def test_cli_plan_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("municipality_code,period,cards_issued\n13103,FY2020,lots\n")
    assert main(["plan", "--history", str(bad)]) == 2
    assert f"{bad}:2: cards_issued 'lots'" in capsys.readouterr().err
    assert main(["plan", "--example", "minato", "--out", str(tmp_path), "--format", "pdf"]) == 2
    assert "unknown format(s) pdf" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", "--example", "minato", "--share", "150%"])
