"""Charts of a plan with matplotlib, without pyplot (no global state): SVG for the HTML report, PNG files.

Japanese labels use Noto Sans CJK (Debian ``fonts-noto-cjk``), registered with matplotlib's font manager; SVG text
is written as paths so the report shows the same glyphs on a machine without the font.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure

from jpki_remote.analytics.load import PROCEDURE_LABELS, Procedure
from jpki_remote.analytics.months import fiscal_year, month_of
from jpki_remote.analytics.plan import Plan

log = logging.getLogger(__name__)

CJK_FONT_CANDIDATES = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc"),
)
COLOURS = {
    Procedure.CERTIFICATE_RENEWAL: "#1f77b4",
    Procedure.CARD_REPLACEMENT: "#ff7f0e",
    Procedure.PIN_RESET: "#2ca02c",
    Procedure.PIN_CHANGE: "#98df8a",
    Procedure.NEW_ISSUANCE: "#9467bd",
}
SHARE_COLOURS = ("#d62728", "#ff9896", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b")


@cache
def cjk_font_family() -> str | None:
    """Register the Noto CJK font with matplotlib once; its family name, or None (Japanese would show as boxes)."""
    for path in CJK_FONT_CANDIDATES:
        if path.is_file():
            font_manager.fontManager.addfont(str(path))
            return font_manager.FontProperties(fname=str(path)).get_name()
    log.warning("no Noto CJK font found (install fonts-noto-cjk): Japanese chart labels will not render")
    return None


@contextmanager
def _style(salt: str) -> Iterator[None]:
    family = cjk_font_family()
    params = {
        "font.family": [family, "DejaVu Sans"] if family else ["DejaVu Sans"],
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.fonttype": "path",
        "svg.hashsalt": salt,
        "axes.unicode_minus": False,
    }
    with rc_context(params):
        yield


def _fy_ticks(ax: object, months: list[int]) -> None:
    ticks = [i for i, m in enumerate(months) if month_of(m)[1] == 4]
    ax.set_xticks(ticks)  # type: ignore[attr-defined]
    ax.set_xticklabels([f"FY{fiscal_year(months[i])}" for i in ticks], rotation=0)  # type: ignore[attr-defined]
    ax.set_xlim(-0.6, len(months) - 0.4)  # type: ignore[attr-defined]


def forecast_chart(plan: Plan) -> Figure:
    """Counter visits per month by procedure (stacked), and the total with the what-if share moved."""
    fig = Figure(figsize=(10, 4.8), dpi=110)
    ax = fig.add_subplot()
    months = [m.month for m in plan.loads]
    bottom = [0.0] * len(months)
    for procedure in Procedure:
        values = [m.demand.get(procedure.value, 0.0) for m in plan.loads]
        if not any(v > 0.5 for v in values):
            continue
        ja, en = PROCEDURE_LABELS[procedure]
        ax.bar(range(len(months)), values, bottom=bottom, width=0.9, color=COLOURS[procedure], label=f"{ja} {en}")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    moved = [m.total_counter_visits for m in plan.loads_moved]
    ax.plot(
        range(len(months)),
        moved,
        color="black",
        linewidth=1.6,
        label=f"キオスク・オンラインへ{plan.options.share_moved:.0%}移行後の来庁 counter visits, "
        f"{plan.options.share_moved:.0%} moved",
    )
    _fy_ticks(ax, months)
    ax.set_ylabel("来庁者数／月 visits per month")
    ax.set_title("月別の窓口手続見込み（電子証明書・カードの有効期限到来） Counter procedures per month", loc="left")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:,.0f}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=7.5, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def utilisation_chart(plan: Plan) -> Figure:
    """Utilisation of the counter windows per month, nothing moved and the what-if share moved."""
    fig = Figure(figsize=(10, 3.2), dpi=110)
    ax = fig.add_subplot()
    months = [m.month for m in plan.loads]
    ax.plot(
        range(len(months)),
        [m.utilisation * 100 for m in plan.loads],
        color=SHARE_COLOURS[0],
        label="移行なし none moved",
    )
    ax.plot(
        range(len(months)),
        [m.utilisation * 100 for m in plan.loads_moved],
        color=SHARE_COLOURS[2],
        label=f"{plan.options.share_moved:.0%} 移行 moved",
    )
    ax.axhline(100, color="grey", linestyle="--", linewidth=1)
    ax.text(0, 102, "100 %: 待ち行列が際限なく伸びる the queue grows without bound", fontsize=7.5, color="grey")
    _fy_ticks(ax, months)
    ax.set_ylabel("窓口稼働率 utilisation %")
    ax.set_title(f"窓口{plan.setup.windows}席の稼働率 Utilisation of {plan.setup.windows} windows", loc="left")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def what_if_chart(plan: Plan) -> Figure:
    """Staff hours per year and windows needed at the peak, against the share moved to kiosk/online."""
    fig = Figure(figsize=(7.5, 3.8), dpi=110)
    ax = fig.add_subplot()
    years = len(plan.loads) / 12
    shares = [s.share_moved * 100 for s in plan.what_if]
    bars = ax.bar(shares, [s.staff_hours / years for s in plan.what_if], width=7, color="#1f77b4")
    ax.set_xlabel("キオスク・オンラインへ移す割合 share of renewals and resets moved to kiosk/online (%)")
    ax.set_xticks(shares)
    ax.set_ylabel("窓口の職員時間／年 staff hours per year")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:,.0f}")
    twin = ax.twinx()
    (line,) = twin.plot(shares, [s.peak_windows_needed for s in plan.what_if], color="#d62728", marker="o")
    twin.set_ylabel(f"必要窓口数 windows needed (peak, wait ≤ {plan.setup.target_mean_wait_minutes:.0f} min)")
    twin.set_ylim(bottom=0)
    twin.spines["right"].set_visible(True)
    ax.set_title("移行割合の効果 What moving work off the counter saves", loc="left")
    ax.legend([bars, line], ["職員時間／年 staff hours/yr", "必要窓口数 windows needed"], loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def surge_chart(plan: Plan) -> Figure:
    """People sent home at closing per day during and after a surge, for each simulated share."""
    fig = Figure(figsize=(8, 3.6), dpi=110)
    ax = fig.add_subplot()
    results = [r for r in plan.surge if r.close_policy == "carry_over"]
    first = results[0]
    ax.axvspan(
        first.surge_start + 0.5,  # days are plotted 1-based
        first.surge_end + 0.5,
        color="#fdd",
        label=f"急増 surge ×{plan.options.surge_factor:.0f}",
    )
    for colour, result in zip(SHARE_COLOURS, results, strict=False):
        ax.plot(
            [d.day + 1 for d in result.days],
            [d.carried_out for d in result.days],
            marker=".",
            color=colour,
            label=f"{result.share_moved:.0%} キオスク・オンライン moved",
        )
    ax.set_xlabel("開庁日 opening day")
    ax.set_ylabel("閉庁時に待っていた人数 people still waiting at closing")
    ax.set_title(
        f"急増時の積み残し（窓口{plan.setup.windows}席） Backlog during a surge, {plan.setup.windows} windows",
        loc="left",
    )
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def charts_for(plan: Plan) -> dict[str, Callable[[Plan], Figure]]:
    if plan.forecast is None:
        return {"surge": surge_chart}
    return {
        "forecast": forecast_chart,
        "utilisation": utilisation_chart,
        "what_if": what_if_chart,
        "surge": surge_chart,
    }


def render_svg(name: str, build: Callable[[Plan], Figure], plan: Plan) -> str:
    """An inline SVG element (no XML prolog), unique ids per chart, labelled for assistive technology."""
    with _style(f"{plan.key}-{name}"):
        fig = build(plan)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.DOTALL)
    svg = re.sub(r"<svg ", '<svg role="img" ', svg, count=1)
    return svg


def render_png(name: str, build: Callable[[Plan], Figure], plan: Plan, path: Path, dpi: int = 110) -> Path:
    with _style(f"{plan.key}-{name}"):
        fig = build(plan)
        fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
    return path


def finite(value: float) -> bool:
    return not (math.isinf(value) or math.isnan(value))
