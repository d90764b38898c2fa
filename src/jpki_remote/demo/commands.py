"""`jpki-remote demo` sub-command.

demo [--data-dir DIR] [--host H] [--port P] [--fresh] [--faces DIR]
    the system on embedded defaults with the demo municipality; prints the URLs and demo credentials
demo --scripted [--data-dir DIR] [--faces DIR] [--keep] [--report FILE]
    every procedure headless against a fresh data directory; exit 0 only if all ended as expected
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add the demo sub-command."""
    del bench
    parser = subparsers.add_parser(
        "demo",
        help="the demo: a municipality with residents and virtual cards, or a scripted run of every procedure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="demo data directory (default: JPKI_DATA_DIR with -demo appended; --scripted: a new temporary directory)",
    )
    parser.add_argument("--host", default=None, help="default: JPKI_HOST (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="default: JPKI_PORT (8080)")
    parser.add_argument("--fresh", action="store_true", help="start from an empty demo data directory")
    parser.add_argument(
        "--faces",
        type=Path,
        default=None,
        help="face photos, one folder per person (default: JPKI_DEMO_FACES or ../shared/data/faces)",
    )
    parser.add_argument("--scripted", action="store_true", help="run every procedure headless, then exit")
    parser.add_argument("--keep", action="store_true", help="--scripted: keep the temporary data directory")
    parser.add_argument("--report", type=Path, default=None, help="--scripted: also write the results as JSON")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    import logging

    from jpki_remote.config import load_settings
    from jpki_remote.demo.residents import faces_dir

    if not getattr(args, "verbose", False):  # the demo's own output is the point; libraries only when asked (-v)
        logging.getLogger().setLevel(logging.WARNING)

    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"jpki-remote demo: {exc}", file=sys.stderr)
        return 2
    faces = faces_dir(args.faces or settings.demo_faces or None)
    if faces is None:
        print(
            "jpki-remote demo: no faces folder (one sub-folder of photos per person); pass --faces DIR or set "
            "JPKI_DEMO_FACES (expected ../shared/data/faces beside the checkout)",
            file=sys.stderr,
        )
        return 2
    if args.scripted:
        from jpki_remote.demo.scripted import run_scripted

        return run_scripted(faces, data_dir=args.data_dir, keep=args.keep, report_file=args.report)
    from jpki_remote.demo.interactive import DemoError, default_data_dir, run_demo
    from jpki_remote.demo.provision import DemoSetupError

    try:
        return run_demo(
            faces,
            base=settings,
            data_dir=args.data_dir or default_data_dir(settings),
            host=args.host or settings.host,
            port=args.port or settings.port,
            fresh=args.fresh,
        )
    except (DemoError, DemoSetupError) as exc:
        print(f"jpki-remote demo: {exc}", file=sys.stderr)
        return 1
