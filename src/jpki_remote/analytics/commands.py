"""`jpki-remote` sub-commands of the analytics package: ``plan`` and the ``bench queue`` benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _share(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1 (or 0%–100%)")
    return value


def _profile(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc
    if len(values) != 12 or any(v < 0 for v in values) or sum(values) <= 0:
        raise argparse.ArgumentTypeError("a profile is 12 comma-separated non-negative weights, January…December")
    return values


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
    plan = subparsers.add_parser(
        "plan",
        help="expiry-wave forecast, counter load and kiosk/online what-if report (窓口負荷の見通し)",
        description="Forecast certificates and cards falling due, the counter load they bring, what moving renewals "
        "and PIN resets to kiosk/online saves, and how a sudden surge plays out. Writes an HTML report with charts "
        "and CSV tables (and PNG charts with --format png).",
    )
    source = plan.add_mutually_exclusive_group(required=True)
    source.add_argument("--example", choices=("minato", "toyota"), help="the seed's worked examples")
    source.add_argument("--history", type=Path, metavar="CSV", help="issuance history CSV (see docs/planning.md)")
    source.add_argument(
        "--database",
        nargs="?",
        const="",
        metavar="URL",
        help="count cards issued in the live database (default: the configured database)",
    )
    plan.add_argument("--municipality", metavar="CODE", help="only this municipality (5 or 6 digits)")
    plan.add_argument("--out", type=Path, metavar="DIR", help="write the report files into DIR")
    plan.add_argument(
        "--format",
        default="html,csv",
        help="comma-separated: html, csv, png (default html,csv; png writes the charts as PNG files too)",
    )
    plan.add_argument("--json", action="store_true", help="print the figures as JSON instead of the headline")
    plan.add_argument("--start", metavar="YYYY-MM", help="first month of the forecast (default: after the history)")
    plan.add_argument("--years", type=_positive_int, default=10, help="forecast horizon in years (default 10)")
    plan.add_argument("--share", type=_share, default=0.7, help="share moved to kiosk/online (0–1 or %%; default 0.7)")
    plan.add_argument("--windows", type=_positive_int, help="counter windows (default: sized for the first year)")
    plan.add_argument("--minutes", type=float, help="minutes per counter visit (default 60; Toyota 30)")
    plan.add_argument("--opening-hours", type=float, default=8.75, help="counter opening hours per day (8.75)")
    plan.add_argument("--target-wait", type=float, default=15.0, help="target mean wait in minutes (15)")
    plan.add_argument("--under-18", type=_share, default=0.14, help="share of cards issued to under-18s (0.14)")
    plan.add_argument("--age-18-19", type=_share, default=0.018, help="share issued to 18–19-year-olds (0.018)")
    plan.add_argument("--birthday-profile", type=_profile, help="12 weights for birthday months (default uniform)")
    plan.add_argument("--issuance-profile", type=_profile, help="12 weights to spread yearly counts by month")
    plan.add_argument("--early-renewal", type=_share, default=0.5, help="share renewing before the expiry date")
    plan.add_argument("--renewal-rate", type=_share, default=1.0, help="share of certificates renewed (1.0)")
    plan.add_argument("--card-renewal-rate", type=_share, default=1.0, help="share of cards replaced (1.0)")
    plan.add_argument("--pin-resets", type=float, default=20.0, help="PIN resets per 1,000 cards a year (20)")
    plan.add_argument("--pin-changes", type=float, default=5.0, help="PIN changes per 1,000 cards a year (5)")
    plan.add_argument("--new-cards", type=float, default=0.0, help="new cards per month after the history (0)")
    plan.add_argument("--surge-factor", type=float, default=10.0, help="surge multiplier of PIN resets (10)")
    plan.add_argument("--surge-days", type=_positive_int, default=10, help="surge length in opening days (10)")
    plan.add_argument("--seed", type=int, default=2020, help="seed of the surge simulation (2020)")
    plan.set_defaults(handler=_plan)

    queue = bench.add_parser("queue", help="discrete-event counter simulation against the Erlang C closed form")
    queue.add_argument("--customers", type=_positive_int, default=200_000)
    queue.set_defaults(handler=_bench_queue)


def _options(args: argparse.Namespace) -> object:
    from jpki_remote.analytics.forecast import AgeMix
    from jpki_remote.analytics.load import CounterSetup, DemandRates
    from jpki_remote.analytics.months import parse_month
    from jpki_remote.analytics.plan import PlanOptions

    default_minutes = 30.0 if args.example == "toyota" else 60.0
    setup = CounterSetup(
        opening_minutes=args.opening_hours * 60,
        minutes_per_visit=args.minutes if args.minutes is not None else default_minutes,
        target_mean_wait_minutes=args.target_wait,
    )
    return PlanOptions(
        start=parse_month(args.start) if args.start else None,
        years=args.years,
        share_moved=args.share,
        windows=args.windows,
        setup=setup,
        rates=DemandRates(args.pin_resets, args.pin_changes),
        age_mix=AgeMix(args.under_18, args.age_18_19, args.birthday_profile),
        certificate_renewal_rate=args.renewal_rate,
        card_renewal_rate=args.card_renewal_rate,
        early_renewal_share=args.early_renewal,
        issuance_profile=args.issuance_profile,
        new_cards_per_month=args.new_cards,
        surge_factor=args.surge_factor,
        surge_days=args.surge_days,
        seed=args.seed,
    )


def _plan(args: argparse.Namespace) -> int:
    from jpki_remote.analytics.history import HistoryFormatError, read_history_csv
    from jpki_remote.analytics.plan import build_plan, minato_plan, toyota_plan

    try:
        formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
        options = _options(args)
        if args.example == "minato":
            plan = minato_plan(options)  # type: ignore[arg-type]
        elif args.example == "toyota":
            plan = toyota_plan(options)  # type: ignore[arg-type]
        else:
            if args.history is not None:
                history = read_history_csv(args.history)
            else:
                from jpki_remote.analytics.sources import history_from_database

                history = history_from_database(args.database or None)
            plan = build_plan(history.for_municipality(args.municipality), options)  # type: ignore[arg-type]
        written = []
        if args.out is not None:
            from jpki_remote.analytics.report import write_report

            written = write_report(plan, args.out, formats)
    except HistoryFormatError as exc:
        print(f"jpki-remote plan: the issuance history has errors:\n{exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"jpki-remote plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"plan": plan.key, "figures": plan.figures, "files": [str(p) for p in written]}, indent=2))
    else:
        print("\n".join(plan.headline))
        for path in written:
            print(f"wrote {path}")
    return 0


def _bench_queue(args: argparse.Namespace) -> int:
    import time

    from jpki_remote.analytics.queueing import mmc
    from jpki_remote.analytics.simulation import simulate_steady_state

    print("case                     Erlang C Wq   simulated Wq   ratio   closed form s   simulation s   speed ratio")
    for arrival, service, servers in ((0.8, 1.0, 1), (2.4, 1.0, 3), (8.0, 1.0, 10), (18.0, 1.0, 20)):
        t0 = time.perf_counter()
        exact = mmc(arrival, service, servers).mean_wait
        t1 = time.perf_counter()
        simulated = simulate_steady_state(arrival, service, servers, customers=args.customers, seed=1).mean_wait
        t2 = time.perf_counter()
        case = f"λ={arrival:g} μ={service:g} c={servers}"
        print(
            f"{case:<24} {exact:>11.4f}   {simulated:>12.4f}   {simulated / exact:>5.3f}   "
            f"{t1 - t0:>13.6f}   {t2 - t1:>12.3f}   {(t2 - t1) / max(t1 - t0, 1e-9):>11.0f}"
        )
    return 0
