"""The one command, ``jpki-remote``, with sub-commands contributed by each domain package.

Each package's ``commands.register(subparsers, bench)`` adds its own sub-commands; handlers import heavy modules
lazily so ``jpki-remote --help`` stays fast. A handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from jpki_remote import __version__

COMMAND_MODULES = (
    "jpki_remote.card.commands",
    "jpki_remote.terminal.commands",
    "jpki_remote.ca.commands",
    "jpki_remote.proofing.commands",
    "jpki_remote.audit.commands",
    "jpki_remote.analytics.commands",
    "jpki_remote.web.commands",
    "jpki_remote.demo.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jpki-remote",
        description="Non-face-to-face JPKI certificate renewal and My Number Card password reset.",
    )
    parser.add_argument("--version", action="version", version=f"jpki-remote {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = subparsers.add_parser("bench", help="benchmarks that print figures against a reference")
    bench = bench_parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    bench_parser.set_defaults(handler=lambda _args: _missing(bench_parser))
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, bench)
    return parser


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
