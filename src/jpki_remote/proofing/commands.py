"""`jpki-remote` sub-commands of the proofing package: `face compare`, `face eval`, `bench face`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
    face = subparsers.add_parser("face", help="face comparison: compare two photos, evaluate a photo folder")
    face_commands = face.add_subparsers(dest="face_command", metavar="ACTION")
    face.set_defaults(handler=lambda _args: _help(face))

    compare = face_commands.add_parser(
        "compare", help="distance, decision and quality verdicts of a live photo (IMG1) against a reference (IMG2)"
    )
    compare.add_argument("live", type=Path, metavar="IMG1", help="live capture (judged by the live quality gate)")
    compare.add_argument("reference", type=Path, metavar="IMG2", help="card or enrolled photo (reference gate)")
    compare.add_argument("--threshold", type=float, help="decision threshold (default: JPKI_FACE_THRESHOLD)")
    compare.add_argument("--lang", choices=("ja", "en"), default="ja", help="language of the quality messages")
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.set_defaults(handler=_compare)

    evaluate = face_commands.add_parser(
        "eval", help="genuine/impostor pairs, FMR and FNMR of a folder with one sub-folder of photos per person"
    )
    evaluate.add_argument("directory", type=Path, metavar="DIR")
    evaluate.add_argument("--threshold", type=float, help="threshold to report at (default: JPKI_FACE_THRESHOLD)")
    evaluate.add_argument(
        "--no-card-condition", action="store_true", help="skip the card-photo condition (greyscale JP2 vs colour)"
    )
    evaluate.add_argument("--augment", action="store_true", help="add mirrored/cropped/rotated/... variants")
    evaluate.add_argument("--groups", type=Path, help="JSON labelling the faces of group photos, left to right")
    evaluate.add_argument("--target-fnmr", type=float, default=0.03, help="FNMR goal for the recommendation")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(handler=_evaluate)

    bench_face = bench.add_parser("face", help="milliseconds per face verification, against full-resolution detection")
    bench_face.add_argument("--rounds", type=int, default=5, help="verifications per photo")
    bench_face.add_argument("images", type=Path, nargs="*", help="live photos (default: the shared test photos)")
    bench_face.set_defaults(handler=_bench)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _threshold(args: argparse.Namespace) -> float:
    if args.threshold is not None:
        return float(args.threshold)
    from jpki_remote.config import load_settings

    return load_settings().face_threshold


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return None


def _compare(args: argparse.Namespace) -> int:
    from jpki_remote.proofing.face import FaceVerifier, Reference, ReferenceKind

    threshold = _threshold(args)
    live, reference = _read(args.live), _read(args.reference)
    if live is None or reference is None:
        return 2
    verifier = FaceVerifier(threshold)
    decision = verifier.verify(live, [Reference(ReferenceKind.CARD_PHOTO, image=reference)])
    live_verdict = decision.live
    ref_verdict = decision.comparisons[0].verdict if decision.comparisons else None
    if ref_verdict is None:  # the live image failed: judge the reference on its own so both verdicts are shown
        _, ref_verdict, _ = verifier.encode_reference(Reference(ReferenceKind.CARD_PHOTO, image=reference))
    distance = decision.comparisons[0].distance if decision.comparisons else None
    if args.json:
        print(
            json.dumps(
                {
                    "distance": None if distance is None else round(distance, 4),
                    "threshold": threshold,
                    "match": decision.match,
                    "reason": decision.reason.value,
                    "live": live_verdict.as_dict(args.lang),
                    "reference": ref_verdict.as_dict(args.lang),
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(f"distance:  {'-' if distance is None else f'{distance:.4f}'}   (threshold {threshold:.2f})")
        print(f"decision:  {'MATCH' if decision.match else 'NO MATCH'} ({decision.reason.value})")
        for label, verdict in (("IMG1 (live)", live_verdict), ("IMG2 (reference)", ref_verdict)):
            state = "ok" if verdict.ok else ", ".join(i.value for i in verdict.issues)
            print(f"{label}: {state}  {_measures(verdict.measurements)}")
            for issue in verdict.issues:
                print(f"    {issue.value}: {issue.message(args.lang)}")
    return 0 if decision.match else 1


def _measures(values: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in values.items())


def _evaluate(args: argparse.Namespace) -> int:
    from jpki_remote.proofing.face.calibration import (
        histogram,
        load_group_labels,
        load_samples,
        recommend_threshold,
        standard_conditions,
    )

    if not args.directory.is_dir():
        print(f"not a folder: {args.directory}", file=sys.stderr)
        return 2
    threshold = _threshold(args)
    groups = None
    if args.groups is not None:
        try:
            groups = load_group_labels(args.groups)
        except (OSError, ValueError) as exc:
            print(f"cannot use --groups: {exc}", file=sys.stderr)
            return 2
    samples = load_samples(
        args.directory, card_condition=not args.no_card_condition, augment=args.augment, groups=groups
    )
    conditions = standard_conditions(samples.samples)
    card = next((c for c in conditions if c.name.startswith("card")), conditions[0])
    recommended = recommend_threshold(card, args.target_fnmr)
    report = {
        "directory": str(args.directory),
        "people": len(samples.identities),
        "photos_used": sum(1 for s in samples.samples if s.variant == "colour"),
        "samples": len(samples.samples),
        "unusable": [
            {"photo": p.path, "issues": [i.value for i in p.issues], "detail": p.detail} for p in samples.problems
        ],
        "ignored": samples.ignored,
        "threshold": threshold,
        "conditions": [c.summary(threshold) for c in conditions],
        "recommended_threshold": {
            "value": recommended,
            "rule": f"smallest with FNMR <= {args.target_fnmr:g} on '{card.name}'",
        },
        "histograms": {
            c.name: {"genuine": histogram(c.genuine), "impostor": histogram(c.impostor)} for c in conditions
        },
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print(f"{report['people']} people, {report['photos_used']} photos used, {len(samples.samples)} samples")
    for problem in report["unusable"]:
        print(f"  unusable: {problem['photo']}: {', '.join(problem['issues'])} {problem['detail']}")
    for ignored in samples.ignored:
        print(f"  ignored:  {ignored}")
    for summary in report["conditions"]:
        print(f"\n[{summary['condition']}] at threshold {threshold:.3f}")
        print(
            f"  genuine pairs  {summary['genuine_pairs']:>7}   false non-matches {summary['false_non_matches']:>5}"
            f"   FNMR {_pct(summary['fnmr'])}"
        )
        print(
            f"  impostor pairs {summary['impostor_pairs']:>7}   false matches     {summary['false_matches']:>5}"
            f"   FMR {_pct(summary['fmr'])}  (95 % upper bound {_pct(summary['fmr_upper_95'])})"
        )
        print(f"  zero false matches on this set below {summary['zero_false_match_threshold']}")
        print(f"  genuine  distances {_measures(summary['genuine_distance'])}")
        print(f"  impostor distances {_measures(summary['impostor_distance'])}")
    print(f"\nrecommended threshold: {recommended} ({report['recommended_threshold']['rule']})")
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3f} %"


def _bench(args: argparse.Namespace) -> int:
    from jpki_remote.proofing.face.benchmark import run_face_benchmark

    return run_face_benchmark(args.images, rounds=max(1, args.rounds))
